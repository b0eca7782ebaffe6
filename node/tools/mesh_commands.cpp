// node/tools/mesh_commands.cpp: `shoal mesh init|enrol|renew|revoke` (docs/security.md, "CLI").
//
//   shoal mesh init --dir MESHDIR
//   shoal mesh enrol --mesh MESHDIR (--device-key HEX | --device-key-file PATH)
//                    --role member|reader|sink --grant NAME:r|rw ... --days N --out CERTFILE
//   shoal mesh renew --mesh MESHDIR --cert CERTFILE --days N --out CERTFILE2
//   shoal mesh revoke --mesh MESHDIR --device-key HEX --out REVFILE
// A mesh directory holds mesh.id (the 16-byte id in hex) and authority.key (the authority's key
// file, mode 0600). Every file written is new (never overwritten) and has mode 0600.
// Exit codes as in shoal_main.cpp: 0 success; 1 the request failed; 2 usage error.
#include "node/tools/mesh_commands.hpp"

#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/status.hpp"
#include "common/time.hpp"
#include "node/core/record.hpp"  // escape_for_message
#include "security/certificate.hpp"
#include "security/identity.hpp"
#include "security/key_file.hpp"
#include "security/mesh.hpp"
#include "security/revocation.hpp"

using namespace shoal;
using namespace shoal::security;
using nlohmann::json;
using shoal::node::escape_for_message;

namespace {

constexpr const char* kMeshIdFile = "mesh.id";
constexpr const char* kAuthorityFile = "authority.key";
constexpr int kMaxDays = 3650;

// Ends the parse with this exit code (CLI11_PARSE returns it from main without printing).
[[noreturn]] void finish(int code) {
  std::cout.flush();
  std::cerr.flush();
  throw CLI::RuntimeError(code);
}

// A failed request (exit 1) or usage error (exit 2), printed like shoal_main.cpp's fail().
[[noreturn]] void fail(bool json_output, const Status& s, int exit_code) {
  if (json_output) {
    std::cout << json{{"ok", false}, {"code", s.full_code()}, {"error", s.to_string()}}.dump(
                     -1, ' ', false, json::error_handler_t::replace)
              << "\n";
  } else {
    std::cerr << "shoal: " << s.to_string() << "\n";
  }
  finish(exit_code);
}

[[noreturn]] void usage(bool json_output, const std::string& message) {
  fail(json_output, Status(Code::kInvalidArgument, message), 2);
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses exactly N bytes of hex; false on a wrong length or a non-hex character.
template <std::size_t N>
bool from_hex(std::string_view text, std::array<std::uint8_t, N>& out) {
  if (text.size() != 2 * N) return false;
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

Result<std::vector<std::uint8_t>> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::kIo, std::string("cannot open: ") + std::strerror(errno), path);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status(Code::kIo, "read failed", path);
  return bytes;
}

// Writes a new file with mode 0600 (never overwrites): O_EXCL, write, fsync.
Status write_new_file(const std::string& path, std::span<const std::uint8_t> bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return Status(Detail::kAlreadyExists, "file already exists; refusing to overwrite it", path);
    }
    return Status(Code::kIo, std::string("cannot create: ") + std::strerror(errno), path);
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return Status(Code::kIo, std::string("write failed: ") + std::strerror(err), path);
    }
    done += static_cast<std::size_t>(n);
  }
  // The umask cannot widen 0600, but make the mode explicit anyway.
  if (::fchmod(fd, 0600) != 0 || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return Status(Code::kIo, std::string("fsync failed: ") + std::strerror(err), path);
  }
  if (::close(fd) != 0) return Status(Code::kIo, std::string("close failed: ") + std::strerror(errno), path);
  return Status();
}

Status write_new_text(const std::string& path, const std::string& text) {
  return write_new_file(path, std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

// --days: an integer in 1..kMaxDays (parsed here so a bad value is a usage error, exit 2).
int parse_days(bool json_output, const std::string& text) {
  int days = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), days);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || days < 1 ||
      days > kMaxDays) {
    usage(json_output, "--days '" + text + "' must be a whole number of days from 1 to " +
                           std::to_string(kMaxDays));
  }
  return days;
}

DeviceRole parse_role(bool json_output, const std::string& text) {
  if (text == "member") return DeviceRole::kMember;
  if (text == "reader") return DeviceRole::kReader;
  if (text == "sink") return DeviceRole::kSink;
  usage(json_output, "--role '" + text + "' is not a role; expected member, reader or sink");
}

// --grant NAME:r|rw, repeatable: sorted, unique, at most kMaxGrants.
std::vector<Grant> parse_grants(bool json_output, const std::vector<std::string>& items) {
  if (items.size() > kMaxGrants) {
    usage(json_output, "at most " + std::to_string(kMaxGrants) + " --grant options (got " +
                           std::to_string(items.size()) + ")");
  }
  std::vector<Grant> grants;
  std::set<std::string> seen;
  for (const auto& item : items) {
    const auto colon = item.rfind(':');
    const std::string bad = "--grant '" + escape_for_message(item, 200) + "' ";
    if (colon == std::string::npos) usage(json_output, bad + "must be NAME:r or NAME:rw");
    const std::string name = item.substr(0, colon), rights = item.substr(colon + 1);
    if (name.empty() || name.size() > kMaxCollectionNameBytes) {
      usage(json_output, bad + "needs a collection name of 1 to " +
                             std::to_string(kMaxCollectionNameBytes) + " bytes (or '*')");
    }
    if (name.find('\0') != std::string::npos) usage(json_output, bad + "has a NUL byte in its name");
    Grant g;
    g.collection = name;
    if (rights == "r") g.rights = kRead;
    else if (rights == "rw") g.rights = kReadWrite;
    else usage(json_output, bad + "has rights '" + rights + "'; expected r or rw");
    if (!seen.insert(name).second) usage(json_output, bad + "names collection '" + name + "' twice");
    grants.push_back(std::move(g));
  }
  std::sort(grants.begin(), grants.end(),
            [](const Grant& a, const Grant& b) { return a.collection < b.collection; });
  return grants;
}

// --device-key HEX (64 hex digits, an Ed25519 public key) or --device-key-file PATH (a file
// holding that hex, e.g. what the device printed, or the device's own identity.key).
SignPublicKey parse_device_key(bool json_output, const std::string& hex, const std::string& file) {
  SignPublicKey key{};
  if (!hex.empty() && !file.empty()) usage(json_output, "give --device-key or --device-key-file, not both");
  if (hex.empty() && file.empty()) usage(json_output, "give --device-key HEX or --device-key-file PATH");
  if (!hex.empty()) {
    if (!from_hex(hex, key)) {
      usage(json_output, "--device-key '" + escape_for_message(hex, 200) +
                             "' must be 64 hex digits (an Ed25519 public key)");
    }
  } else {
    auto bytes = read_file(file);
    if (!bytes.ok()) fail(json_output, bytes.status().with_context("--device-key-file " + file), 1);
    constexpr std::string_view kMagic = "SHOALKEY";
    if (bytes->size() >= kMagic.size() && std::equal(kMagic.begin(), kMagic.end(), bytes->begin())) {
      auto id = read_key_file(file, KeyKind::kDevice);
      if (!id.ok()) fail(json_output, id.status(), 1);
      return id->public_key();
    }
    const std::string text = trim(std::string(bytes->begin(), bytes->end()));
    if (!from_hex(text, key)) {
      usage(json_output, "--device-key-file " + file + " holds '" + escape_for_message(text, 80) +
                             "', not 64 hex digits (an Ed25519 public key)");
    }
  }
  if (!static_key_of(key).ok()) {
    usage(json_output, "--device-key " + to_hex(key) + " is not a valid Ed25519 public key");
  }
  return key;
}

struct Mesh {
  MeshId id{};
  Identity authority;
};

// Loads MESHDIR/mesh.id and MESHDIR/authority.key.
Mesh load_mesh(bool json_output, const std::string& dir) {
  if (dir.empty()) usage(json_output, "give --mesh MESHDIR (the directory 'shoal mesh init' wrote)");
  const std::string id_path = dir + "/" + kMeshIdFile;
  auto bytes = read_file(id_path);
  if (!bytes.ok()) fail(json_output, bytes.status().with_context("--mesh: " + id_path), 1);
  MeshId id{};
  const std::string text = trim(std::string(bytes->begin(), bytes->end()));
  if (!from_hex(text, id)) {
    fail(json_output, Status(Detail::kMalformed, "mesh id '" + escape_for_message(text, 80) +
                                                     "' is not 32 hex digits", id_path), 1);
  }
  auto authority = read_key_file(dir + "/" + kAuthorityFile, KeyKind::kAuthority);
  if (!authority.ok()) fail(json_output, authority.status(), 1);
  return Mesh{id, std::move(*authority)};
}

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::uint64_t random_serial() {
  std::uint64_t serial = 0;
  randombytes_buf(&serial, sizeof serial);
  return serial;
}

std::string utc(std::int64_t s) {
  const std::time_t t = static_cast<std::time_t>(s);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json cert_json(const Certificate& c, const std::string& out) {
  json grants = json::array();
  for (const auto& g : c.grants) {
    grants.push_back({{"collection", g.collection}, {"rights", g.rights == kReadWrite ? "rw" : g.rights == kWrite ? "w" : "r"}});
  }
  return json{{"ok", true},
              {"certificate", out},
              {"mesh_id", to_hex(c.mesh_id)},
              {"device_key", to_hex(c.device_key)},
              {"issuer_key", to_hex(c.issuer_key)},
              {"role", std::string(role_name(c.role))},
              {"serial", c.serial},
              {"not_before", c.not_before_s},
              {"not_after", c.not_after_s},
              {"grants", grants}};
}

// Signs `draft`, writes it to `out` and prints the summary.
[[noreturn]] void issue_and_write(bool json_output, const Certificate& draft, const Identity& authority,
                                  const std::string& out, const char* verb) {
  auto cert = issue_certificate(draft, authority);
  if (!cert.ok()) fail(json_output, cert.status(), 1);
  auto bytes = encode_certificate(*cert);
  if (!bytes.ok()) fail(json_output, bytes.status(), 1);
  if (Status s = write_new_file(out, *bytes); !s.ok()) fail(json_output, s.with_context("--out " + out), 1);
  if (json_output) {
    std::cout << cert_json(*cert, out).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    finish(0);
  }
  std::cout << verb << " " << out << "\n"
            << "  device key  " << to_hex(cert->device_key) << "\n"
            << "  role        " << role_name(cert->role) << "\n"
            << "  grants      ";
  if (cert->grants.empty()) std::cout << "(none)";
  for (std::size_t i = 0; i < cert->grants.size(); ++i) {
    const auto& g = cert->grants[i];
    std::cout << (i ? ", " : "") << g.collection << ":" << (g.rights == kReadWrite ? "rw" : g.rights == kWrite ? "w" : "r");
  }
  std::cout << "\n  mesh id     " << to_hex(cert->mesh_id) << "\n"
            << "  serial      " << cert->serial << "\n"
            << "  valid       " << utc(cert->not_before_s) << " to " << utc(cert->not_after_s) << "\n";
  finish(0);
}

}  // namespace

void add_mesh_commands(CLI::App& app, const bool& json_output) {
  auto* mesh = app.add_subcommand("mesh", "the mesh authority: create a mesh, enrol, renew, revoke devices");
  mesh->require_subcommand(1);

  // Option values live as long as the App (the callbacks run during app.parse in main).
  struct Args {
    std::string dir, mesh_dir, device_key, device_key_file, role, days, out, cert;
    std::vector<std::string> grants;
  };
  auto a = std::make_shared<Args>();

  auto* init = mesh->add_subcommand("init", "create a mesh: a mesh id and an authority key in MESHDIR");
  init->add_option("--dir", a->dir, "a new (or empty) mesh directory");
  init->callback([a, &json_output] {
    const bool js = json_output;
    if (a->dir.empty()) usage(js, "give --dir MESHDIR");
    namespace fs = std::filesystem;
    const std::string id_path = a->dir + "/" + kMeshIdFile, key_path = a->dir + "/" + kAuthorityFile;
    std::error_code ec;
    for (const auto& p : {id_path, key_path}) {
      if (fs::symlink_status(p, ec).type() != fs::file_type::not_found) {
        fail(js, Status(Detail::kAlreadyExists, "a mesh already exists here; refusing to overwrite it", p), 1);
      }
    }
    if (!fs::exists(a->dir, ec)) {
      fs::create_directories(a->dir, ec);
      if (ec) fail(js, Status(Code::kIo, "cannot create the directory: " + ec.message(), "--dir " + a->dir), 1);
      fs::permissions(a->dir, fs::perms::owner_all, ec);
    } else if (!fs::is_directory(a->dir, ec)) {
      fail(js, Status(Code::kInvalidArgument, "not a directory", "--dir " + a->dir), 1);
    }
    auto authority = generate_identity();
    if (!authority.ok()) fail(js, authority.status(), 1);
    MeshId id{};
    randombytes_buf(id.data(), id.size());
    if (Status s = write_key_file(key_path, *authority, KeyKind::kAuthority); !s.ok()) fail(js, s, 1);
    if (Status s = write_new_text(id_path, to_hex(id) + "\n"); !s.ok()) fail(js, s, 1);
    const std::string advice =
        "back up " + key_path + " (two offline copies) and keep it offline, never on a gateway "
        "(docs/security.md)";
    if (js) {
      std::cout << json{{"ok", true}, {"mesh", a->dir}, {"mesh_id", to_hex(id)},
                        {"authority_key", to_hex(authority->public_key())}, {"note", advice}}.dump()
                << "\n";
      finish(0);
    }
    std::cout << "created mesh in " << a->dir << "\n"
              << "  mesh id        " << to_hex(id) << "\n"
              << "  authority key  " << to_hex(authority->public_key()) << " (public)\n"
              << "The authority key signs every certificate: " << advice << ".\n";
    finish(0);
  });

  auto* enrol = mesh->add_subcommand("enrol", "sign a device certificate with the authority key");
  enrol->add_option("--mesh", a->mesh_dir, "the mesh directory");
  enrol->add_option("--device-key", a->device_key, "the device's Ed25519 public key (64 hex digits)");
  enrol->add_option("--device-key-file", a->device_key_file, "a file holding that key in hex, or the device's identity.key");
  enrol->add_option("--role", a->role, "member, reader or sink");
  enrol->add_option("--grant", a->grants, "NAME:r or NAME:rw ('*' for every collection; repeatable)");
  enrol->add_option("--days", a->days, "validity in days from now (1..3650)");
  enrol->add_option("--out", a->out, "the certificate file to write (new, mode 0600)");
  enrol->callback([a, &json_output] {
    const bool js = json_output;
    if (a->role.empty()) usage(js, "give --role member|reader|sink");
    const DeviceRole role = parse_role(js, a->role);
    const std::vector<Grant> grants = parse_grants(js, a->grants);
    if (a->days.empty()) usage(js, "give --days N");
    const int days = parse_days(js, a->days);
    if (a->out.empty()) usage(js, "give --out CERTFILE");
    const SignPublicKey device = parse_device_key(js, a->device_key, a->device_key_file);
    Mesh m = load_mesh(js, a->mesh_dir);
    if (device == m.authority.public_key()) {
      usage(js, "--device-key is the authority's own key; enrol a device key");
    }
    Certificate draft;
    draft.role = role;
    draft.mesh_id = m.id;
    draft.device_key = device;
    draft.serial = random_serial();
    draft.not_before_s = now_s();
    draft.not_after_s = draft.not_before_s + std::int64_t{days} * 86400;
    draft.grants = grants;
    issue_and_write(js, draft, m.authority, a->out, "enrolled");
  });

  auto* renew = mesh->add_subcommand("renew", "re-sign a certificate with a new serial and validity window");
  renew->add_option("--mesh", a->mesh_dir, "the mesh directory");
  renew->add_option("--cert", a->cert, "the certificate to renew");
  renew->add_option("--days", a->days, "validity in days from now (1..3650)");
  renew->add_option("--out", a->out, "the certificate file to write (new, mode 0600)");
  renew->callback([a, &json_output] {
    const bool js = json_output;
    if (a->cert.empty()) usage(js, "give --cert CERTFILE");
    if (a->days.empty()) usage(js, "give --days N");
    const int days = parse_days(js, a->days);
    if (a->out.empty()) usage(js, "give --out CERTFILE");
    Mesh m = load_mesh(js, a->mesh_dir);
    auto bytes = read_file(a->cert);
    if (!bytes.ok()) fail(js, bytes.status().with_context("--cert " + a->cert), 1);
    auto old = decode_certificate(*bytes);
    if (!old.ok()) fail(js, old.status().with_context("--cert " + a->cert), 1);
    const TrustAnchor anchor{m.id, {m.authority.public_key()}};
    if (!anchor.trusts(old->issuer_key)) {
      fail(js, Status(Detail::kUnknownIssuer, "the certificate was issued by " + key_label(old->issuer_key) +
                                                  ", not this mesh's authority " + key_label(m.authority.public_key()),
                      "--cert " + a->cert), 1);
    }
    if (old->mesh_id != m.id) {
      fail(js, Status(Detail::kWrongMesh, "the certificate is for mesh " + to_hex(old->mesh_id) + ", not " + to_hex(m.id),
                      "--cert " + a->cert), 1);
    }
    // The old certificate must be genuine (validity window aside: renewing an expired one is
    // the point), so verify it at a time inside its own window.
    if (Status s = verify_certificate(*old, anchor, RevocationSet{}, WallTime::from_ns(old->not_before_s * 1000000000),
                                      RoleSet::all(), nullptr, Duration::zero());
        !s.ok()) {
      fail(js, s.with_context("--cert " + a->cert), 1);
    }
    Certificate draft = *old;
    draft.serial = random_serial();
    draft.not_before_s = now_s();
    draft.not_after_s = draft.not_before_s + std::int64_t{days} * 86400;
    issue_and_write(js, draft, m.authority, a->out, "renewed");
  });

  auto* revoke = mesh->add_subcommand("revoke", "write a signed revocation of a device key");
  revoke->add_option("--mesh", a->mesh_dir, "the mesh directory");
  revoke->add_option("--device-key", a->device_key, "the device's Ed25519 public key (64 hex digits)");
  revoke->add_option("--out", a->out, "the revocation file to write (new, mode 0600)");
  revoke->callback([a, &json_output] {
    const bool js = json_output;
    if (a->device_key.empty()) usage(js, "give --device-key HEX");
    SignPublicKey device{};
    if (!from_hex(a->device_key, device)) {
      usage(js, "--device-key '" + escape_for_message(a->device_key, 200) +
                    "' must be 64 hex digits (an Ed25519 public key)");
    }
    if (a->out.empty()) usage(js, "give --out REVFILE");
    Mesh m = load_mesh(js, a->mesh_dir);
    const TrustAnchor anchor{m.id, {m.authority.public_key()}};
    const Revocation entry = make_revocation(m.id, device, now_s(), m.authority);
    RevocationSet set;
    if (Status s = set.insert(entry, anchor); !s.ok()) fail(js, s, 1);
    const std::vector<std::uint8_t> bytes = encode_revocations(set);
    if (Status s = write_new_file(a->out, bytes); !s.ok()) fail(js, s.with_context("--out " + a->out), 1);
    if (js) {
      std::cout << json{{"ok", true}, {"revocations", a->out}, {"mesh_id", to_hex(m.id)},
                        {"device_key", to_hex(device)}, {"revoked_at", entry.revoked_at_s}}.dump()
                << "\n";
      finish(0);
    }
    std::cout << "revoked " << to_hex(device) << " in mesh " << to_hex(m.id) << "\n"
              << "  wrote " << a->out << " (" << bytes.size()
              << " bytes): give it to a node, which joins it into its revocation set\n";
    finish(0);
  });
}
