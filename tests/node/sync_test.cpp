// Proves the sync engine between real nodes on in-memory stores, every message passing through
// the Cap'n Proto codec as bytes: deltas reach hot peers and converge (equal CRDT states and
// digest roots), concurrent upserts leave the same siblings everywhere, a peer that fell behind
// the bounded delta buffer is repaired by digest without resurrecting deleted records, and a
// hostile message is rejected without changing the store. (Partitions, loss, crashes and
// thousands of schedules are the simulator's job: tests/sim.)
#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <limits>
#include <set>

#include "common/random.hpp"
#include "node/core/delta_buffer.hpp"
#include "node/core/node.hpp"
#include "node/core/node_format.hpp"
#include "node/runtime/revocation_replica.hpp"
#include "node/store/memory_store.hpp"
#include "security/identity.hpp"
#include "crdt/codec.hpp"
#include "transport/codec.hpp"

using namespace shoal;
using namespace shoal::node;

namespace {

struct Peer {
  store::MemoryStore store;
  std::unique_ptr<Node> node;
  crdt::ReplicaId id;
};

// A tiny lossless network: delivers queued messages in order, through the codec.
class Mesh {
 public:
  explicit Mesh(int n, std::uint64_t buffer_max = 100000, bool repair = true,
                std::function<void(int, NodeOptions&)> configure = {})
      : buffer_max_(buffer_max), repair_(repair), configure_(std::move(configure)) {
    for (int i = 0; i < n; ++i) {
      auto p = std::make_unique<Peer>();
      peers_.push_back(std::move(p));
      open(i);
    }
  }
  Node& operator[](int i) { return *peers_[static_cast<std::size_t>(i)]->node; }
  // Node i's store goes back to `copy` (a restore from backup, a VM rollback), then it restarts.
  void restore(int i, const std::vector<std::vector<store::KeyValue>>& copy) {
    Peer& p = *peers_[static_cast<std::size_t>(i)];
    p.node.reset();
    p.store.crash();
    auto txn = p.store.begin_write();
    REQUIRE(txn.ok());
    for (std::size_t t = 0; t < copy.size(); ++t) {
      const store::Table table = store::kAllTables[t];
      auto reserved = [&](const std::string& key) { return table == store::Table::kMeta && key.rfind("store.", 0) == 0; };
      auto now = (*txn)->collect(table, store::Range::all());
      REQUIRE(now.ok());
      for (const auto& kv : *now) {
        if (!reserved(kv.key)) REQUIRE((*txn)->del(table, kv.key).ok());
      }
      for (const auto& kv : copy[t]) {
        if (!reserved(kv.key)) REQUIRE((*txn)->put(table, kv.key, kv.value).ok());
      }
    }
    REQUIRE((*txn)->commit().ok());
    open(i);
  }
  std::vector<std::vector<store::KeyValue>> copy_store(int i) {
    std::vector<std::vector<store::KeyValue>> out;
    auto txn = store(i).begin_read();
    REQUIRE(txn.ok());
    for (const store::Table t : store::kAllTables) {
      auto all = (*txn)->collect(t, store::Range::all());
      REQUIRE(all.ok());
      out.push_back(std::move(all).value());
    }
    return out;
  }
  // A crash and restart of node i: the node object goes, its store (what was committed) stays.
  void restart(int i) {
    peers_[static_cast<std::size_t>(i)]->node.reset();
    open(i);
  }
  // Messages to and from an isolated node are dropped.
  void isolate(int i, bool on) {
    if (on) isolated_.insert(i);
    else isolated_.erase(i);
  }
  store::MemoryStore& store(int i) { return peers_[static_cast<std::size_t>(i)]->store; }

  void connect(int a, int b, Tier tier = Tier::kHot) {
    (*this)[a].peer_up(peers_[b]->id, tier, now_);
    (*this)[b].peer_up(peers_[a]->id, tier, now_);
  }
  // Time passes with nothing delivered (the next run() ticks every node at the new time).
  void advance(Duration d) {
    now_ += d;
    wall_ += d.ns();
  }
  // Delivers until quiet (bounded), ticking every node after each step.
  void run(int max_steps = 100000) {
    for (int step = 0; step < max_steps; ++step) {
      collect();
      if (queue_.empty()) return;
      auto [from, to, bytes] = std::move(queue_.front());
      queue_.pop_front();
      auto msg = transport::decode(bytes);
      REQUIRE(msg.ok());
      Status st = (*this)[to].receive(peers_[from]->id, *msg, now_);
      CHECK(st.ok());
      now_ += Duration::millis(1);
      wall_ += 1'000'000;
    }
    FAIL("network did not go quiet");
  }
  std::uint64_t bytes_sent() const { return bytes_sent_; }
  MonoTime now() const { return now_; }

 private:
  void open(int i) {
    Peer& p = *peers_[static_cast<std::size_t>(i)];
    NodeOptions o;
    o.identity = crdt::replica_for_testing(static_cast<std::uint64_t>(i + 1));
    o.delta_buffer_max = buffer_max_;
    o.build_threads = 1;
    o.sync.repair_enabled = repair_;
    std::int64_t* clock = &wall_;
    o.wall_clock = [clock] { return WallTime::from_ns(*clock); };
    if (configure_) configure_(i, o);
    auto node = Node::open(p.store, std::move(o));
    REQUIRE(node.ok());
    p.node = std::move(node).value();
    p.id = p.node->replica();
  }
  void collect() {
    for (std::size_t i = 0; i < peers_.size(); ++i) {
      peers_[i]->node->tick(now_);
      for (auto& out : peers_[i]->node->take_outbox()) {
        int to = -1;
        for (std::size_t j = 0; j < peers_.size(); ++j) {
          if (peers_[j]->id == out.to) to = static_cast<int>(j);
        }
        REQUIRE(to >= 0);
        if (isolated_.count(static_cast<int>(i)) != 0 || isolated_.count(to) != 0) continue;
        std::string bytes = transport::encode(out.message);
        bytes_sent_ += bytes.size();
        queue_.push_back({static_cast<int>(i), to, std::move(bytes)});
      }
    }
  }
  std::uint64_t buffer_max_;
  bool repair_;
  std::function<void(int, NodeOptions&)> configure_;
  std::set<int> isolated_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::deque<std::tuple<int, int, std::string>> queue_;
  MonoTime now_ = MonoTime::from_ns(1'000'000'000);
  std::int64_t wall_ = 1'700'000'000'000'000'000;
  std::uint64_t bytes_sent_ = 0;
};

RecordValue value(float x, float y = 1.0f) {
  RecordValue r;
  r.vector = {x, y, 0.5f, 0.25f};
  return r;
}

void require_converged(Mesh& mesh, int n, const std::string& collection) {
  auto first = mesh[0].crdt_state_for_testing(collection);
  REQUIRE(first.ok());
  for (int i = 1; i < n; ++i) {
    auto other = mesh[i].crdt_state_for_testing(collection);
    REQUIRE(other.ok());
    INFO("replica " << i << "\n" << first->to_string() << "\nvs\n" << other->to_string());
    CHECK(*other == *first);
    CHECK(*mesh[i].digest_root(collection) == *mesh[0].digest_root(collection));
  }
}

}  // namespace

TEST_CASE("hot peers converge on the delta path, collections included", "[node][sync]") {
  Mesh mesh(3);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  mesh.connect(0, 1);
  mesh.connect(1, 2);
  mesh.connect(0, 2);
  mesh.run();
  for (int i = 0; i < 30; ++i) REQUIRE(mesh[i % 3].upsert("c", "r" + std::to_string(i), value(static_cast<float>(i))).ok());
  mesh.run();
  REQUIRE(mesh[1].remove("c", "r0").ok());  // a delete of a record written elsewhere
  mesh.run();
  require_converged(mesh, 3, "c");
  CHECK(mesh[2].collection_info("c")->live_records == 29);
  CHECK(mesh[2].get("c", "r0").status().detail() == Detail::kNoSuchRecord);
  auto hits = mesh[2].search("c", std::vector<float>{7, 1, 0.5f, 0.25f}, SearchOptions{1, 0, {}});
  REQUIRE(hits.ok());
  CHECK(hits->at(0).id == "r7");
  // Every node's buffer is trimmed once all peers acknowledged (or nothing was needed).
  for (int i = 0; i < 3; ++i) {
    for (const auto& p : mesh[i].peer_progress()) CHECK(p.behind == 0);
  }
}

TEST_CASE("concurrent upserts leave the same siblings on every peer", "[node][sync]") {
  Mesh mesh(2);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(mesh[1].create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(mesh[0].upsert("c", "x", value(1)).ok());
  REQUIRE(mesh[1].upsert("c", "x", value(2)).ok());
  mesh.connect(0, 1);
  mesh.run();
  require_converged(mesh, 2, "c");
  auto a = mesh[0].get("c", "x");
  auto b = mesh[1].get("c", "x");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->siblings.size() == 2);
  CHECK(a->siblings[0].value == b->siblings[0].value);  // the same deterministic winner
  // An upsert after observing both replaces both.
  REQUIRE(mesh[0].upsert("c", "x", value(3)).ok());
  mesh.run();
  CHECK(mesh[1].get("c", "x")->siblings.size() == 1);
}

TEST_CASE("a peer beyond the delta buffer is repaired by digest and no delete comes back",
          "[node][sync][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  Mesh mesh(2, /*buffer_max=*/8);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  mesh.connect(0, 1);
  for (int i = 0; i < 40; ++i) REQUIRE(mesh[0].upsert("c", "r" + std::to_string(i), value(static_cast<float>(i))).ok());
  mesh.run();
  require_converged(mesh, 2, "c");
  // Partition: both sides keep writing, A deletes many of the shared records, far more than the
  // buffer holds.
  mesh[0].peer_down(mesh[1].replica(), mesh.now());
  mesh[1].peer_down(mesh[0].replica(), mesh.now());
  std::set<std::string> deleted;
  for (int i = 0; i < 200; ++i) {
    const std::string id = "r" + std::to_string(rng.uniform(40));
    if (rng.bernoulli(0.5)) {
      if (mesh[0].remove("c", id).ok()) deleted.insert(id);
    } else {
      REQUIRE(mesh[0].upsert("c", id + "-a" + std::to_string(i), value(static_cast<float>(i))).ok());
    }
    REQUIRE(mesh[1].upsert("c", "b" + std::to_string(i % 50), value(static_cast<float>(-i))).ok());
  }
  // What the first connection's repairs did; the reconnection must repair buckets of its own
  // (the delta path alone cannot deliver: the buffer holds only 8 entries).
  const auto buckets_before = mesh[0].sync_stats().buckets_repaired + mesh[1].sync_stats().buckets_repaired;
  mesh.connect(0, 1);
  mesh.run();
  require_converged(mesh, 2, "c");
  for (const auto& id : deleted) CHECK(mesh[1].get("c", id).status().detail() == Detail::kNoSuchRecord);
  CHECK(mesh[0].sync_stats().buckets_repaired + mesh[1].sync_stats().buckets_repaired > buckets_before);
  CHECK(mesh[1].crdt_state_for_testing("c")->context().cloud_size() == 0);
}

TEST_CASE("a hostile delta is rejected and changes nothing", "[node][sync]") {
  Mesh mesh(2);
  REQUIRE(mesh[1].create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(mesh[1].upsert("c", "a", value(1)).ok());
  const auto before = store::state_hash(mesh.store(1));
  REQUIRE(before.ok());
  transport::DeltaBatch bad;
  bad.last_seq = 1;
  bad.items.push_back({"c", "\x01\xff\xff garbage"});
  CHECK_FALSE(mesh[1].receive(mesh[0].replica(), bad, mesh.now()).ok());
  // A well-formed delta whose vector has the wrong dimension is rejected as an app's would be.
  crdt::ORMap other;
  std::string payload = encode_payload(RecordValue{{1, 2, 3}, {}, ""});
  auto d = other.upsert(mesh[0].replica(), "evil", crdt::Bytes(payload.begin(), payload.end()), crdt::Hlc::from_raw(1));
  REQUIRE(d.ok());
  crdt::Bytes bytes;
  crdt::encode_delta(*d, bytes);
  transport::DeltaBatch wrong_dim;
  wrong_dim.last_seq = 1;
  wrong_dim.items.push_back({"c", std::string(bytes.begin(), bytes.end())});
  Status st = mesh[1].receive(mesh[0].replica(), wrong_dim, mesh.now());
  CHECK(st.detail() == Detail::kDimensionMismatch);
  CHECK(*store::state_hash(mesh.store(1)) == *before);
  CHECK(mesh[1].sync_stats().messages_rejected == 2);
}

TEST_CASE("a peer first met before a restart still gets every delta (no repair)", "[node][sync]") {
  // Node 0 meets node 2 but cannot reach it; node 1 acknowledges everything. Node 0 restarts and
  // keeps writing. Trimming its buffer must not outrun node 2, which it has never heard from:
  // with repair off, the delta path alone must deliver all 150 records once node 2 is reachable.
  // (Before peers were persisted at first contact, the restart forgot node 2 and trimmed.)
  Mesh mesh(3, 100000, /*repair=*/false);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  mesh.isolate(2, true);
  mesh.connect(0, 1);
  mesh.connect(0, 2);
  for (int i = 0; i < 100; ++i) REQUIRE(mesh[0].upsert("c", "r" + std::to_string(i), value(static_cast<float>(i))).ok());
  mesh.run();
  mesh.restart(0);
  mesh.connect(0, 1);
  for (int i = 100; i < 150; ++i) REQUIRE(mesh[0].upsert("c", "r" + std::to_string(i), value(static_cast<float>(i))).ok());
  mesh.run();
  mesh.isolate(2, false);
  mesh.connect(0, 2);
  mesh.run();
  REQUIRE(mesh[2].collection_info("c").ok());
  CHECK(mesh[2].collection_info("c")->live_records == 150);
  require_converged(mesh, 3, "c");
}

TEST_CASE("a dropped collection stays dropped when a peer that still has it comes back", "[node][sync]") {
  // Node 0 drops "c" while node 1 is cut off and writes into it. On reconnection node 1's
  // Hello still lists "c" and its records: the drop must win over every record it observed (as
  // a delete does), the concurrent write survives only as hidden storage, and the collection is
  // gone on both sides. A later create on either side starts empty and is live everywhere.
  Mesh mesh(2);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  mesh.connect(0, 1);
  for (int i = 0; i < 10; ++i) REQUIRE(mesh[0].upsert("c", "r" + std::to_string(i), value(static_cast<float>(i))).ok());
  mesh.run();
  REQUIRE(mesh[1].collection_info("c").ok());
  CHECK(mesh[1].collection_info("c")->live_records == 10);
  mesh[0].peer_down(mesh[1].replica(), mesh.now());
  mesh[1].peer_down(mesh[0].replica(), mesh.now());
  REQUIRE(mesh[0].drop_collection("c").ok());
  REQUIRE(mesh[1].upsert("c", "late", value(42)).ok());  // concurrent with the drop
  CHECK(mesh[0].collection_info("c").status().detail() == Detail::kNoSuchCollection);
  mesh.connect(0, 1);
  mesh.run();
  for (int i = 0; i < 2; ++i) {
    INFO("node " << i);
    CHECK(mesh[i].collection_info("c").status().detail() == Detail::kNoSuchCollection);
    CHECK(mesh[i].list_collections().empty());
    CHECK(mesh[i].get("c", "r1").status().detail() == Detail::kNoSuchCollection);
  }
  // The hidden storage converged too: every record the drop observed is gone on both sides.
  for (int i = 0; i < 2; ++i) {
    auto state = mesh[i].crdt_state_for_testing("c");
    if (state.ok()) {
      for (int r = 0; r < 10; ++r) CHECK(state->find("r" + std::to_string(r)) == nullptr);
    }
  }
  // Re-create on node 1: starts empty (the concurrent write included), and node 0 sees it live.
  REQUIRE(mesh[1].create_collection({"c", 4, Metric::kL2}).ok());
  CHECK(mesh[1].collection_info("c")->live_records == 0);
  REQUIRE(mesh[1].upsert("c", "new", value(7)).ok());
  mesh.run();
  REQUIRE(mesh[0].collection_info("c").ok());
  CHECK(mesh[0].collection_info("c")->live_records == 1);
  CHECK(mesh[0].get("c", "new").ok());
  CHECK(mesh[0].get("c", "r3").status().detail() == Detail::kNoSuchRecord);
  // Re-creating a dropped name with another dimension is refused (peers may still send deltas).
  REQUIRE(mesh[0].drop_collection("c").ok());
  CHECK(mesh[0].create_collection({"c", 8, Metric::kL2}).code() == Code::kConflict);
  mesh.run();
  CHECK(mesh[1].collection_info("c").status().detail() == Detail::kNoSuchCollection);
}

TEST_CASE("a drop and a re-create survive a restart", "[node][sync]") {
  Mesh mesh(1);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(mesh[0].create_collection({"d", 4, Metric::kL2}).ok());
  REQUIRE(mesh[0].upsert("c", "x", value(1)).ok());
  REQUIRE(mesh[0].drop_collection("c").ok());
  mesh.restart(0);
  CHECK(mesh[0].collection_info("c").status().detail() == Detail::kNoSuchCollection);
  CHECK(mesh[0].list_collections().size() == 1);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  mesh.restart(0);
  REQUIRE(mesh[0].collection_info("c").ok());
  CHECK(mesh[0].collection_info("c")->live_records == 0);
  CHECK(mesh[0].stats().collections == 2);
}

TEST_CASE("a node restored from an older copy of itself takes a new incarnation and reuses no dot",
          "[node][sync]") {
  // Node 0 writes 5 records, is copied (a backup), writes 5 more that node 1 receives, then is
  // restored from the copy: its counter is back at 5 (+ the collection's catalogue dot). Node 1
  // holds dots 6..10 of node 0's replica; its Hello says so, and node 0 must take a new
  // incarnation before it writes again, or its next upsert would reuse dot 6 for another record
  // and node 1 would treat the two as one (a lost write).
  Mesh mesh(2);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  for (int i = 0; i < 5; ++i) REQUIRE(mesh[0].upsert("c", "a" + std::to_string(i), value(static_cast<float>(i))).ok());
  const auto backup = mesh.copy_store(0);
  mesh.connect(0, 1);
  for (int i = 5; i < 10; ++i) REQUIRE(mesh[0].upsert("c", "a" + std::to_string(i), value(static_cast<float>(i))).ok());
  mesh.run();
  REQUIRE(mesh[1].collection_info("c")->live_records == 10);
  const crdt::ReplicaId before = mesh[0].issuer();
  mesh.restore(0, backup);
  CHECK(mesh[0].collection_info("c")->live_records == 5);
  mesh.connect(0, 1);
  mesh.run();
  CHECK(mesh[0].issuer().identity == before.identity);
  CHECK(mesh[0].issuer().incarnation > before.incarnation);
  // Writes after the restore carry the new incarnation; nothing is lost on either side.
  for (int i = 0; i < 5; ++i) REQUIRE(mesh[0].upsert("c", "b" + std::to_string(i), value(static_cast<float>(-i))).ok());
  mesh.run();
  require_converged(mesh, 2, "c");
  CHECK(mesh[1].collection_info("c")->live_records == 15);
  for (int i = 0; i < 5; ++i) {
    auto got = mesh[1].get("c", "b" + std::to_string(i));
    REQUIRE(got.ok());
    CHECK(got->siblings[0].dot.replica == mesh[0].issuer());
  }
}

namespace {

security::Identity test_identity(std::uint8_t seed) {
  std::array<std::uint8_t, security::kSeedBytes> bytes{};
  bytes.fill(seed);
  auto id = security::Identity::from_seed(bytes);
  REQUIRE(id.ok());
  return std::move(*id);
}

std::string encoded(const security::RevocationSet& set) {
  const auto bytes = security::encode_revocations(set);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

TEST_CASE("revocations replicate as a signed grow-only set: a partitioned node learns them, "
          "forgeries are dropped, a restart keeps them", "[node][sync][security]") {
  // Three nodes in a chain 0 - 1 - 2 (node 2 hears only through node 1). The authority revokes a
  // device on node 0 while node 2 is cut off; after the cut heals, node 2 holds the revocation,
  // relayed by node 1 (a set that grew is sent to every up peer at once). A revocation signed by
  // a device key (not the authority) is dropped everywhere. A restarted node still has it.
  const security::Identity authority = test_identity(1);
  const security::Identity victim = test_identity(2);
  const security::Identity rogue = test_identity(3);
  security::TrustAnchor anchor;
  anchor.mesh_id.fill(0x5a);
  anchor.authorities = {authority.public_key()};
  std::vector<std::unique_ptr<RevocationReplica>> sets;
  for (int i = 0; i < 3; ++i) sets.push_back(std::make_unique<RevocationReplica>(anchor));
  Mesh mesh(3, 100000, /*repair=*/false, [&](int i, NodeOptions& o) { o.revocations = sets[static_cast<std::size_t>(i)].get(); });
  mesh.connect(0, 1);
  mesh.isolate(2, true);
  mesh.connect(1, 2);
  mesh.run();

  security::RevocationSet forged;
  forged.insert_unverified(security::make_revocation(anchor.mesh_id, victim.public_key(), 1'700'000'000, rogue));
  REQUIRE(mesh[0].add_revocations(encoded(forged)).ok());  // decodes, but nothing verifies
  CHECK(sets[0]->set().size() == 0);
  CHECK(sets[0]->rejected() == 1);

  security::RevocationSet real;
  REQUIRE(real.insert(security::make_revocation(anchor.mesh_id, victim.public_key(), 1'700'000'000, authority), anchor).ok());
  REQUIRE(mesh[0].add_revocations(encoded(real)).ok());
  mesh.run();
  CHECK(sets[1]->revoked(victim.public_key()));
  CHECK_FALSE(sets[2]->revoked(victim.public_key()));  // still cut off
  mesh.isolate(2, false);
  mesh.connect(1, 2);
  mesh.run();
  CHECK(sets[2]->revoked(victim.public_key()));
  CHECK(sets[2]->rejected() == 0);
  // With every link up, a second revocation reaches node 2 through node 1's relay alone (no
  // reconnection, no repair round): node 1's set grew, so it told its peers at once.
  const security::Identity second = test_identity(4);
  security::RevocationSet more;
  REQUIRE(more.insert(security::make_revocation(anchor.mesh_id, second.public_key(), 1'700'000'100, authority), anchor).ok());
  REQUIRE(mesh[0].add_revocations(encoded(more)).ok());
  mesh.run();
  CHECK(sets[2]->revoked(second.public_key()));

  // Restart: the set comes back from the store (a fresh replica object joins meta/node.revocations).
  sets[2] = std::make_unique<RevocationReplica>(anchor);
  mesh.restart(2);
  CHECK(sets[2]->revoked(victim.public_key()));
  CHECK_FALSE(sets[2]->revoked(rogue.public_key()));
}

// --- Tiers (node/core/tier_policy.hpp, docs/tiers.md) ---

TEST_CASE("a warm peer gets only the collections marked warm, on either path; a hot peer gets all",
          "[node][sync][tiers]") {
  // Node 0 holds "c" (warm by default) and "x" (marked not warm). Node 1 is its warm peer,
  // node 2 its hot peer. Part 1, delta path alone (repair off): node 1 receives c's records and
  // none of x's; node 2 receives both. Part 2, digest path alone (a buffer of 4 entries, so the
  // writes are beyond it): node 1 cannot pull x from node 0 either.
  for (const bool digest_path : {false, true}) {
    INFO((digest_path ? "digest path" : "delta path"));
    Mesh mesh(3, digest_path ? 4 : 100000, /*repair=*/digest_path);
    TierPolicies policies;
    policies.collections["x"].warm = false;
    REQUIRE(mesh[0].set_tier_policies(policies).ok());
    REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
    REQUIRE(mesh[0].create_collection({"x", 4, Metric::kL2}).ok());
    if (digest_path) mesh.isolate(0, true);  // the writes happen while nobody hears
    mesh.connect(0, 1, Tier::kWarm);
    mesh.connect(0, 2, Tier::kHot);
    mesh.run();
    for (int i = 0; i < 20; ++i) {
      REQUIRE(mesh[0].upsert("c", "c" + std::to_string(i), value(static_cast<float>(i))).ok());
      REQUIRE(mesh[0].upsert("x", "x" + std::to_string(i), value(static_cast<float>(i))).ok());
    }
    mesh.isolate(0, false);
    if (digest_path) {
      mesh.connect(0, 1, Tier::kWarm);  // a reconnection: Hellos start the comparisons
      mesh.connect(0, 2, Tier::kHot);
    }
    for (int round = 0; round < 5; ++round) {
      mesh.advance(Duration::seconds(30));  // past every warm push and comparison schedule
      mesh.run();
    }
    CHECK(mesh[1].collection_info("c")->live_records == 20);
    CHECK(mesh[2].collection_info("c")->live_records == 20);
    CHECK(mesh[2].collection_info("x")->live_records == 20);
    // The catalogue replicates to every tier (x exists on node 1), its records do not.
    REQUIRE(mesh[1].collection_info("x").ok());
    CHECK(mesh[1].collection_info("x")->live_records == 0);
    if (!digest_path) CHECK(mesh[0].sync_stats().warm_entries_withheld >= 20);
  }
}

TEST_CASE("a warm budget caps the bytes per window; the backlog drains in later windows, nothing lost",
          "[node][sync][tiers]") {
  // Repair off: the delta path alone must deliver everything, budget or not. 60 records of
  // ~100 encoded bytes against a budget of 1,000 bytes per 10 s window: no window sends more
  // than the budget plus one entry, and everything arrives after enough windows.
  Mesh mesh(2, 100000, /*repair=*/false);
  TierPolicies policies;
  policies.defaults.warm_interval = Duration::seconds(10);
  policies.defaults.warm_budget_bytes = 1000;
  REQUIRE(mesh[0].set_tier_policies(policies).ok());
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  mesh.connect(0, 1, Tier::kWarm);
  mesh.run();
  for (int i = 0; i < 60; ++i) REQUIRE(mesh[0].upsert("c", "r" + std::to_string(i), value(static_cast<float>(i))).ok());
  std::uint64_t largest_window = 0, before = mesh[0].sync_stats().warm_bytes_sent;
  int windows = 0;
  for (; windows < 100 && mesh[1].collection_info("c")->live_records < 60; ++windows) {
    mesh.advance(Duration::seconds(10));
    mesh.run();
    const std::uint64_t sent = mesh[0].sync_stats().warm_bytes_sent;
    largest_window = std::max(largest_window, sent - before);
    before = sent;
  }
  INFO("windows " << windows << ", largest window " << largest_window << " bytes");
  CHECK(mesh[1].collection_info("c")->live_records == 60);
  CHECK(largest_window <= 1000 + 200);  // the budget plus at most one entry (each well under 200)
  CHECK(windows >= 4);                  // ~6,000 bytes cannot pass a 1,000-byte window in fewer
  CHECK(mesh[0].sync_stats().warm_budget_deferrals > 0);
  require_converged(mesh, 2, "c");
}

TEST_CASE("a tier policy outside its limits is refused and changes nothing", "[node][sync][tiers]") {
  Mesh mesh(1);
  TierPolicies bad;
  bad.collections["c"].warm_interval = Duration::millis(500);
  Status st = mesh[0].set_tier_policies(bad);
  CHECK(st.detail() == Detail::kOutOfRange);
  CHECK(st.message().find("500 ms") != std::string::npos);
  CHECK(st.message().find("'c'") != std::string::npos);
  CHECK(mesh[0].tier_policies().collections.empty());
}

TEST_CASE("a collection's index options replicate with the catalogue and survive a restart", "[node][sync]") {
  Mesh mesh(2);
  CollectionSpec tuned;
  tuned.name = "tuned";
  tuned.dimension = 4;
  tuned.metric = Metric::kInnerProduct;
  tuned.m = 24;
  tuned.ef_construction = 150;
  tuned.ef_search = 90;
  tuned.quantize = false;
  REQUIRE(mesh[0].create_collection(tuned).ok());
  REQUIRE(mesh[0].create_collection({"dflt", 4, Metric::kCosine}).ok());
  mesh.connect(0, 1);
  mesh.run();
  for (int restart = 0; restart < 2; ++restart) {
    INFO("after restart " << restart);
    auto t = mesh[1].collection_info("tuned");
    REQUIRE(t.ok());
    CHECK(t->spec.m == 24);
    CHECK(t->spec.ef_construction == 150);
    CHECK(t->spec.ef_search == 90);
    CHECK_FALSE(t->spec.quantize);
    auto d = mesh[1].collection_info("dflt");
    REQUIRE(d.ok());
    CHECK(d->spec.m == 16);
    CHECK(d->spec.ef_search == 64);
    CHECK(d->spec.quantize);  // the default travels as a value, not as "whatever the peer defaults to"
    mesh.restart(1);
  }
  // The replica's index is built with those options and answers like the origin's.
  REQUIRE(mesh[0].upsert("tuned", "a", value(1.0f)).ok());
  REQUIRE(mesh[0].upsert("dflt", "a", value(1.0f)).ok());
  mesh.run();
  for (const char* c : {"tuned", "dflt"}) {
    auto hits = mesh[1].search(c, std::vector<float>{1, 1, 0.5f, 0.25f}, SearchOptions{1, 0, {}});
    REQUIRE(hits.ok());
    REQUIRE(hits->size() == 1);
    CHECK(hits->at(0).id == "a");
  }
}

TEST_CASE("a store rolled back with no local sign takes a fresh incarnation at its first write, so writes before "
          "any hello reuse no dot",
          "[node][sync]") {
  // The rollback window (docs/crdt.md, "Incarnations", D48): node 0 is copied, writes 5 more
  // records that node 1 holds, and is put back on the copy while cut off from node 1, keeping
  // its incarnation. It writes before any hello could tell it: those writes must carry an
  // incarnation its lost life never used, or node 1 would take them for the ones it holds.
  Mesh mesh(2);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  for (int i = 0; i < 3; ++i) REQUIRE(mesh[0].upsert("c", "a" + std::to_string(i), value(static_cast<float>(i))).ok());
  const auto snapshot = mesh.copy_store(0);
  mesh.connect(0, 1);
  for (int i = 3; i < 8; ++i) REQUIRE(mesh[0].upsert("c", "a" + std::to_string(i), value(static_cast<float>(i))).ok());
  mesh.run();
  REQUIRE(mesh[1].collection_info("c")->live_records == 8);
  const crdt::ReplicaId lost_life = mesh[0].issuer();
  mesh.restore(0, snapshot);  // no peer_up: no hello yet
  const crdt::ReplicaId opened = mesh[0].issuer();
  for (int i = 0; i < 5; ++i) REQUIRE(mesh[0].upsert("c", "b" + std::to_string(i), value(static_cast<float>(-i))).ok());
  const crdt::ReplicaId fresh = mesh[0].issuer();
  CHECK(fresh.identity == opened.identity);
  CHECK(fresh.incarnation > opened.incarnation);
  CHECK(fresh != lost_life);
  for (int i = 0; i < 5; ++i) {
    auto got = mesh[0].get("c", "b" + std::to_string(i));
    REQUIRE(got.ok());
    CHECK(got->siblings.at(0).dot.replica == fresh);
    const auto theirs = mesh[1].crdt_state_for_testing("c");
    REQUIRE(theirs.ok());
    CHECK_FALSE(theirs->context().contains(got->siblings.at(0).dot));  // a dot node 1 never saw
  }
  // Once connected, nothing is lost: 8 of the lost life (node 1 holds them) and 5 new ones.
  mesh.connect(0, 1);
  mesh.run();
  require_converged(mesh, 2, "c");
  CHECK(mesh[0].collection_info("c")->live_records == 13);
  CHECK(mesh[0].issuer() == fresh);  // the hello named an incarnation it no longer issues under
}

TEST_CASE("a hello moves a node to a new incarnation only for a counter of its current incarnation above its own, "
          "or for a later incarnation; a hello naming an older one does not move it",
          "[node][sync]") {
  // Hello.yourCounters names the incarnation each counter counts. A hello still naming the
  // incarnation a node just left (sent before its peer heard the new one) used to move it again.
  Mesh mesh(2);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(mesh[0].upsert("c", "x", value(1)).ok());
  mesh.connect(0, 1);
  mesh.run();
  const crdt::ReplicaId first = mesh[0].issuer();
  const std::uint64_t issued = mesh[0].crdt_state_for_testing("c")->context().max_counter(first);
  auto hello = [&](std::uint64_t counter, std::optional<std::uint32_t> incarnation) {
    transport::Hello h;
    h.replica = mesh[1].replica().encode();
    h.your_counters.push_back({"c", counter, incarnation});
    REQUIRE(mesh[0].receive(mesh[1].replica(), h, mesh.now()).ok());
    return mesh[0].issuer();
  };
  // Not above our counter: no move.
  CHECK(hello(issued, first.incarnation) == first);
  // Above it, in our incarnation: a move.
  const crdt::ReplicaId second = hello(issued + 5, first.incarnation);
  CHECK(second.incarnation > first.incarnation);
  // The same stale counter again (a hello sent before the peer heard of `second`): no move.
  CHECK(hello(issued + 5, first.incarnation) == second);
  // A sender from before the field: its counter counts our current incarnation (which has issued
  // one dot now), so it moves us only above that.
  REQUIRE(mesh[0].upsert("c", "z", value(3)).ok());
  CHECK(hello(1, std::nullopt) == second);
  const crdt::ReplicaId third = hello(issued + 9, std::nullopt);
  CHECK(third.incarnation > second.incarnation);
  // A later incarnation than ours (we run on an older copy of ourselves): a move above it.
  const std::uint32_t later = third.incarnation + 1000;
  const crdt::ReplicaId fourth = hello(1, later);
  CHECK(fourth.incarnation > later);
  CHECK(mesh[0].stats().claim_incarnations == 3);
  // Dots after the moves are issued under the last one.
  REQUIRE(mesh[0].upsert("c", "y", value(2)).ok());
  CHECK(mesh[0].get("c", "y")->siblings.at(0).dot.replica == fourth);
}

TEST_CASE("an incarnation of ours named far above ours (a forged hello or context row) is ignored, so no peer can "
          "exhaust our incarnations",
          "[node][sync]") {
  // Proves Node::implausible_incarnation (docs/crdt.md, "Incarnations"): a hello naming
  // incarnation 0xFFFF0000 of node 0, and a delta whose context holds a row of node 0's identity
  // at that incarnation, do not move node 0 near 2^32 (from where the next opens would exhaust
  // its incarnations and fail every write). Both are counted; the delta's record still joins,
  // node 0 keeps writing, and after a restart (a fresh incarnation at the first write) it is
  // still far below the forged value.
  Mesh mesh(2);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(mesh[0].upsert("c", "x", value(1)).ok());
  mesh.connect(0, 1);
  mesh.run();
  const crdt::ReplicaId before = mesh[0].issuer();
  constexpr std::uint32_t kForged = 0xFFFF0000u;
  transport::Hello h;
  h.replica = mesh[1].replica().encode();
  h.your_counters.push_back({"c", 1, kForged});
  REQUIRE(mesh[0].receive(mesh[1].replica(), h, mesh.now()).ok());
  CHECK(mesh[0].issuer() == before);
  CHECK(mesh[0].stats().implausible_incarnations == 1);
  // A delta from node 1 whose context names node 0's identity at the forged incarnation.
  crdt::ORMap other;
  std::string payload = encode_payload(value(2));
  auto d = other.upsert(mesh[1].replica(), "theirs", crdt::Bytes(payload.begin(), payload.end()), crdt::Hlc::from_raw(1));
  REQUIRE(d.ok());
  crdt::ReplicaId forged = before;
  forged.incarnation = kForged;
  d->context.add(crdt::Dot{forged, 7});
  crdt::Bytes bytes;
  crdt::encode_delta(*d, bytes);
  transport::DeltaBatch batch;
  batch.last_seq = 1;
  batch.items.push_back({"c", std::string(bytes.begin(), bytes.end())});
  REQUIRE(mesh[0].receive(mesh[1].replica(), batch, mesh.now()).ok());
  CHECK(mesh[0].get("c", "theirs").ok());
  for (int restart = 0; restart < 3; ++restart) {
    mesh.restart(0);
    REQUIRE(mesh[0].upsert("c", "y" + std::to_string(restart), value(3)).ok());
    CHECK(mesh[0].issuer().incarnation < (std::uint32_t{1} << 25));
  }
  CHECK(mesh[0].stats().implausible_incarnations >= 1);  // the context row, seen at the new incarnation
}

TEST_CASE("a context claiming our own dots beyond our counter is stripped and we take a new incarnation", "[node][sync]") {
  // Proves Node::strip_own_claims (docs/crdt.md, "Incarnations"): a well-formed batch from a
  // peer whose context claims dots of node 1 above its counter is accepted (refusing it would
  // stall the delta path), its record joins, the claimed dots are not in node 1's context and
  // are counted, and node 1's next write is issued under a new incarnation, so the claimed
  // counters are never issued under the id they name. The relay to node 2 carries no claim.
  Mesh mesh(3);
  REQUIRE(mesh[1].create_collection({"c", 4, Metric::kL2}).ok());
  mesh.connect(0, 1);
  mesh.connect(1, 2, Tier::kWarm);  // node 1 relays what node 0 sends to a warm peer (D16)
  mesh.run();
  REQUIRE(mesh[1].upsert("c", "mine", value(1)).ok());
  mesh.run();
  const crdt::ReplicaId own = mesh[1].issuer();
  const std::uint64_t issued = mesh[1].crdt_state_for_testing("c")->context().max_counter(own);
  REQUIRE(issued == 1);
  // Node 0's upsert of "theirs", with a context that also claims node 1's dots 5 and 6.
  crdt::ORMap other;
  std::string payload = encode_payload(value(2));
  auto d = other.upsert(mesh[0].replica(), "theirs", crdt::Bytes(payload.begin(), payload.end()), crdt::Hlc::from_raw(1));
  REQUIRE(d.ok());
  d->context.add(crdt::Dot{own, 5});
  d->context.add(crdt::Dot{own, 6});
  crdt::Bytes bytes;
  crdt::encode_delta(*d, bytes);
  transport::DeltaBatch batch;
  batch.last_seq = 1;
  batch.items.push_back({"c", std::string(bytes.begin(), bytes.end())});
  REQUIRE(mesh[1].receive(mesh[0].replica(), batch, mesh.now()).ok());
  const auto state = mesh[1].crdt_state_for_testing("c");
  REQUIRE(state.ok());
  CHECK(state->find("theirs") != nullptr);
  CHECK(state->context().max_counter(own) == issued);
  CHECK(mesh[1].stats().own_claims_stripped == 2);
  CHECK(mesh[1].stats().claim_incarnations == 1);
  CHECK(mesh[1].issuer().identity == own.identity);
  CHECK(mesh[1].issuer().incarnation > own.incarnation);
  REQUIRE(mesh[1].upsert("c", "after", value(3)).ok());
  auto after = mesh[1].get("c", "after");
  REQUIRE(after.ok());
  CHECK(after->siblings.at(0).dot.replica == mesh[1].issuer());
  for (int i = 0; i < 10; ++i) {
    mesh.advance(Duration::seconds(10));  // past the warm push interval
    mesh.run();
  }
  // Node 2 got "theirs" through node 1's relay, without the claim.
  const auto relayed = mesh[2].crdt_state_for_testing("c");
  REQUIRE(relayed.ok());
  CHECK(relayed->find("theirs") != nullptr);
  CHECK_FALSE(relayed->context().contains(crdt::Dot{own, 5}));
  CHECK_FALSE(relayed->context().contains(crdt::Dot{own, 6}));
  // A restart keeps the new incarnation (it was written in the batch's transaction).
  const crdt::ReplicaId newer = mesh[1].issuer();
  mesh.restart(1);
  CHECK(mesh[1].issuer() == newer);
}

TEST_CASE("a delta buffer trimmed empty never reuses a sequence after a restart (no repair)", "[node][sync]") {
  // shoal-sim --seed 5225 --no-repair: a node whose buffer every peer had acknowledged (trimmed
  // empty) restarted, numbered its next entries from 1 again, and after a second restart took a
  // peer's stored position (from the old numbering) as covering them: those entries never went
  // on the delta path. Here node 0's buffer is trimmed empty, node 0 restarts twice while writing
  // with node 1 cut off, and node 1 must still receive every write by deltas alone.
  // Every acknowledgement is persisted at once, so the buffer is trimmed as soon as it is acked.
  Mesh mesh(2, 100000, /*repair=*/false, [](int, NodeOptions& o) { o.sync.persist_every_entries = 1; });
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  mesh.connect(0, 1);
  mesh.run();
  const int written = 40;
  for (int i = 0; i < written; ++i) REQUIRE(mesh[0].upsert("c", "a" + std::to_string(i), value(float(i))).ok());
  mesh.run();
  REQUIRE(mesh[0].stats().delta_buffer_entries == 0);
  REQUIRE(mesh[1].collection_info("c")->live_records == static_cast<std::uint64_t>(written));
  mesh.isolate(1, true);
  mesh.restart(0);
  mesh.connect(0, 1);
  for (int i = 0; i < 60; ++i) REQUIRE(mesh[0].upsert("c", "b" + std::to_string(i), value(float(i))).ok());
  mesh.run();
  mesh.restart(0);
  mesh.isolate(1, false);
  mesh.connect(0, 1);
  for (int round = 0; round < 5; ++round) {
    mesh.run();
    mesh.advance(Duration::seconds(2));
  }
  mesh.run();
  CHECK(mesh[1].collection_info("c")->live_records == static_cast<std::uint64_t>(written + 60));
  require_converged(mesh, 2, "c");
}

namespace {

// Node i's delta-buffer entries of collections (not the catalogue's): as stored, and as sent
// (DeltaBuffer::delta_of, read in the scan's transaction).
struct BufferedDelta {
  std::uint64_t seq = 0;
  bool skeleton = false;
  crdt::Delta stored;
  crdt::Delta sent;
};
std::vector<BufferedDelta> buffered(store::MemoryStore& st) {
  std::vector<BufferedDelta> out;
  DeltaBuffer reader(100000);  // scan needs no extent: it reads what the deltas table holds
  auto txn = st.begin_read();
  REQUIRE(txn.ok());
  REQUIRE(reader.scan(**txn, 0, 100000, [&](std::uint64_t seq, const format::BufferEntry& e) {
    if (e.cid == format::kCatalogueCid) {
      CHECK_FALSE(e.skeleton);  // the catalogue has no record store to re-hydrate from
      return true;
    }
    BufferedDelta b;
    b.seq = seq;
    b.skeleton = e.skeleton;
    auto stored = crdt::decode_delta(format::as_bytes(e.stored));
    REQUIRE(stored.ok());
    b.stored = std::move(stored).value();
    auto sent = DeltaBuffer::delta_of(**txn, e);
    REQUIRE(sent.ok());
    b.sent = std::move(sent).value();
    out.push_back(std::move(b));
    return true;
  }).ok());
  return out;
}

std::vector<float> vector_of(const crdt::Entry& e) {
  auto v = decode_payload(format::as_view(e.payload));
  REQUIRE(v.ok());
  return v->vector;
}

}  // namespace

TEST_CASE("a buffer entry keeps no payload; read later it carries the record's current payload, "
          "or only its context once the record was overwritten or deleted (D51)", "[node][sync][buffer]") {
  // Proves DeltaBuffer::delta_of on real nodes: entries are stored as skeletons (dots, clocks,
  // context, no payload bytes); an upsert's entry sends the payload the store holds now (the
  // winner's vector put back from the vectors table); after an overwrite, the older entry sends
  // the record with no entries and the overwritten dot in its context; a delete's and a deleted
  // record's entries are context-only. A peer that hears only the delta path (repair off)
  // converges on the current state.
  Mesh mesh(2, 100000, /*repair=*/false);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(mesh[0].upsert("c", "r", value(1)).ok());
  REQUIRE(mesh[0].upsert("c", "r", value(2)).ok());
  REQUIRE(mesh[0].upsert("c", "q", value(3)).ok());
  REQUIRE(mesh[0].remove("c", "q").ok());
  REQUIRE(mesh[0].upsert("c", "kept", value(4)).ok());
  const auto entries = buffered(mesh.store(0));
  REQUIRE(entries.size() == 5);
  for (const auto& b : entries) {
    CHECK(b.skeleton);
    for (const auto& [id, list] : b.stored.records) {
      for (const auto& e : list) CHECK(e.payload.empty());
    }
    CHECK(b.sent.context == b.stored.context);  // the context is sent as it was
  }
  // The first upsert of r: its dot was overwritten, so r goes with no entries; the dot is in the context.
  const crdt::Dot first = entries[0].stored.records.at("r").at(0).dot;
  CHECK(entries[0].sent.records.at("r").empty());
  CHECK(entries[0].sent.context.contains(first));
  // The overwrite: the current payload, vector included.
  REQUIRE(entries[1].sent.records.at("r").size() == 1);
  CHECK(vector_of(entries[1].sent.records.at("r").at(0)) == value(2).vector);
  CHECK(entries[1].sent.records.at("r").at(0).clock == entries[1].stored.records.at("r").at(0).clock);
  // q's upsert and its delete: context-only deltas naming q.
  CHECK(entries[2].sent.records.at("q").empty());
  CHECK(entries[2].sent.context.contains(entries[2].stored.records.at("q").at(0).dot));
  CHECK(entries[3].sent.records.at("q").empty());
  REQUIRE(entries[4].sent.records.at("kept").size() == 1);
  CHECK(vector_of(entries[4].sent.records.at("kept").at(0)) == value(4).vector);
  // Every sent delta is a sub-state of the current state: joining it changes nothing.
  const auto state = mesh[0].crdt_state_for_testing("c");
  REQUIRE(state.ok());
  for (const auto& b : entries) {
    crdt::ORMap joined = *state;
    joined.join(b.sent);
    CHECK(joined == *state);
  }
  mesh.connect(0, 1);
  mesh.run();
  require_converged(mesh, 2, "c");
  CHECK(mesh[1].get("c", "r")->siblings.at(0).value.vector == value(2).vector);
  CHECK(mesh[1].get("c", "q").status().detail() == Detail::kNoSuchRecord);
}

TEST_CASE("siblings: each buffer entry sends its own sibling's payload, and both become context-only "
          "after an overwrite (D51)", "[node][sync][buffer]") {
  // Nodes 0 and 1 upsert "s" concurrently and exchange: node 0 holds two siblings (its own, and
  // node 1's from a peer delta, whose entry has node 1 as origin). Each entry sends only its own
  // sibling, with its payload (the winner's vector from the vectors table, the loser's inline).
  // Node 2, cut off until then, converges on the delta path alone; after node 0 overwrites "s",
  // both older entries name "s" with no entries and node 2 still converges.
  Mesh mesh(3, 100000, /*repair=*/false);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  mesh.isolate(2, true);
  mesh.connect(0, 1);
  mesh.connect(0, 2);
  mesh.run();
  REQUIRE(mesh[0].upsert("c", "s", value(10)).ok());
  REQUIRE(mesh[1].upsert("c", "s", value(20)).ok());
  mesh.run();
  REQUIRE(mesh[0].get("c", "s")->siblings.size() == 2);
  auto entries = buffered(mesh.store(0));
  REQUIRE(entries.size() == 2);
  std::set<std::vector<float>> sent;
  for (const auto& b : entries) {
    REQUIRE(b.sent.records.at("s").size() == 1);
    CHECK(b.sent.records.at("s").at(0).dot == b.stored.records.at("s").at(0).dot);
    sent.insert(vector_of(b.sent.records.at("s").at(0)));
  }
  CHECK(sent == std::set<std::vector<float>>{value(10).vector, value(20).vector});
  REQUIRE(mesh[0].upsert("c", "s", value(30)).ok());
  entries = buffered(mesh.store(0));
  REQUIRE(entries.size() == 3);
  CHECK(entries[0].sent.records.at("s").empty());
  CHECK(entries[1].sent.records.at("s").empty());
  REQUIRE(entries[2].sent.records.at("s").size() == 1);
  CHECK(vector_of(entries[2].sent.records.at("s").at(0)) == value(30).vector);
  mesh.isolate(2, false);
  mesh.connect(0, 2);
  mesh.run();
  require_converged(mesh, 3, "c");
  REQUIRE(mesh[2].get("c", "s")->siblings.size() == 1);
  CHECK(mesh[2].get("c", "s")->siblings.at(0).value.vector == value(30).vector);
}

namespace {

// A peer's catalogue state naming collection `name` (4-d, L2), as a delta batch item carries it.
std::string catalogue_item(const crdt::ReplicaId& from, const std::string& name) {
  crdt::ORMap cat;
  const std::string spec = format::encode_spec(CollectionSpec{name, 4, Metric::kL2}, 0);
  REQUIRE(cat.upsert(from, name, crdt::Bytes(spec.begin(), spec.end()), crdt::Hlc::from_raw(1)).ok());
  crdt::Bytes bytes;
  crdt::encode_delta(cat.to_delta(), bytes);
  return std::string(bytes.begin(), bytes.end());
}

// A peer's delta upserting record `id` of a 4-d collection.
std::string record_item(const crdt::ReplicaId& from, const std::string& id) {
  crdt::ORMap other;
  const std::string payload = encode_payload(value(1));
  auto d = other.upsert(from, id, crdt::Bytes(payload.begin(), payload.end()), crdt::Hlc::from_raw(1));
  REQUIRE(d.ok());
  crdt::Bytes bytes;
  crdt::encode_delta(*d, bytes);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

TEST_CASE("a delta batch rejected after a catalogue item or a new collection's spec leaves the store unchanged",
          "[node][sync]") {
  // Proves that the storage a peer's batch names is made in the batch's own transaction (D68):
  // Node::peer_catalogue (and a spec for an unknown collection) committed it on its own while
  // the later items were still being validated, so a batch rejected for a bad delta after them
  // left the store changed (a hidden collection, its catalogue-table row and the next id). A
  // batch that is accepted makes the storage and uses it at once. A claim on our dots in a
  // rejected batch takes no incarnation either (it is written in the batch's transaction).
  Mesh mesh(2);
  REQUIRE(mesh[1].create_collection({"c", 4, Metric::kL2}).ok());
  const crdt::ReplicaId peer = mesh[0].replica();
  const auto before = store::state_hash(mesh.store(1));
  REQUIRE(before.ok());
  SECTION("a catalogue item, then a delta that does not decode") {
    transport::DeltaBatch bad;
    bad.last_seq = 1;
    bad.items.push_back({"", catalogue_item(peer, "n")});
    bad.items.push_back({"c", "\x01\xff\xff garbage"});
    CHECK_FALSE(mesh[1].receive(peer, bad, mesh.now()).ok());
  }
  SECTION("a spec and a delta for a new collection, then a delta of the wrong dimension") {
    transport::DeltaBatch bad;
    bad.last_seq = 1;
    bad.specs.push_back(transport::CollectionSpecWire{"m", 4, metric_to_wire_byte(Metric::kL2)});
    bad.items.push_back({"m", record_item(peer, "a")});
    crdt::ORMap other;
    const std::string payload = encode_payload(RecordValue{{1, 2, 3}, {}, ""});
    auto d = other.upsert(peer, "evil", crdt::Bytes(payload.begin(), payload.end()), crdt::Hlc::from_raw(1));
    REQUIRE(d.ok());
    crdt::Bytes bytes;
    crdt::encode_delta(*d, bytes);
    bad.items.push_back({"c", std::string(bytes.begin(), bytes.end())});
    CHECK(mesh[1].receive(peer, bad, mesh.now()).detail() == Detail::kDimensionMismatch);
  }
  SECTION("a context claiming our dots, then a delta that does not decode") {
    crdt::Delta claim;
    claim.context.add(crdt::Dot{mesh[1].issuer(), 1000});
    crdt::Bytes bytes;
    crdt::encode_delta(claim, bytes);
    transport::DeltaBatch bad;
    bad.last_seq = 1;
    bad.items.push_back({"c", std::string(bytes.begin(), bytes.end())});
    bad.items.push_back({"c", "\x01\xff\xff garbage"});
    const crdt::ReplicaId issuer = mesh[1].issuer();
    CHECK_FALSE(mesh[1].receive(peer, bad, mesh.now()).ok());
    CHECK(mesh[1].issuer() == issuer);
    CHECK(mesh[1].stats().claim_incarnations == 0);
  }
  CHECK(*store::state_hash(mesh.store(1)) == *before);
  // The same collection in an accepted batch: made, live, holding the record, and kept over a
  // restart (the staged storage committed with the batch).
  transport::DeltaBatch good;
  good.last_seq = 2;
  good.items.push_back({"", catalogue_item(peer, "n")});
  good.specs.push_back(transport::CollectionSpecWire{"n", 4, metric_to_wire_byte(Metric::kL2)});
  good.items.push_back({"n", record_item(peer, "r")});
  REQUIRE(mesh[1].receive(peer, good, mesh.now()).ok());
  CHECK(mesh[1].get("n", "r").ok());
  mesh.restart(1);
  CHECK(mesh[1].get("n", "r").ok());
  CHECK(mesh[1].collection_info("c").ok());
}

TEST_CASE("forged claims on our dots cannot churn or exhaust our incarnations", "[node][sync]") {
  // Proves the bounds of docs/crdt.md, "Incarnations" (D68). A claim on our dots moves the node
  // to a new incarnation at once (D36, D48), but before D68 with no bound: every forged batch took
  // one (1,000 batches: 1,000 incarnations, each a random step of up to 2^16, and ~131,000 of them
  // exhaust the u32), and each forged hello naming a later incarnation within 2^24 of the current
  // one moved the node that far, so 256 of them exhausted it and every write failed for good.
  Mesh mesh(2);
  REQUIRE(mesh[0].create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(mesh[0].upsert("c", "x", value(1)).ok());
  mesh.connect(0, 1);
  mesh.run();
  const crdt::ReplicaId peer = mesh[1].replica();
  // A batch from node 1 whose context claims node 0's dot `counter` of its current incarnation.
  auto forged_claim = [&](std::uint64_t counter) {
    const crdt::Dot claimed{mesh[0].issuer(), counter};
    crdt::Delta d;
    d.context.add(claimed);
    crdt::Bytes bytes;
    crdt::encode_delta(d, bytes);
    transport::DeltaBatch batch;
    batch.last_seq = 1;
    batch.items.push_back({"c", std::string(bytes.begin(), bytes.end())});
    REQUIRE(mesh[0].receive(peer, batch, mesh.now()).ok());
    return claimed;
  };
  constexpr std::uint32_t kStep = 1u << 16;
  SECTION("1,000 forged batches move an idle node 16 times in a process life; every claim is stripped") {
    const crdt::ReplicaId opened = mesh[0].issuer();
    std::vector<crdt::Dot> claims;
    for (std::uint64_t i = 0; i < 1000; ++i) claims.push_back(forged_claim(1000 + i));
    CHECK(mesh[0].stats().own_claims_stripped == 1000);
    CHECK(mesh[0].stats().claim_incarnations == 16);
    CHECK(mesh[0].stats().claims_unheeded == 1000 - 16);
    CHECK(mesh[0].issuer().identity == opened.identity);
    CHECK(mesh[0].issuer().incarnation > opened.incarnation);
    CHECK(mesh[0].issuer().incarnation - opened.incarnation <= 16 * kStep);
    // Nothing any claim named was kept: not the claims on an incarnation we issued under at the
    // time, including the 984 on the last one, which moved the node no more.
    const auto ctx = mesh[0].crdt_state_for_testing("c")->context();
    for (const crdt::Dot& dot : claims) CHECK_FALSE(ctx.contains(dot));
    // The node keeps writing, under the last incarnation, from its first counter.
    REQUIRE(mesh[0].upsert("c", "y", value(2)).ok());
    CHECK(mesh[0].get("c", "y")->siblings.at(0).dot == crdt::Dot{mesh[0].issuer(), 1});
    // The bound is per process life: after a restart claims move the node again. The first one
    // before a write stands for the fresh incarnation the write would take, and is not counted.
    const crdt::ReplicaId before_restart = mesh[0].issuer();
    mesh.restart(0);
    forged_claim(5000);
    CHECK(mesh[0].issuer().incarnation > before_restart.incarnation);
    CHECK(mesh[0].stats().claim_incarnations == 0);
    const crdt::ReplicaId moved = mesh[0].issuer();
    REQUIRE(mesh[0].upsert("c", "z", value(3)).ok());
    CHECK(mesh[0].issuer() == moved);  // the write took no other
    forged_claim(5000);
    CHECK(mesh[0].stats().claim_incarnations == 1);
  }
  SECTION("a claim after every write moves the node at most 16 times per process life, and it keeps writing") {
    const std::uint32_t opened = mesh[0].issuer().incarnation;
    for (int i = 0; i < 200; ++i) {
      const crdt::Dot claimed = forged_claim(1000);
      const std::string id = "w" + std::to_string(i);
      REQUIRE(mesh[0].upsert("c", id, value(static_cast<float>(i))).ok());
      // The first 16 claims moved the node: the write is not under the claimed incarnation. Past
      // the bound the node stays (the documented cost: a peer that took such a claim in may drop
      // its writes in the claimed range).
      const crdt::ReplicaId wrote = mesh[0].get("c", id)->siblings.at(0).dot.replica;
      if (i < 16) {
        CHECK(wrote != claimed.replica);
      } else {
        CHECK(wrote == claimed.replica);
      }
    }
    CHECK(mesh[0].stats().claim_incarnations == 16);
    CHECK(mesh[0].stats().claims_unheeded == 200 - 16);
    CHECK(mesh[0].issuer().incarnation - opened <= 16 * kStep);
    // Every write of the 200 is held.
    CHECK(mesh[0].collection_info("c")->live_records == 201);
  }
  SECTION("forged hellos naming later incarnations, over many restarts, never pass the ceiling, "
          "and past it claims move nothing") {
    // Each life: four hellos, each naming the incarnation 2^24 above the node's current one, then
    // a write. Before, the lead counted from the current incarnation, so they stacked (each moved
    // the node 2^24) and the write of about the 64th life failed ("replica incarnation
    // exhausted"). Now only the first of a life (2^24 above the incarnation opened) is believed,
    // and none at or past the ceiling: from about the 190th life on, only rule 1's step moves it.
    constexpr std::uint64_t kCeiling = (std::uint64_t{1} << 32) - (std::uint64_t{1} << 30);
    std::uint64_t implausible = 0;  // per process life in NodeStats: summed here
    for (int life = 0; life < 300; ++life) {
      for (int k = 0; k < 4; ++k) {
        transport::Hello h;
        h.replica = peer.encode();
        const std::uint64_t named = std::min(std::uint64_t{mesh[0].issuer().incarnation} + (std::uint64_t{1} << 24),
                                             std::uint64_t{std::numeric_limits<std::uint32_t>::max()});
        h.your_counters.push_back({"c", 1, static_cast<std::uint32_t>(named)});
        REQUIRE(mesh[0].receive(peer, h, mesh.now()).ok());
      }
      REQUIRE(mesh[0].upsert("c", "l" + std::to_string(life), value(3)).ok());
      // Past the ceiling only each open's own step (rule 1, up to 2^16) moves it.
      REQUIRE(mesh[0].issuer().incarnation < kCeiling + static_cast<std::uint64_t>(life + 2) * kStep);
      implausible += mesh[0].stats().implausible_incarnations;
      mesh.restart(0);
    }
    CHECK(implausible >= 3 * 300);
    // A hello naming the incarnation just under the ceiling (believed: within 2^24 of the one
    // opened) takes the node to or past it.
    for (int life = 0; mesh[0].issuer().incarnation < kCeiling; ++life) {
      REQUIRE(life < 3);
      transport::Hello h;
      h.replica = peer.encode();
      h.your_counters.push_back({"c", 1, static_cast<std::uint32_t>(kCeiling - 1)});
      REQUIRE(mesh[0].receive(peer, h, mesh.now()).ok());
      mesh.restart(0);
    }
    // At the ceiling: the node still writes, a quarter of the space stays for its own opens, and
    // forged batches are stripped but move it no more.
    REQUIRE(mesh[0].upsert("c", "last", value(4)).ok());
    const crdt::ReplicaId at_ceiling = mesh[0].issuer();
    CHECK(std::uint64_t{at_ceiling.incarnation} + (std::uint64_t{1} << 29) < (std::uint64_t{1} << 32));
    for (std::uint64_t i = 0; i < 50; ++i) {
      const crdt::Dot claimed = forged_claim(1000 + i);
      CHECK_FALSE(mesh[0].crdt_state_for_testing("c")->context().contains(claimed));
    }
    CHECK(mesh[0].issuer() == at_ceiling);
    CHECK(mesh[0].stats().claim_incarnations == 0);
    CHECK(mesh[0].stats().claims_unheeded == 50);
    REQUIRE(mesh[0].upsert("c", "after", value(5)).ok());
    CHECK(mesh[0].get("c", "after")->siblings.at(0).dot.replica == at_ceiling);
  }
}
