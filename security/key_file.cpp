#include "security/key_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "common/file_io.hpp"
#include "security/secret.hpp"

namespace shoal::security {

namespace {

constexpr std::size_t kFileBytes = 76;
constexpr char kMagic[8] = {'S', 'H', 'O', 'A', 'L', 'K', 'E', 'Y'};

Status io_error(const std::string& what, const std::string& path) {
  return Status(Code::kIo, what + ": " + std::strerror(errno), path);
}

std::string mode_string(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

Result<Identity> generate_identity() {
  if (!sodium_ready()) return Status(Code::kInternal, "libsodium failed to initialise");
  Secret<kSeedBytes> seed;
  randombytes_buf(seed.data(), seed.size());
  return Identity::from_seed(seed.span());
}

Status write_key_file(const std::string& path, const Identity& identity, KeyKind kind) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    return Status(Detail::kAlreadyExists, "key file already exists; refusing to overwrite it",
                  path);
  }
  Secret<kFileBytes> buf;
  std::uint8_t* p = buf.data();
  std::memcpy(p, kMagic, 8);
  p[8] = 1;
  p[9] = static_cast<std::uint8_t>(kind);
  p[10] = 0;
  p[11] = 0;
  std::memcpy(p + 12, identity.seed_for_key_file().data(), kSeedBytes);
  std::memcpy(p + 44, identity.public_key().data(), 32);

  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return io_error("cannot create key file", tmp);
  // The umask cannot widen 0600, but make the mode explicit anyway.
  if (::fchmod(fd, 0600) != 0 || !write_all(fd, p, kFileBytes) || ::fsync(fd) != 0) {
    Status s = io_error("cannot write key file", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  if (::close(fd) != 0) return io_error("cannot close key file", tmp);
  if (::link(tmp.c_str(), path.c_str()) != 0) {
    // link() fails if `path` appeared meanwhile: never overwrite a key.
    Status s = errno == EEXIST ? Status(Detail::kAlreadyExists, "key file already exists", path)
                               : io_error("cannot install key file", path);
    ::unlink(tmp.c_str());
    return s;
  }
  ::unlink(tmp.c_str());
  return fsync_dir(parent_dir(path)).with_context("the key file's directory");
}

Result<Identity> read_key_file(const std::string& path, KeyKind kind) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return Status(Detail::kNoSuchRecord, "no key file", path);
    return io_error("cannot open key file", path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    Status s = io_error("cannot stat key file", path);
    ::close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    ::close(fd);
    return Status(Detail::kInsecurePermissions,
                  "key file " + path + " is not a regular file owned by this user", path);
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return Status(Detail::kInsecurePermissions,
                  "key file " + path + " has mode " + mode_string(st.st_mode) +
                      ", which group or others can access; refusing it (run: chmod 600 " + path +
                      ", and treat the key as copied if others could read it)",
                  path);
  }
  Secret<kFileBytes + 1> buf;
  std::size_t got = 0;
  while (got < buf.size()) {
    const ssize_t r = ::read(fd, buf.data() + got, buf.size() - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      Status s = io_error("cannot read key file", path);
      ::close(fd);
      return s;
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  ::close(fd);
  const std::uint8_t* p = buf.data();
  if (got != kFileBytes) {
    return Status(Detail::kMalformed, "key file is " + std::to_string(got) + " bytes, not 76",
                  path);
  }
  if (std::memcmp(p, kMagic, 8) != 0) return Status(Detail::kBadMagic, "not a Shoal key file", path);
  if (p[8] != 1) return Status(Detail::kVersionMismatch, "key file version is not 1", path);
  if (p[10] != 0 || p[11] != 0) return Status(Detail::kMalformed, "reserved bytes not 0", path);
  if (p[9] != static_cast<std::uint8_t>(kind)) {
    return Status(Code::kInvalidArgument,
                  kind == KeyKind::kDevice ? "this is a mesh authority key, not a device key"
                                           : "this is a device key, not a mesh authority key",
                  path);
  }
  auto id = Identity::from_seed(std::span<const std::uint8_t, kSeedBytes>(p + 12, kSeedBytes));
  if (!id.ok()) return std::move(id).take_status();
  if (std::memcmp(id->public_key().data(), p + 44, 32) != 0) {
    return Status(Detail::kMalformed, "key file public key does not match its seed", path);
  }
  return id;
}

Result<Identity> load_or_create_identity(const std::string& data_dir) {
  const std::string path = data_dir + "/" + kIdentityFileName;
  auto id = read_key_file(path, KeyKind::kDevice);
  if (id.ok() || id.status().detail() != Detail::kNoSuchRecord) return id;
  auto fresh = generate_identity();
  if (!fresh.ok()) return fresh;
  SHOAL_RETURN_IF_ERROR(write_key_file(path, *fresh, KeyKind::kDevice));
  return fresh;
}

Result<Identity> open_data_dir_identity(const std::string& data_dir, std::string_view setting) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return Status(Code::kIo, "cannot create " + std::string(setting) + " " + data_dir + ": " + ec.message(),
                  std::string(setting));
  }
  std::filesystem::permissions(data_dir, std::filesystem::perms::owner_all, ec);
  auto identity = load_or_create_identity(data_dir);
  if (!identity.ok()) return Status(identity.status().detail(), identity.status().to_string(), std::string(setting));
  return identity;
}

Result<DeviceCertificate> load_device_certificate(const std::string& path, const Identity& identity,
                                                  std::string_view setting, std::string_view program) {
  const std::string what = std::string(setting) + " " + path;
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status(Code::kIo, "cannot read " + what, std::string(setting));
  DeviceCertificate c;
  c.bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  if (f.bad()) return Status(Code::kIo, "cannot read " + what, std::string(setting));
  auto cert = decode_certificate(c.bytes);
  if (!cert.ok()) return Status(cert.status().detail(), what + ": " + cert.status().to_string(), std::string(setting));
  if (cert->device_key != identity.public_key()) {
    return Status(Code::kInvalidArgument,
                  what + " was issued for device " + key_label(cert->device_key) +
                      ", but this data directory's identity is " + key_label(identity.public_key()) +
                      " (enrol this device: " + std::string(program) + " --print-device-key)",
                  std::string(setting));
  }
  c.decoded = std::move(*cert);
  c.anchor.mesh_id = c.decoded.mesh_id;
  c.anchor.authorities = {c.decoded.issuer_key};
  return c;
}

}  // namespace shoal::security
