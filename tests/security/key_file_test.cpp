// Proves the key files (security/key_file.hpp): a key written and read back is the same identity
// (same Ed25519 and X25519 keys, same signatures); files are created with mode 0600; a key file
// that group or others may access is refused with kInsecurePermissions and a message naming the
// path and the mode; existing keys are never overwritten; malformed files are refused; an
// authority key is not accepted where a device key is expected.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

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
