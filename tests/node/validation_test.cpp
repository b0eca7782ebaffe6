// Proves the edge checks of issue 9 end to end: ids, model tags and metadata strings that are
// not UTF-8 are refused with kMalformed naming the field and the byte offset, from an app
// (Node::upsert) and from a peer (a DeltaBatch through Node::receive) alike, and nothing is
// stored; records a store already holds with such bytes (written here through
// Limits::accept_invalid_utf8_for_testing, as a store from before the check could hold them)
// are still read, by the node and through the C API, whose JSON shows U+FFFD for them; and a
// data directory held by another handle is refused with kUnavailable naming the holder's PID and
// saying "this process" or "another process". Links the node and libshoal (the C API is the
// reader that used to fail; its own tests in C cannot make such a store).
#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "crdt/codec.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/core/node.hpp"
#include "node/store/memory_store.hpp"
#include "shoal.h"
#include "transport/codec.hpp"

extern char** environ;

using namespace shoal;
using namespace shoal::node;

namespace {

const std::string kBadValue("ab\xff" "cd", 5);  // 0xff is never valid in UTF-8: offset 2

RecordValue rec(Metadata m = {}, std::string model = "") {
  RecordValue r;
  r.vector = {1, 2, 3, 4};
  r.metadata = std::move(m);
  r.metadata.normalize();
  r.model = std::move(model);
  return r;
}

Metadata meta(std::string key, MetaValue v) {
  Metadata m;
  m.fields.emplace_back(std::move(key), std::move(v));
  return m;
}

std::string fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("shoal-validation-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

}  // namespace

TEST_CASE("UTF-8 is checked strictly and repaired with U+FFFD for display", "[node][utf8]") {
  CHECK_FALSE(find_invalid_utf8("plain ascii").has_value());
  CHECK_FALSE(find_invalid_utf8("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x9f").has_value());  // é € 🐟
  CHECK(find_invalid_utf8(kBadValue) == 2u);
  CHECK(find_invalid_utf8("\xc0\x80") == 0u);          // overlong NUL
  CHECK(find_invalid_utf8("a\xed\xa0\x80") == 1u);     // a surrogate
  CHECK(find_invalid_utf8("\xf4\x90\x80\x80") == 0u);  // above U+10FFFF
  CHECK(find_invalid_utf8("ok\xe2\x82") == 2u);        // truncated at the end
  CHECK(to_valid_utf8(kBadValue) == "ab\xef\xbf\xbd" "cd");
  // A truncated sequence is one maximal invalid subpart: one U+FFFD, then the next character.
  CHECK(to_valid_utf8("\xe2\x82x") == "\xef\xbf\xbdx");
  CHECK(to_valid_utf8("h\xc3\xa9") == "h\xc3\xa9");
  CHECK(escape_for_message(kBadValue) == "ab\\xffcd");
}

TEST_CASE("ids, model tags, metadata keys and values that are not UTF-8 are refused by name",
          "[node][utf8]") {
  // What this proves: validate_record_id and validate_record (the checks both the app path and
  // the peer path call) refuse each field with kMalformed naming the field, the rule, the
  // offset of the first invalid byte and the value seen.
  Limits lim;
  Status s = validate_record_id(kBadValue, lim);
  CHECK(s.detail() == Detail::kMalformed);
  CHECK(s.message() == "record id must be valid UTF-8; byte 0xff at offset 2 of 5 is not (value 'ab\\xffcd')");
  // Lookups of what a store may already hold are still allowed.
  CHECK(validate_record_id_for_lookup(kBadValue, lim).ok());

  s = validate_record(rec({}, kBadValue), 4, Metric::kL2, lim);
  CHECK(s.detail() == Detail::kMalformed);
  CHECK(s.message().find("model tag must be valid UTF-8; byte 0xff at offset 2") == 0);

  s = validate_record(rec(meta(kBadValue, std::int64_t{1})), 4, Metric::kL2, lim);
  CHECK(s.detail() == Detail::kMalformed);
  CHECK(s.message().find("metadata key must be valid UTF-8; byte 0xff at offset 2") == 0);

  s = validate_record(rec(meta("note", kBadValue)), 4, Metric::kL2, lim);
  CHECK(s.detail() == Detail::kMalformed);
  CHECK(s.message() ==
        "metadata value of key 'note' must be valid UTF-8; byte 0xff at offset 2 of 5 is not (value 'ab\\xffcd')");

  CHECK(validate_record(rec(meta("note", std::string("h\xc3\xa9"))), 4, Metric::kL2, lim).ok());
}

TEST_CASE("an app's record that is not UTF-8 is refused and nothing is stored", "[node][utf8]") {
  store::MemoryStore st;
  NodeOptions o;
  o.identity = crdt::replica_for_testing(1);
  o.wall_clock = [] { return WallTime::from_ns(1'700'000'000'000'000'000); };
  auto n = Node::open(st, std::move(o));
  REQUIRE(n.ok());
  Node& node = **n;
  REQUIRE(node.create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(node.upsert("c", "ok", rec(meta("note", std::string("fine")))).ok());
  const auto before = store::state_hash(st);
  REQUIRE(before.ok());
  CHECK(node.upsert("c", "x", rec(meta("note", kBadValue))).detail() == Detail::kMalformed);
  CHECK(node.upsert("c", "x", rec({}, kBadValue)).detail() == Detail::kMalformed);
  CHECK(node.upsert("c", kBadValue, rec()).detail() == Detail::kMalformed);
  std::vector<RecordInput> batch;
  batch.push_back({"y", rec()});
  batch.push_back({"z", rec(meta(kBadValue, true))});
  CHECK(node.upsert_batch("c", std::move(batch)).detail() == Detail::kMalformed);
  CHECK(*store::state_hash(st) == *before);
  CHECK(node.collection_info("c")->live_records == 1);
}

TEST_CASE("a peer's delta that is not UTF-8 is refused and changes nothing", "[node][utf8][sync]") {
  // What this proves: the peer path (Node::apply_peer_batch, reached through receive) runs the same
  // validate_record_id / validate_record as the app path, so a peer cannot store what an app
  // may not.
  store::MemoryStore st;
  NodeOptions o;
  o.identity = crdt::replica_for_testing(2);
  o.wall_clock = [] { return WallTime::from_ns(1'700'000'000'000'000'000); };
  auto n = Node::open(st, std::move(o));
  REQUIRE(n.ok());
  Node& node = **n;
  REQUIRE(node.create_collection({"c", 4, Metric::kL2}).ok());
  const crdt::ReplicaId peer = crdt::replica_for_testing(1);
  node.peer_up(peer, Tier::kHot, MonoTime::from_ns(1));
  (void)node.take_outbox();
  const auto before = store::state_hash(st);
  REQUIRE(before.ok());
  auto deliver = [&](const std::string& id, const RecordValue& v) {
    crdt::ORMap other;
    const std::string payload = encode_payload(v);
    auto d = other.upsert(peer, id, crdt::Bytes(payload.begin(), payload.end()), crdt::Hlc::from_raw(1));
    REQUIRE(d.ok());
    crdt::Bytes bytes;
    crdt::encode_delta(*d, bytes);
    transport::DeltaBatch batch;
    batch.last_seq = 1;
    batch.items.push_back({"c", std::string(bytes.begin(), bytes.end())});
    // Through the codec as bytes, as a real peer's message arrives.
    auto msg = transport::decode(transport::encode(transport::Message{batch}));
    REQUIRE(msg.ok());
    return node.receive(peer, *msg, MonoTime::from_ns(2));
  };
  CHECK(deliver("r", rec(meta("note", kBadValue))).detail() == Detail::kMalformed);
  CHECK(deliver("r", rec(meta(kBadValue, std::int64_t{1}))).detail() == Detail::kMalformed);
  CHECK(deliver("r", rec({}, kBadValue)).detail() == Detail::kMalformed);
  CHECK(deliver(kBadValue, rec()).detail() == Detail::kMalformed);
  CHECK(*store::state_hash(st) == *before);
  CHECK(node.get("c", "r").status().detail() == Detail::kNoSuchRecord);
  // And a valid one from the same peer is taken, so the refusals above were about the bytes.
  CHECK(deliver("r", rec(meta("note", std::string("fine")))).ok());
  CHECK(node.get("c", "r").ok());
}

TEST_CASE("records a store already holds with bytes that are not UTF-8 are still read",
          "[node][utf8][capi]") {
  // What this proves: readers never fail on what a store holds. A data directory gets a record
  // whose metadata key, metadata value and model tag are not UTF-8 (as a store written before
  // the check could hold); after reopening with the default limits, Node::get returns it as
  // stored and shoal_get (which used to fail with SHOAL_EINTERNAL) renders U+FFFD in its JSON.
  const std::string dir = fresh_dir("legacy");
  {
    DataDirOptions o;
    o.node.limits.accept_invalid_utf8_for_testing = true;
    auto d = open_data_dir(dir, std::move(o));
    REQUIRE(d.ok());
    SharedNode& node = (*d)->node();
    REQUIRE(node.create_collection({"c", 4, Metric::kL2}).ok());
    Metadata m;
    m.fields = {{"note", kBadValue}, {std::string("k\xfe", 2), std::int64_t{7}}, {"year", std::int64_t{2021}}};
    REQUIRE(node.upsert("c", "r", rec(m, kBadValue)).ok());
  }
  {
    auto d = open_data_dir(dir, {});
    REQUIRE(d.ok());
    auto got = (*d)->node().get("c", "r");
    REQUIRE(got.ok());
    CHECK(got->siblings.at(0).value.model == kBadValue);
    CHECK(*got->siblings.at(0).value.metadata.find("note") == MetaValue(kBadValue));
  }
  shoal_db* db = nullptr;
  shoal_error err{};
  REQUIRE(shoal_open(dir.c_str(), nullptr, &db, &err) == SHOAL_OK);
  shoal_record* r = nullptr;
  const int rc = shoal_get(db, "c", "r", 1, &r, &err);
  INFO(err.message);
  REQUIRE(rc == SHOAL_OK);
  CHECK(std::string(shoal_record_metadata_json(r)) ==
        "{\"k\xef\xbf\xbd\":7,\"note\":\"ab\xef\xbf\xbd" "cd\",\"year\":2021}");
  CHECK(std::string(shoal_record_model(r)) == kBadValue);
  shoal_record_free(r);
  // The C API refuses the same bytes on the way in, and nothing is stored.
  shoal_meta* m = shoal_meta_new();
  CHECK(shoal_meta_set_string(m, "note", kBadValue.c_str(), &err) == SHOAL_E_MALFORMED);
  CHECK(std::string(err.message).find("offset 2") != std::string::npos);
  shoal_meta_free(m);
  const float v[4] = {1, 2, 3, 4};
  CHECK(shoal_upsert(db, "c", "s", 1, v, 4, nullptr, kBadValue.c_str(), &err) == SHOAL_E_MALFORMED);
  std::uint64_t count = 0;
  CHECK(shoal_collection_count(db, "c", &count, nullptr) == SHOAL_OK);
  CHECK(count == 1);
  shoal_close(db);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a data directory open in this process is refused as unavailable, naming our PID",
          "[node][lock]") {
  const std::string dir = fresh_dir("lock-self");
  auto first = open_data_dir(dir, {});
  REQUIRE(first.ok());
  auto second = open_data_dir(dir, {});
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == Code::kUnavailable);
  INFO(second.status().to_string());
  CHECK(second.status().message().find("this process (PID " + std::to_string(::getpid()) + ")") !=
        std::string::npos);
  first.value().reset();
  CHECK(open_data_dir(dir, {}).ok());  // released on close
  std::filesystem::remove_all(dir);
}

TEST_CASE("a data directory open in another process is refused, naming that process's PID",
          "[node][lock]") {
  const std::string dir = fresh_dir("lock-other");
  // kill9_writer opens the directory and writes forever; its first "a 0" line says it is open.
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::string prog = SHOAL_KILL9_WRITER;
  std::string seed = "1", first = "0";
  char* argv[] = {prog.data(), const_cast<char*>(dir.c_str()), seed.data(), first.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, prog.c_str(), &fa, nullptr, argv, environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  std::string out;
  char buf[256];
  while (out.find("a 0\n") == std::string::npos) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, 30000) <= 0) break;
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  const bool started = out.find("a 0\n") != std::string::npos;
  auto second = started ? open_data_dir(dir, {}) : Result<std::unique_ptr<OpenDataDir>>(Status(Code::kInternal, "writer did not start"));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fds[0]);
  REQUIRE(started);
  REQUIRE_FALSE(second.ok());
  INFO(second.status().to_string());
  CHECK(second.status().code() == Code::kUnavailable);
  CHECK(second.status().message().find("another process (PID " + std::to_string(pid) + ")") !=
        std::string::npos);
  std::filesystem::remove_all(dir);
}
