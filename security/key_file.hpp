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

#include "common/status.hpp"
#include "security/identity.hpp"

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

}  // namespace shoal::security
