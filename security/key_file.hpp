// security/key_file.hpp: identity keys on disk (the one part of security/ that does file I/O).
//
// Role: a device's identity key lives in `<data dir>/identity.key`, and the mesh authority's in a
// file the operator keeps offline (docs/security.md). Both are written with mode 0600, through a
// temporary file, fsync and rename, and never overwritten. A key file readable or writable by
// group or others is refused on load with kInsecurePermissions, naming the path and the mode: a
// key another user could read must be presumed copied.
//
// File format (76 bytes, big-endian):
//   "SHOALKEY" | u8 version (1) | u8 kind (1 device, 2 authority) | u16 reserved (0) |
//   Ed25519 seed (32) | Ed25519 public key (32, checked against the seed on load)
// The seed is the secret; the buffer holding it is wiped after use.
// Thread rules: functions; safe from any thread on distinct paths.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "security/certificate.hpp"
#include "security/identity.hpp"
#include "security/mesh.hpp"

namespace shoal::security {

enum class KeyKind : std::uint8_t { kDevice = 1, kAuthority = 2 };

inline constexpr const char* kIdentityFileName = "identity.key";

// A new identity from libsodium's randombytes (the tools' and daemon's randomness source).
[[nodiscard]] Result<Identity> generate_identity();

// Writes `identity` to `path` with mode 0600. Statuses: kAlreadyExists (conflict) when `path`
// exists; kIo (with the path as context) on any file error.
[[nodiscard]] Status write_key_file(const std::string& path, const Identity& identity,
                                    KeyKind kind);

// Reads the key at `path`. Statuses: kNoSuchRecord (not found) when there is no file;
// kInsecurePermissions (I/O) when the mode grants anything to group or others, or it is not a
// regular file owned by this user; kBadMagic, kVersionMismatch, kMalformed (wrong size, reserved
// bytes, a public key that does not match the seed); kInvalidArgument when it is a key of the
// other kind; kIo. Every status names the path in its context.
[[nodiscard]] Result<Identity> read_key_file(const std::string& path, KeyKind kind);

// `<data_dir>/identity.key`: read it, or create a new device identity there when it does not
// exist. Statuses: those of read_key_file and write_key_file.
[[nodiscard]] Result<Identity> load_or_create_identity(const std::string& data_dir);

// What shoald and shoal-sink do first: create `data_dir` (owner-only) when missing, then
// load_or_create_identity there. `setting` is the configuration key that named the directory
// ("node.data_dir", "sink.data_dir"): statuses carry it as their context. Statuses: kIo "cannot
// create SETTING DIR: REASON"; those of load_or_create_identity.
[[nodiscard]] Result<Identity> open_data_dir_identity(const std::string& data_dir, std::string_view setting);

// A device's certificate file (the bytes it sends in handshakes) and what it implies the device
// trusts: the certificate's mesh, with its issuer as the one authority (docs/mesh.md, "The trust
// anchor").
struct DeviceCertificate {
  std::vector<std::uint8_t> bytes;
  Certificate decoded;
  TrustAnchor anchor;
};

// Reads and decodes the certificate at `path` and checks that it was issued for `identity`.
// `setting` names the configuration key ("node.certificate"); `program` the program whose
// --print-device-key enrols this identity. Every status's message begins "SETTING PATH" and its
// context is `setting`: kIo when it cannot be read; the decoder's status when it does not decode;
// kInvalidArgument when it was issued for another device key (both key labels are named, with how
// to enrol). The role is the caller's to check.
[[nodiscard]] Result<DeviceCertificate> load_device_certificate(const std::string& path, const Identity& identity,
                                                                std::string_view setting, std::string_view program);

}  // namespace shoal::security
