// tests/sink/sink_state_test.cpp: the sink's state env (D54, D60; docs/sink-format.md, "The state
// env"), fed with a real node's records. Proves: a sink reopened on its state env joins only the
// objects the env had not applied and has the running sink's state (records, entries, contexts,
// the object holding each winner, cold search equal to exact search); an object put before a kill
// took the state commit with it is joined at open (the replay); a state commit that fails takes
// the object back and acknowledges nothing; a state env deleted, damaged, or naming an object the
// store lost is rebuilt from the objects to the same state; an applied object a compaction
// removed before the state heard of it is forgotten at open; a sink killed with SIGKILL while
// uploading reopens with everything it acknowledged. The collection's metric and spec (D62),
// which history() uploads and then changes, come back in each of those cases too. Random data
// uses the seed printed with each case.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "node/core/node_format.hpp"
#include "node/store/memory_store.hpp"
#include "sink/lmdb_object_store.hpp"
#include "sink/memory_object_store.hpp"
#include "sink_fixture.hpp"

using namespace shoal;
using namespace shoal::sink_test;
using sink::SinkService;

namespace {

constexpr const char* kColl = "photos";

std::unique_ptr<SinkService> open_on(sink::ObjectStore& objects, store::Store* state) {
  auto s = SinkService::open(objects, {}, state);
  INFO(s.status().to_string());
  REQUIRE(s.ok());
  return std::move(*s);
}

// What a member can read of the sink: every bootstrap page (records, entries, contexts) and,
// for ids 0..n and "new", fetch's answer including the object named as the winner's holder.
struct Seen {
  std::vector<std::string> segments, contexts;
  std::vector<std::string> settings;  // each page's metric byte and spec (the catalogue encoding)
  std::vector<std::string> fetched;
  std::uint64_t records = 0, objects = 0, payload_bytes = 0;
  bool operator==(const Seen&) const = default;
};

Seen seen(const SinkService& s, int n) {
  Seen out;
  for (auto& p : bootstrap_pages(s, kColl)) {
    out.segments.push_back(p.segment);
    out.contexts.push_back(p.context);
    out.settings.push_back(str_cat(p.metric ? int(node::metric_to_wire_byte(*p.metric)) : -1, "/",
                                   p.spec ? node::format::encode_spec(*p.spec, 0) : std::string("none")));
  }
  std::vector<std::string> ids{"new"};
  for (int i = 0; i < n; ++i) ids.push_back(id_of(i));
  auto f = s.fetch(kColl, ids);
  REQUIRE(f.ok());
  for (const auto& r : *f) out.fetched.push_back(str_cat(r.id, r.found, r.payload, r.hlc, r.object));
  out.records = s.status().records;
  out.objects = s.status().objects;
  out.payload_bytes = s.status().payload_bytes;
  return out;
}

// The key the sink would give its next object: the highest sequence number in the store + 1.
std::string next_key(sink::ObjectStore& objects, const char* kind) {
  auto keys = objects.list("");
  REQUIRE(keys.ok());
  std::uint64_t top = 0;
  for (const auto& k : *keys) top = std::max<std::uint64_t>(top, std::stoull(k.substr(k.rfind('/') + 1)));
  char digits[21];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(top + 1));
  return str_cat(kind, "/", kColl, "/", digits);
}

// Uploads saying the metric and a spec, a delete, a compaction, upserts and deletes after it (one
// saying a changed spec), more uploads.
void history(SinkService& sink, node::Node& n, Rng& rng) {
  node::CollectionSpec spec;
  spec.name = kColl;
  spec.dimension = 4;
  spec.metric = node::Metric::kL2;
  spec.m = 8;
  for (const auto& s : segments_of(n, kColl, 16)) REQUIRE(sink.upload_segment(s, kNow, node::Metric::kL2, spec).ok());
  REQUIRE(sink.apply_delta(kColl, delete_delta(n, kColl, "r0001"), kNow).ok());
  REQUIRE(sink.compact().ok());
  spec.m = 24;
  spec.ef_search = 77;
  REQUIRE(sink.apply_delta(kColl, upsert_delta(n, kColl, "r0005", random_value(rng, 4, 5)), kNow, node::Metric::kL2, spec).ok());
  for (int i : {2, 17, 40}) REQUIRE(sink.apply_delta(kColl, upsert_delta(n, kColl, id_of(i), random_value(rng, 4, i)), kNow).ok());
  REQUIRE(sink.apply_delta(kColl, delete_delta(n, kColl, "r0018"), kNow).ok());
  for (const auto& s : segments_of(n, kColl, 25)) REQUIRE(sink.upload_segment(s, kNow).ok());
  auto page = sink.bootstrap(kColl, "");  // the newest spec said (Seen's equality then proves it kept)
  REQUIRE(page.ok());
  REQUIRE(page->spec.has_value());
  CHECK((page->spec->m == 24 && page->spec->ef_search == 77 && page->metric == node::Metric::kL2));
}

}  // namespace

TEST_CASE("a sink reopened on its LMDB state env joins only the objects it had not applied: a kill between the put and the state commit is replayed",
          "[sink][service][state][lmdb]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 60, rng);
  const TempDir tmp("shoal-sink-state");
  auto objects = sink::LmdbObjectStore::open(tmp.path + "/objects");
  REQUIRE(objects.ok());
  Seen running;
  {
    auto env = sink::open_state_env(tmp.path + "/state");
    REQUIRE(env.ok());
    auto sink = open_on(**objects, env->store.get());
    CHECK(sink->rebuilt_at_open());  // a new env is built (from no object)
    history(*sink, *n, rng);
    running = seen(*sink, 60);
  }
  {  // reopened: nothing to join, the same state
    auto env = sink::open_state_env(tmp.path + "/state");
    REQUIRE(env.ok());
    CHECK(env->discarded.empty());
    auto sink = open_on(**objects, env->store.get());
    CHECK_FALSE(sink->rebuilt_at_open());
    CHECK(sink->joined_at_open() == 0);
    CHECK(seen(*sink, 60) == running);
    check_cold_equals_exact(*sink, *n, kColl, node::Metric::kL2, 4, rng, 10);
  }
  // What a kill right after the object store's put leaves: the objects, not the state commits.
  const std::string upsert = upsert_delta(*n, kColl, "new", random_value(rng, 4, 99));
  REQUIRE((*objects)->put(next_key(**objects, "dlt"), upsert).ok());
  const std::string del = delete_delta(*n, kColl, id_of(30));
  REQUIRE((*objects)->put(next_key(**objects, "dlt"), del).ok());
  Seen replayed;
  {
    auto env = sink::open_state_env(tmp.path + "/state");
    REQUIRE(env.ok());
    auto sink = open_on(**objects, env->store.get());
    CHECK_FALSE(sink->rebuilt_at_open());
    CHECK(sink->joined_at_open() == 2);
    replayed = seen(*sink, 60);
    CHECK(replayed.records == running.records);  // one record more, one less
    auto f = sink->fetch(kColl, std::vector<std::string>{"new", id_of(30)});
    REQUIRE(f.ok());
    CHECK((*f)[0].found);
    CHECK_FALSE((*f)[1].found);
    check_cold_equals_exact(*sink, *n, kColl, node::Metric::kL2, 4, rng, 10);
  }
  {  // the same as a sink that rebuilds everything from the objects
    store::MemoryStore fresh;
    auto sink = open_on(**objects, &fresh);
    CHECK(sink->rebuilt_at_open());
    CHECK(seen(*sink, 60) == replayed);
  }
}

TEST_CASE("a reopened sink has the running sink's state also on a state env: an object put back behind its back is joined",
          "[sink][service][state]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 60, rng);
  sink::MemoryObjectStore objects;
  store::MemoryStore state;
  auto sink = open_on(objects, &state);
  const auto segs = segments_of(*n, kColl, 16);
  history(*sink, *n, rng);
  REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, "new", random_value(rng, 4, 99)), kNow).ok());
  REQUIRE(objects.put("seg/photos/00000000000000000002", segs[0]).ok());  // older than the compaction
  const Seen before = seen(*sink, 60);
  auto reopened = open_on(objects, &state);
  CHECK_FALSE(reopened->rebuilt_at_open());
  CHECK(reopened->joined_at_open() == 1);
  Seen after = seen(*reopened, 60);
  CHECK(after.objects == before.objects + 1);  // the segment put back, judged by the compacted context
  after.objects = before.objects;
  CHECK(after == before);
  store::MemoryStore fresh;
  auto rebuilt = open_on(objects, &fresh);
  CHECK(seen(*rebuilt, 60) == seen(*reopened, 60));
  check_cold_equals_exact(*reopened, *n, kColl, node::Metric::kL2, 4, rng, 10);
}

TEST_CASE("a state commit that fails acknowledges nothing, takes the object back and changes nothing",
          "[sink][service][state]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 40, rng);
  sink::MemoryObjectStore objects;
  store::MemoryStore state;
  auto sink = open_on(objects, &state);
  const auto segs = segments_of(*n, kColl, 10);
  REQUIRE(sink->upload_segment(segs[0], kNow).ok());
  const Seen before = seen(*sink, 40);
  const auto hash = store::state_hash(state);
  REQUIRE(hash.ok());
  const std::uint64_t count = objects.object_count();
  state.fail_next_writes(1);
  auto r = sink->upload_segment(segs[1], kNow);
  REQUIRE_FALSE(r.ok());
  INFO(r.status().to_string());
  CHECK(r.status().to_string().find("taken back") != std::string::npos);
  CHECK(objects.object_count() == count);
  CHECK(seen(*sink, 40) == before);
  CHECK(*store::state_hash(state) == *hash);
  state.fail_next_writes(1);  // a first collection's upload: the collection is not created either
  REQUIRE_FALSE(sink->apply_delta("other", upsert_delta(*n, kColl, "x", random_value(rng, 4, 1)), kNow).ok());
  CHECK(sink->collections() == std::vector<std::string>{kColl});
  REQUIRE(sink->upload_segment(segs[1], kNow).ok());  // the member's retry
  CHECK(sink->status().records == 20);
}

TEST_CASE("a state env deleted, damaged, or behind a replaced object store is rebuilt from the objects to the same state",
          "[sink][service][state][lmdb]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 60, rng);
  const TempDir tmp("shoal-sink-state");
  const std::string state_dir = tmp.path + "/state";
  auto objects = sink::LmdbObjectStore::open(tmp.path + "/objects");
  REQUIRE(objects.ok());
  Seen running;
  {
    auto env = sink::open_state_env(state_dir);
    REQUIRE(env.ok());
    auto sink = open_on(**objects, env->store.get());
    history(*sink, *n, rng);
    running = seen(*sink, 60);
  }
  SECTION("deleted") {
    std::filesystem::remove_all(state_dir);
    auto env = sink::open_state_env(state_dir);
    REQUIRE(env.ok());
    auto sink = open_on(**objects, env->store.get());
    CHECK(sink->rebuilt_at_open());
    CHECK(seen(*sink, 60) == running);
    check_cold_equals_exact(*sink, *n, kColl, node::Metric::kL2, 4, rng, 10);
  }
  SECTION("damaged") {
    {
      std::ofstream f(state_dir + "/data.mdb", std::ios::binary | std::ios::trunc);
      f << std::string(8192, 'x');
    }
    auto env = sink::open_state_env(state_dir);
    REQUIRE(env.ok());
    CHECK_FALSE(env->discarded.empty());
    auto sink = open_on(**objects, env->store.get());
    CHECK(sink->rebuilt_at_open());
    CHECK(seen(*sink, 60) == running);
  }
  SECTION("an applied object gone with no newer compaction: the store is not the one the state was built from") {
    auto keys = (*objects)->list("seg/");  // not spc/ or idx/, which sort after it
    REQUIRE(keys.ok());
    REQUIRE((*objects)->remove(keys->back()).ok());  // the newest segment
    auto env = sink::open_state_env(state_dir);
    REQUIRE(env.ok());
    auto sink = open_on(**objects, env->store.get());
    CHECK(sink->rebuilt_at_open());
    store::MemoryStore fresh;
    auto rebuilt = open_on(**objects, &fresh);
    CHECK(seen(*sink, 60) == seen(*rebuilt, 60));
  }
}

TEST_CASE("an applied object older than the newest compaction that is gone is forgotten at open without a rebuild",
          "[sink][service][state]") {
  // What a compaction leaves when the process dies between removing the old objects and the
  // state transaction recording it: the state names objects the store no longer holds, and a
  // newer compaction explains it. Made here by putting an old object back (open joins it) and
  // removing it again.
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 60, rng);
  sink::MemoryObjectStore objects;
  store::MemoryStore state;
  auto sink = open_on(objects, &state);
  const auto segs = segments_of(*n, kColl, 16);
  for (const auto& s : segs) REQUIRE(sink->upload_segment(s, kNow).ok());
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0001"), kNow).ok());
  REQUIRE(sink->compact().ok());
  const Seen compacted = seen(*sink, 60);
  CHECK(compacted.objects == 2);
  REQUIRE(objects.put("seg/photos/00000000000000000001", segs[0]).ok());
  {
    auto again = open_on(objects, &state);
    CHECK(again->joined_at_open() == 1);
    CHECK(again->status().objects == 3);
  }
  REQUIRE(objects.remove("seg/photos/00000000000000000001").ok());
  auto reopened = open_on(objects, &state);
  CHECK_FALSE(reopened->rebuilt_at_open());
  CHECK(reopened->joined_at_open() == 0);
  CHECK(seen(*reopened, 60) == compacted);
  check_cold_equals_exact(*reopened, *n, kColl, node::Metric::kL2, 4, rng, 10);
}

TEST_CASE("a sink killed (SIGKILL) while uploading reopens on its state env with every acknowledged upload, equal to a rebuild",
          "[sink][service][state][lmdb]") {
  // A real kill at a point drawn from the seed: wherever it lands (before a put, between the put
  // and the state commit, after the commit), the reopened sink holds what it acknowledged and
  // its state env, caught up, equals a rebuild from the objects.
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 120, rng);
  const auto segs = segments_of(*n, kColl, 3);
  const TempDir tmp("shoal-sink-kill");
  const std::size_t acks_before_kill = 1 + rng.uniform(segs.size() - 1);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // the sink: uploads until killed; reports each acknowledgement
    ::close(fds[0]);
    auto objects = sink::LmdbObjectStore::open(tmp.path + "/objects");
    auto env = sink::open_state_env(tmp.path + "/state");
    if (!objects.ok() || !env.ok()) ::_exit(2);
    auto sink = SinkService::open(**objects, {}, env->store.get());
    if (!sink.ok()) ::_exit(3);
    for (std::size_t i = 0;; i = (i + 1) % segs.size()) {
      if (!(*sink)->upload_segment(segs[i], kNow).ok()) ::_exit(4);
      const char b = 1;
      if (::write(fds[1], &b, 1) != 1) ::_exit(5);
    }
  }
  ::close(fds[1]);
  std::size_t acked = 0;
  char b = 0;
  while (acked < acks_before_kill && ::read(fds[0], &b, 1) == 1) ++acked;
  ::kill(child, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  // Acknowledgements sent before the kill and not read yet count too.
  while (::read(fds[0], &b, 1) == 1) ++acked;
  ::close(fds[0]);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(acked >= acks_before_kill);
  auto objects = sink::LmdbObjectStore::open(tmp.path + "/objects");
  REQUIRE(objects.ok());
  auto env = sink::open_state_env(tmp.path + "/state");
  REQUIRE(env.ok());
  CHECK(env->discarded.empty());
  auto sink = open_on(**objects, env->store.get());
  INFO("acknowledged " << acked << ", joined at open " << sink->joined_at_open() << ", rebuilt "
                       << sink->rebuilt_at_open());
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < std::min(acked, segs.size()); ++i) {
    auto seg = sink::decode_segment(segs[i]);
    REQUIRE(seg.ok());
    for (const auto& r : seg->records) ids.push_back(r.id);
  }
  for (std::size_t i = 0; i < ids.size(); i += 100) {
    const std::vector<std::string> part(ids.begin() + static_cast<std::ptrdiff_t>(i),
                                        ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + 100)));
    auto f = sink->fetch(kColl, part);
    REQUIRE(f.ok());
    for (const auto& r : *f) CHECK(r.found);
  }
  store::MemoryStore fresh;
  auto rebuilt = open_on(**objects, &fresh);
  CHECK(seen(*sink, 120) == seen(*rebuilt, 120));
  // (Cold search equals exact search over the node only once every record was uploaded.)
  if (acked >= segs.size()) check_cold_equals_exact(*sink, *n, kColl, node::Metric::kL2, 4, rng, 5);
}
