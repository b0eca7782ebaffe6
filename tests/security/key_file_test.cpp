// Proves the key files (security/key_file.hpp): a key written and read back is the same identity
// (same Ed25519 and X25519 keys, same signatures); files are created with mode 0600; a key file
// that group or others may access is refused with kInsecurePermissions and a message naming the
// path and the mode; existing keys are never overwritten; malformed files are refused; an
// authority key is not accepted where a device key is expected. And what shoald and shoal-sink
// share: open_data_dir_identity makes the directory owner-only and keeps one identity across
// opens; load_device_certificate gives the certificate's bytes and trust anchor, and refuses a
// missing file, bytes that do not decode and a certificate issued for another device, each with a
// typed status naming the setting and the path.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "mesh_fixture.hpp"
#include "security/key_file.hpp"

using namespace shoal;
using namespace shoal::security;

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/shoal-keyfile-XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  REQUIRE(d != nullptr);
  return d;
}

}  // namespace

TEST_CASE("a device key file round trips with mode 0600", "[security][keyfile]") {
  const std::string dir = temp_dir();
  auto id = load_or_create_identity(dir);
  REQUIRE(id.ok());
  const std::string path = dir + "/identity.key";
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto again = load_or_create_identity(dir);
  REQUIRE(again.ok());
  CHECK(again->public_key() == id->public_key());
  CHECK(again->static_public_key() == id->static_public_key());
  const std::vector<std::uint8_t> msg = {1, 2, 3};
  CHECK(again->sign(msg) == id->sign(msg));
  CHECK(write_key_file(path, *id, KeyKind::kDevice).detail() == Detail::kAlreadyExists);
  CHECK(read_key_file(path, KeyKind::kAuthority).status().code() == Code::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a key file readable by group or others is refused, naming the path and the mode", "[security][keyfile]") {
  const std::string dir = temp_dir();
  auto id = load_or_create_identity(dir);
  REQUIRE(id.ok());
  const std::string path = dir + "/identity.key";
  for (mode_t mode : {0640, 0604, 0660, 0644}) {
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    auto r = read_key_file(path, KeyKind::kDevice);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().detail() == Detail::kInsecurePermissions);
    CHECK(r.status().message().find(path) != std::string::npos);
    char m[8];
    std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(mode));
    CHECK(r.status().message().find(m) != std::string::npos);
    CHECK(r.status().context() == path);
  }
  REQUIRE(::chmod(path.c_str(), 0400) == 0);
  CHECK(read_key_file(path, KeyKind::kDevice).ok());
  std::filesystem::remove_all(dir);
}

TEST_CASE("malformed key files are refused", "[security][keyfile]") {
  const std::string dir = temp_dir();
  const std::string path = dir + "/bad.key";
  {
    std::ofstream f(path, std::ios::binary);
    f << "SHOALKEY not really a key";
  }
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  CHECK(read_key_file(path, KeyKind::kDevice).status().detail() == Detail::kMalformed);
  CHECK(read_key_file(dir + "/missing.key", KeyKind::kDevice).status().detail() ==
        Detail::kNoSuchRecord);
  std::filesystem::remove_all(dir);
}

TEST_CASE("open_data_dir_identity makes the directory owner-only and keeps its identity", "[security][keyfile]") {
  const std::string root = temp_dir();
  const std::string dir = root + "/data/dir";
  auto id = open_data_dir_identity(dir, "node.data_dir");
  REQUIRE(id.ok());
  struct stat st;
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  auto again = open_data_dir_identity(dir, "node.data_dir");
  REQUIRE(again.ok());
  CHECK(again->public_key() == id->public_key());
  // A file where the directory should be: kIo naming the setting.
  const std::string file = dir + "/identity.key/below";
  auto bad = open_data_dir_identity(file, "sink.data_dir");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kIo);
  CHECK(bad.status().message().find("sink.data_dir " + file) != std::string::npos);
  CHECK(bad.status().context() == "sink.data_dir");
  std::filesystem::remove_all(root);
}

TEST_CASE("load_device_certificate checks the file against the identity and gives its trust anchor",
          "[security][keyfile]") {
  const std::string dir = temp_dir();
  test::TestMesh mesh;
  const Identity device = test::identity_from(7);
  const Identity other = test::identity_from(8);
  auto write = [&](const std::string& name, const std::vector<std::uint8_t>& bytes) {
    const std::string path = dir + "/" + name;
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  };
  const auto bytes = mesh.issue_bytes(device, DeviceRole::kSink);
  const std::string good = write("good.cert", bytes);
  auto c = load_device_certificate(good, device, "sink.certificate", "shoal-sink");
  REQUIRE(c.ok());
  CHECK(c->bytes == bytes);
  CHECK(c->decoded.role == DeviceRole::kSink);
  CHECK(c->anchor.mesh_id == mesh.anchor.mesh_id);
  CHECK(c->anchor.authorities == std::vector<SignPublicKey>{mesh.authority.public_key()});

  auto wrong = load_device_certificate(good, other, "node.certificate", "shoald");
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.status().code() == Code::kInvalidArgument);
  CHECK(wrong.status().message().find("node.certificate " + good + " was issued for device " +
                                      key_label(device.public_key())) != std::string::npos);
  CHECK(wrong.status().message().find(key_label(other.public_key())) != std::string::npos);
  CHECK(wrong.status().message().find("shoald --print-device-key") != std::string::npos);
  CHECK(wrong.status().context() == "node.certificate");

  auto missing = load_device_certificate(dir + "/none.cert", device, "node.certificate", "shoald");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kIo);
  CHECK(missing.status().message().find("node.certificate " + dir + "/none.cert") != std::string::npos);

  const std::string junk = write("junk.cert", {1, 2, 3});
  auto bad = load_device_certificate(junk, device, "node.certificate", "shoald");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().rfind("node.certificate " + junk + ": ", 0) == 0);
  CHECK(bad.status().context() == "node.certificate");
  std::filesystem::remove_all(dir);
}
