// Proves convergence under a hostile network: 2-8 replicas make random upserts and deletes
// (with skewed wall clocks) while their deltas are delivered in random order, duplicated,
// relayed through other replicas, batched, or dropped and resent later. After everything is
// delivered every replica holds the same state, and that state equals a sequential model of the
// intended semantics computed from the operation log alone: an upsert survives unless some later
// operation on its id observed it (so concurrent upserts stay as siblings, an upsert concurrent
// with a delete survives, and a delete after observing removes). Winners agree everywhere.
#include <map>
#include <set>

#include "common/time.hpp"
#include "crdt_test_util.hpp"

using namespace shoal::crdt;
using namespace shoal::crdt::testing;
using shoal::Duration;
using shoal::Rng;
using shoal::WallTime;

namespace {

struct Message {
  std::size_t to;
  Delta delta;
};

// The sequential model: every upsert ever made, and every dot some operation observed.
struct Model {
  std::map<Dot, std::pair<std::string, Entry>> upserts;
  std::set<Dot> superseded;

  void record(const std::string& id, const Entries* observed, const Entry* written) {
    if (observed != nullptr) {
      for (const Entry& e : *observed) superseded.insert(e.dot);
    }
    if (written != nullptr) upserts.emplace(written->dot, std::make_pair(id, *written));
  }

  RecordMap expected() const {
    RecordMap out;
    for (const auto& [dot, rec] : upserts) {
      if (!superseded.count(dot)) out[rec.first].push_back(rec.second);  // dot order preserved
    }
    return out;
  }
};

void run_scenario(Rng& rng, std::size_t n) {
  std::vector<ORMap> replicas(n, ORMap(kSmallDigests));
  std::vector<ReplicaId> selves;
  std::vector<shoal::crdt::HybridClock> clocks(n);
  std::vector<Duration> skew;
  for (std::size_t i = 0; i < n; ++i) {
    selves.push_back(replica_for_testing(100 + i, static_cast<std::uint32_t>(i % 2)));
    skew.push_back(Duration::millis(rng.uniform_range(-5000, 5000)));
  }
  Model model;
  std::vector<Message> pending;
  std::vector<Message> dropped;  // lost in transit; resent (by the sender's buffer) later
  std::int64_t now_ms = 1'700'000'000'000;
  const std::uint64_t ids = 1 + rng.uniform(12);
  const int ops = 40 + static_cast<int>(rng.uniform(260));
  int done_ops = 0;

  auto broadcast = [&](std::size_t from, const Delta& d) {
    for (std::size_t to = 0; to < n; ++to) {
      if (to != from) pending.push_back(Message{to, d});
    }
  };
  auto deliver = [&](std::size_t i) {
    Message m = pending[i];
    const bool duplicate = rng.bernoulli(0.1);
    if (!duplicate) {
      pending[i] = std::move(pending.back());
      pending.pop_back();
    }
    for (const auto& [id, entries] : m.delta.records) {
      for (const Entry& e : entries) {
        // A refused clock is only not adopted; the data is still joined.
        (void)clocks[m.to].observe(e.clock, WallTime::from_ns(now_ms * 1'000'000) + skew[m.to]);
      }
    }
    const bool changed = replicas[m.to].join(m.delta);
    // Multi-hop: a replica relays deltas that changed it to some peers.
    if (changed && rng.bernoulli(0.2)) broadcast(m.to, m.delta);
  };

  while (done_ops < ops || !pending.empty() || !dropped.empty()) {
    if (pending.empty() && (done_ops >= ops || rng.bernoulli(0.3))) {
      pending = std::move(dropped);
      dropped.clear();
    }
    now_ms += static_cast<std::int64_t>(rng.uniform(20));
    const std::uint64_t roll = rng.uniform(100);
    if (done_ops < ops && (roll < 35 || pending.empty())) {
      const std::size_t r = static_cast<std::size_t>(rng.uniform(n));
      const std::string id = id_from(rng.uniform(ids));
      const Entries* observed = replicas[r].find(id);
      const Entries observed_copy = observed ? *observed : Entries{};
      if (rng.bernoulli(0.65)) {
        const auto clock = clocks[r].tick(WallTime::from_ns(now_ms * 1'000'000) + skew[r]);
        auto d = replicas[r].upsert(selves[r], id, random_payload(rng), clock);
        REQUIRE(d.ok());
        model.record(id, &observed_copy, &d->records.at(id).front());
        broadcast(r, *d);
      } else {
        auto d = replicas[r].remove(id);
        REQUIRE(d.ok());
        model.record(id, &observed_copy, nullptr);
        if (!d->empty()) broadcast(r, *d);
      }
      ++done_ops;
    } else if (roll < 45 && pending.size() >= 2) {
      // Batch two pending deltas for the same destination into one joined delta.
      const std::size_t i = static_cast<std::size_t>(rng.uniform(pending.size()));
      for (std::size_t j = 0; j < pending.size(); ++j) {
        if (j != i && pending[j].to == pending[i].to) {
          pending[i].delta.join(pending[j].delta);
          pending[j] = std::move(pending.back());
          pending.pop_back();
          break;
        }
      }
    } else if (!pending.empty()) {
      const std::size_t i = static_cast<std::size_t>(rng.uniform(pending.size()));
      if (rng.bernoulli(0.15)) {
        // Dropped now, resent later.
        dropped.push_back(std::move(pending[i]));
        pending[i] = std::move(pending.back());
        pending.pop_back();
      } else {
        deliver(i);
      }
    }
  }

  const RecordMap expected = model.expected();
  for (std::size_t i = 0; i < n; ++i) {
    INFO("replica " << i << "\n"
                    << replicas[i].to_string() << "vs replica 0\n"
                    << replicas[0].to_string());
    REQUIRE(replicas[i].check_invariants_for_testing());
    REQUIRE(replicas[i] == replicas[0]);
    REQUIRE(replicas[i].digests().root() == replicas[0].digests().root());
    REQUIRE(replicas[i].records() == expected);
    for (const auto& [id, entries] : expected) {
      REQUIRE(replicas[i].winner(id)->dot == replicas[0].winner(id)->dot);
    }
  }
}

}  // namespace

TEST_CASE("replicas converge to the sequential model under reordering, duplication and loss",
          "[crdt][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    for (int scenario = 0; scenario < 150; ++scenario) {
      const std::size_t n = 2 + static_cast<std::size_t>(rng.uniform(7));
      INFO("scenario " << scenario << " replicas " << n);
      run_scenario(rng, n);
    }
  }
}

TEST_CASE("concurrent upserts stay siblings with one deterministic winner", "[crdt]") {
  const ReplicaId a = replica_for_testing(1), b = replica_for_testing(2);
  ORMap ra, rb;
  auto da = ra.upsert(a, "k", Bytes{1}, Hlc::from_parts(100, 0));
  auto db = rb.upsert(b, "k", Bytes{2}, Hlc::from_parts(100, 0));
  REQUIRE(da.ok());
  REQUIRE(db.ok());
  ra.join(*db);
  rb.join(*da);
  REQUIRE(ra == rb);
  REQUIRE(ra.find("k")->size() == 2);
  // Equal clocks: the higher replica id wins, on both sides.
  CHECK(ra.winner("k")->dot.replica == b);
  CHECK(rb.winner("k")->payload == Bytes{2});

  // A later upsert that observed both siblings replaces both.
  auto dc = ra.upsert(a, "k", Bytes{3}, Hlc::from_parts(101, 0));
  REQUIRE(dc.ok());
  rb.join(*dc);
  REQUIRE(rb.find("k")->size() == 1);
  CHECK(rb.winner("k")->payload == Bytes{3});
}

TEST_CASE("an upsert concurrent with a delete survives; a delete after observing removes",
          "[crdt]") {
  const ReplicaId a = replica_for_testing(1), b = replica_for_testing(2);
  ORMap ra, rb;
  auto d0 = ra.upsert(a, "k", Bytes{1}, Hlc::from_parts(1, 0));
  REQUIRE(d0.ok());
  rb.join(*d0);
  auto del = ra.remove("k");                                     // observed v1
  auto up = rb.upsert(b, "k", Bytes{2}, Hlc::from_parts(2, 0));  // concurrent
  REQUIRE(del.ok());
  REQUIRE(up.ok());
  ra.join(*up);
  rb.join(*del);
  REQUIRE(ra == rb);
  REQUIRE(ra.find("k") != nullptr);
  CHECK(ra.winner("k")->payload == Bytes{2});

  auto del2 = rb.remove("k");
  REQUIRE(del2.ok());
  ra.join(*del2);
  CHECK(ra.find("k") == nullptr);
  CHECK(ra == rb);
}

TEST_CASE("a device restored from backup with a new incarnation never reissues a dot", "[crdt]") {
  const ReplicaId life1 = replica_for_testing(7, 0);
  ReplicaId life2 = life1;
  life2.incarnation = 1;
  ORMap device, peer;
  REQUIRE(device.upsert(life1, "a", Bytes{1}, Hlc::from_raw(1)).ok());
  const ORMap backup = device;
  auto lost = device.upsert(life1, "b", Bytes{2}, Hlc::from_raw(2));  // after the backup
  REQUIRE(lost.ok());
  peer.join_state(device);

  ORMap restored = backup;  // the device is re-imaged from the backup
  auto fresh = restored.upsert(life2, "c", Bytes{3}, Hlc::from_raw(3));
  REQUIRE(fresh.ok());
  CHECK(fresh->records.at("c").front().dot != lost->records.at("b").front().dot);
  peer.join(*fresh);
  restored.join_state(peer);
  CHECK(peer == restored);
  CHECK(peer.find("b") != nullptr);
  CHECK(peer.find("c") != nullptr);
}
