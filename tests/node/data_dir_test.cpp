// Proves that a copied data directory never reuses a dot (issue 17): a directory copied with
// `cp -a` opens under a new incarnation before it writes, so after both copies write (to new ids
// and concurrently to one id) no dot names two writes, and syncing the two (real data directories
// on LMDB, every message through the Cap'n Proto codec) converges with every write of both, the
// concurrent ones as siblings. Also: a plain reopen, a rename in place and a second open of the
// copy keep their incarnation; another machine id, a missing FINGERPRINT, an older copy put back
// in place and a requested restore each take one above every incarnation used before; FINGERPRINT
// is mode 0600. The mutation case turns the check off and shows the same copy reusing dots, so the
// first case would catch its removal. Backup/restore/compact (item 4): a backup of a closed
// directory restored elsewhere opens under a new incarnation and syncs with its source without
// losing a write; compaction shrinks a store with free pages in place, keeping records and identity.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <set>

#include "node/runtime/data_dir.hpp"
#include "transport/codec.hpp"

using namespace shoal;
using namespace shoal::node;

namespace {

std::string fresh_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() /
           ("shoal-datadir-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(p);
  return p.string();
}

void run(const std::string& cmd) {
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
}

DataDirOptions options(bool check = true) {
  DataDirOptions o;
  o.node.build_threads = 1;
  o.skip_fingerprint_for_testing = !check;
  return o;
}

std::unique_ptr<OpenDataDir> open_dir(const std::string& path, DataDirOptions o = options()) {
  auto d = open_data_dir(path, std::move(o));
  INFO(path << ": " << d.status().to_string());
  REQUIRE(d.ok());
  return std::move(d).value();
}

RecordValue value(float x) {
  RecordValue r;
  r.vector = {x, 1.0f, 0.5f, 0.25f};
  return r;
}

// A directory with a collection and three records, closed.
crdt::ReplicaId make_source(const std::string& path) {
  auto d = open_dir(path);
  CollectionSpec spec;
  spec.name = "c";
  spec.dimension = 4;
  REQUIRE(d->node().create_collection(spec).ok());
  for (int i = 0; i < 3; ++i) REQUIRE(d->node().upsert("c", "x-" + std::to_string(i), value(float(i))).ok());
  return d->node().replica();
}

// Every dot of every sibling of `ids` in `d`.
std::vector<crdt::Dot> dots_of(OpenDataDir& d, const std::vector<std::string>& ids) {
  std::vector<crdt::Dot> out;
  for (const auto& id : ids) {
    auto g = d.node().get("c", id);
    REQUIRE(g.ok());
    for (const auto& s : g->siblings) out.push_back(s.dot);
  }
  return out;
}

// Both copies write: five new ids each, and one id both write concurrently. Returns the dots
// each side issued.
std::pair<std::vector<crdt::Dot>, std::vector<crdt::Dot>> write_on_both(OpenDataDir& a, OpenDataDir& b) {
  std::vector<std::string> ids_a, ids_b;
  for (int i = 0; i < 5; ++i) {
    ids_a.push_back("a-" + std::to_string(i));
    ids_b.push_back("b-" + std::to_string(i));
    REQUIRE(a.node().upsert("c", ids_a.back(), value(10.0f + float(i))).ok());
    REQUIRE(b.node().upsert("c", ids_b.back(), value(20.0f + float(i))).ok());
  }
  REQUIRE(a.node().upsert("c", "both", value(1.0f)).ok());
  REQUIRE(b.node().upsert("c", "both", value(2.0f)).ok());
  ids_a.push_back("both");
  ids_b.push_back("both");
  return {dots_of(a, ids_a), dots_of(b, ids_b)};
}

// Delivers messages between two nodes until quiet, through the codec.
void sync(SharedNode& a, SharedNode& b) {
  MonoTime now = MonoTime::from_ns(1'000'000'000);
  SharedNode* nodes[2] = {&a, &b};
  a.peer_up(b.replica(), Tier::kHot, now);
  b.peer_up(a.replica(), Tier::kHot, now);
  std::deque<std::tuple<int, std::string>> queue;  // (to, bytes)
  for (int step = 0; step < 10000; ++step) {
    for (int i = 0; i < 2; ++i) {
      nodes[i]->tick(now);
      for (auto& out : nodes[i]->take_outbox()) {
        REQUIRE(out.to == nodes[1 - i]->replica());
        queue.emplace_back(1 - i, transport::encode(out.message));
      }
    }
    if (queue.empty()) return;
    auto [to, bytes] = std::move(queue.front());
    queue.pop_front();
    auto msg = transport::decode(bytes);
    REQUIRE(msg.ok());
    Status st = nodes[to]->receive(nodes[1 - to]->replica(), *msg, now);
    INFO(st.to_string());
    CHECK(st.ok());
    now += Duration::millis(1);
  }
  FAIL("the two nodes did not go quiet");
}

}  // namespace

TEST_CASE("a data directory copied with cp -a takes a new incarnation before its first dot, and both copies "
          "converge with every write after syncing",
          "[node][data_dir]") {
  const std::string a_path = fresh_dir("copy-a"), b_path = fresh_dir("copy-b");
  const crdt::ReplicaId original = make_source(a_path);
  run("cp -a '" + a_path + "' '" + b_path + "'");

  auto a = open_dir(a_path);
  auto b = open_dir(b_path);
  CHECK(a->node().replica() == original);
  CHECK(a->new_incarnation_reason().empty());
  CHECK(b->node().replica().identity != original.identity);  // new identity bytes: see the next test
  CHECK(b->node().replica().incarnation == original.incarnation + 1);
  CHECK_THAT(b->new_incarnation_reason(), Catch::Contains("copied or moved"));

  auto [dots_a, dots_b] = write_on_both(*a, *b);
  for (const auto& d : dots_a) {
    INFO("dot " << d.replica.to_string() << ":" << d.counter << " issued by both copies");
    CHECK(std::find(dots_b.begin(), dots_b.end(), d) == dots_b.end());
  }

  sync(a->node(), b->node());
  for (auto* d : {a.get(), b.get()}) {
    INFO((d == a.get() ? "original" : "copy"));
    CHECK(d->node().collection_info("c")->live_records == 3 + 5 + 5 + 1);
    for (const char* prefix : {"x-", "a-", "b-"}) {
      for (int i = 0; i < (prefix[0] == 'x' ? 3 : 5); ++i) {
        CHECK(d->node().get("c", prefix + std::to_string(i)).ok());
      }
    }
    auto both = d->node().get("c", "both");
    REQUIRE(both.ok());
    CHECK(both->siblings.size() == 2);  // concurrent writes of the two copies: neither lost
  }
  CHECK(*a->node().crdt_state_for_testing("c") == *b->node().crdt_state_for_testing("c"));
  CHECK(*a->node().digest_root("c") == *b->node().digest_root("c"));

  // Reopened where they are, the data directory takes no other incarnation (each node took a
  // fresh one at its first write, D48, which the store keeps).
  const auto b_id = b->node().replica();
  a.reset();
  b.reset();
  for (const auto& [path, id] : {std::pair{a_path, original}, std::pair{b_path, b_id}}) {
    auto d = open_dir(path);
    CHECK(d->new_incarnation_reason().empty());
    CHECK(d->node().replica().identity == id.identity);
    CHECK(d->node().replica().incarnation > id.incarnation);
  }
  std::filesystem::remove_all(a_path);
  std::filesystem::remove_all(b_path);
}

TEST_CASE("a data directory keeps its incarnation when reopened or renamed in place, and takes one above "
          "every earlier one when moved to another machine, restored, or put back from an older copy",
          "[node][data_dir]") {
  const std::string path = fresh_dir("moves"), renamed = fresh_dir("moves-renamed"),
                    old_copy = fresh_dir("moves-old");
  const crdt::ReplicaId original = make_source(path);
  struct stat st {};
  REQUIRE(::stat((path + "/FINGERPRINT").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  CHECK(open_dir(path)->node().replica() == original);
  std::filesystem::rename(path, renamed);  // same filesystem: same inodes, not a copy
  CHECK(open_dir(renamed)->node().replica() == original);
  std::filesystem::rename(renamed, path);
  run("cp -a '" + path + "' '" + old_copy + "'");  // a backup, taken now (incarnation 0)

  // Every renewal takes a replica id never used before (new identity bytes, the incarnation one
  // above the store's): `used` collects them.
  std::vector<crdt::ReplicaId> used{original};
  auto fresh = [&](const crdt::ReplicaId& id) {
    const bool is_new = std::find(used.begin(), used.end(), id) == used.end();
    used.push_back(id);
    return is_new;
  };
  {
    DataDirOptions o = options();
    o.machine_id_for_testing = "another-machine";
    auto d = open_dir(path, o);
    CHECK(fresh(d->node().replica()));
    CHECK(d->node().replica().incarnation == original.incarnation + 1);
    CHECK_THAT(d->new_incarnation_reason(), Catch::Contains("machine"));
  }
  // Back on the real machine id: a move again, so one more.
  const crdt::ReplicaId back = open_dir(path)->node().replica();
  CHECK(fresh(back));
  CHECK(back.incarnation == original.incarnation + 2);
  CHECK(open_dir(path)->node().replica() == back);

  // The old backup's store put back in place over this directory's store: it holds the
  // original id, which this directory no longer issues under; a new one.
  run("rm -rf '" + path + "/store' && cp -a '" + old_copy + "/store' '" + path + "/store'");
  {
    auto d = open_dir(path);
    CHECK(fresh(d->node().replica()));
    // Which check fires first depends on whether the filesystem reused the old inode numbers:
    // "copied or moved" when it did not, "another replica" when it did. Either renews.
    CHECK_FALSE(d->new_incarnation_reason().empty());
  }
  // FINGERPRINT missing (a partial copy, or a directory from before fingerprints): one more.
  std::filesystem::remove(path + "/FINGERPRINT");
  CHECK(fresh(open_dir(path)->node().replica()));
  // A requested new incarnation (shoal restore), even in place.
  crdt::ReplicaId restored;
  {
    DataDirOptions o = options();
    o.new_incarnation = true;
    auto d = open_dir(path, o);
    restored = d->node().replica();
    CHECK(fresh(restored));
    CHECK_THAT(d->new_incarnation_reason(), Catch::Contains("requested"));
  }
  CHECK(open_dir(path)->node().replica() == restored);
  std::filesystem::remove_all(path);
  std::filesystem::remove_all(old_copy);
}

TEST_CASE("two copies of one source (a golden image cloned twice) never share a dot", "[node][data_dir]") {
  // Both copies detect the same move and take the same next incarnation; only fresh identity
  // bytes keep their dots apart.
  const std::string src = fresh_dir("gold-src"), one = fresh_dir("gold-1"), two = fresh_dir("gold-2");
  const crdt::ReplicaId original = make_source(src);
  run("cp -a '" + src + "' '" + one + "' && cp -a '" + src + "' '" + two + "'");
  auto a = open_dir(one);
  auto b = open_dir(two);
  CHECK(a->node().replica().incarnation == b->node().replica().incarnation);
  CHECK(a->node().replica() != b->node().replica());
  CHECK(a->node().replica() != original);
  auto [dots_a, dots_b] = write_on_both(*a, *b);
  for (const auto& d : dots_a) CHECK(std::find(dots_b.begin(), dots_b.end(), d) == dots_b.end());
  a.reset();
  b.reset();
  for (const auto& p : {src, one, two}) std::filesystem::remove_all(p);
}

TEST_CASE("without the fingerprint check, the fresh incarnation at the first write still keeps a copied data "
          "directory's dots apart from the original's (an undetected clone)",
          "[node][data_dir]") {
  // Two devices under one replica id (an image cloned with its machine id and fingerprint): each
  // node takes a new incarnation, a random step above the copied one, at its first write (D48).
  // Fixed, different entropy per copy (what the OS gives two devices, made deterministic here).
  const std::string a_path = fresh_dir("clone-a"), b_path = fresh_dir("clone-b");
  const crdt::ReplicaId original = make_source(a_path);
  run("cp -a '" + a_path + "' '" + b_path + "'");
  DataDirOptions oa = options(false), ob = options(false);
  oa.node.entropy = [] { return std::uint64_t{1}; };
  ob.node.entropy = [] { return std::uint64_t{2}; };
  auto a = open_dir(a_path, std::move(oa));
  auto b = open_dir(b_path, std::move(ob));
  CHECK(a->node().replica() == b->node().replica());  // nothing local told them apart
  auto [dots_a, dots_b] = write_on_both(*a, *b);
  for (const auto& d : dots_a) {
    CHECK(d.replica.identity == original.identity);
    CHECK(std::find(dots_b.begin(), dots_b.end(), d) == dots_b.end());
  }
  CHECK(dots_a.front().replica.incarnation != dots_b.front().replica.incarnation);
  a.reset();
  b.reset();
  std::filesystem::remove_all(a_path);
  std::filesystem::remove_all(b_path);
}

TEST_CASE("mutation: without the fingerprint check and the fresh incarnation, a copied data directory reuses the "
          "original's dots",
          "[node][data_dir][mutation]") {
  const std::string a_path = fresh_dir("mut-a"), b_path = fresh_dir("mut-b");
  make_source(a_path);
  run("cp -a '" + a_path + "' '" + b_path + "'");
  DataDirOptions stale = options(false);
  stale.node.mutations.stale_incarnation = true;
  auto a = open_dir(a_path, stale);
  auto b = open_dir(b_path, stale);
  CHECK(a->node().replica() == b->node().replica());
  auto [dots_a, dots_b] = write_on_both(*a, *b);
  std::size_t shared = 0;
  for (const auto& d : dots_a) shared += std::count(dots_b.begin(), dots_b.end(), d);
  CHECK(shared == dots_a.size());  // every dot names two different writes
  a.reset();
  b.reset();
  std::filesystem::remove_all(a_path);
  std::filesystem::remove_all(b_path);
}

TEST_CASE("a restored backup holds every record under a new incarnation, and syncing it with its still-running "
          "source loses no write",
          "[node][data_dir][backup]") {
  const std::string src = fresh_dir("bk-src"), backup = fresh_dir("bk-backup"), restored = fresh_dir("bk-restored");
  const crdt::ReplicaId original = make_source(src);
  {
    auto open = open_dir(src);  // a backup needs the directory closed
    auto busy = backup_data_dir(src, backup, false);
    CHECK(busy.status().code() == Code::kUnavailable);
  }
  auto b = backup_data_dir(src, backup, false);
  REQUIRE(b.ok());
  CHECK(b->replica == original.to_string());
  CHECK(std::filesystem::exists(backup + "/store/data.mdb"));
  CHECK(!std::filesystem::exists(backup + "/FINGERPRINT"));
  struct stat st {};
  REQUIRE(::stat((backup + "/store/data.mdb").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(backup_data_dir(src, backup, false).status().detail() == Detail::kAlreadyExists);
  // A destination inside the data directory is refused before anything is created there,
  // however it is spelled (a trailing slash, a "..").
  for (const std::string& inside : {src + "/bk", src + "/snapshots/../bk/", src + "/store/x"}) {
    INFO(inside);
    const Status refused = backup_data_dir(src, inside, false).status();
    CHECK(refused.code() == Code::kInvalidArgument);
    CHECK(refused.to_string().find("inside the data directory") != std::string::npos);
    CHECK(!std::filesystem::exists(src + "/bk"));
    CHECK(!std::filesystem::exists(src + "/store/x"));
  }

  auto r = restore_data_dir(backup, restored, options());
  REQUIRE(r.ok());
  CHECK(r->replica != original.to_string());
  CHECK(restore_data_dir(backup, restored, options()).status().detail() == Detail::kAlreadyExists);

  auto a = open_dir(src);
  auto c = open_dir(restored);
  CHECK(c->node().replica().to_string() == r->replica);  // recorded at restore: no further renewal
  CHECK(c->node().replica().incarnation == original.incarnation + 1);
  CHECK(c->node().collection_info("c")->live_records == 3);
  auto [dots_a, dots_c] = write_on_both(*a, *c);
  for (const auto& d : dots_a) CHECK(std::find(dots_c.begin(), dots_c.end(), d) == dots_c.end());
  sync(a->node(), c->node());
  CHECK(a->node().collection_info("c")->live_records == 14);
  CHECK(*a->node().crdt_state_for_testing("c") == *c->node().crdt_state_for_testing("c"));
  a.reset();
  c.reset();
  for (const auto& p : {src, backup, restored}) std::filesystem::remove_all(p);
}

TEST_CASE("compact shrinks a store with free pages in place, keeps every record and keeps the incarnation",
          "[node][data_dir][backup]") {
  const std::string path = fresh_dir("compact");
  crdt::ReplicaId id;
  {
    auto d = open_dir(path);
    id = d->node().replica();
    CollectionSpec spec;
    spec.name = "c";
    spec.dimension = 256;
    REQUIRE(d->node().create_collection(spec).ok());
    std::vector<RecordInput> batch;
    for (int i = 0; i < 1000; ++i) {
      RecordValue v;
      v.vector.assign(256, float(i % 97) + 0.5f);
      batch.push_back({"r-" + std::to_string(i), std::move(v)});
    }
    REQUIRE(d->node().upsert_batch("c", std::move(batch)).ok());
    for (int i = 0; i < 900; ++i) REQUIRE(d->node().remove("c", "r-" + std::to_string(i)).ok());
  }
  auto r = compact_data_dir(path);
  REQUIRE(r.ok());
  INFO(r->source_bytes << " -> " << r->copy_bytes);
  CHECK(r->copy_bytes < r->source_bytes);
  CHECK(r->note.empty());
  CHECK(std::filesystem::file_size(path + "/store/data.mdb") == r->copy_bytes);
  CHECK(!std::filesystem::exists(path + "/store.compact"));
  auto d = open_dir(path);
  CHECK(d->node().replica() == id);
  CHECK(d->new_incarnation_reason().empty());
  CHECK(d->node().collection_info("c")->live_records == 100);
  CHECK(d->node().get("c", "r-999").ok());
  d.reset();
  std::filesystem::remove_all(path);
}
