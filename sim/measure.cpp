#include "sim/measure.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <variant>

#include "common/random.hpp"
#include "crdt/codec.hpp"
#include "node/core/node.hpp"
#include "node/store/memory_store.hpp"
#include "sim/simulation.hpp"
#include "transport/codec.hpp"

namespace shoal::sim {

std::vector<ConvergencePoint> measure_convergence(std::uint64_t first_seed, std::uint32_t seeds_per_point,
                                                  const std::vector<std::uint32_t>& peer_counts) {
  std::vector<ConvergencePoint> out;
  for (std::uint32_t peers : peer_counts) {
    ConvergencePoint pt;
    pt.peers = peers;
    std::vector<std::int64_t> ms;
    for (std::uint32_t i = 0; i < seeds_per_point; ++i) {
      Scenario sc;
      sc.seed = first_seed + i;
      sc.peers = peers;
      SeedResult r = run_seed(sc);
      ++pt.seeds;
      if (r.converged) {
        ++pt.converged;
        ms.push_back(r.converge_ms);
      }
    }
    std::sort(ms.begin(), ms.end());
    if (!ms.empty()) {
      pt.median_ms = ms[ms.size() / 2];
      pt.p90_ms = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
      pt.max_ms = ms.back();
    }
    out.push_back(pt);
  }
  return out;
}

std::vector<ConvergencePoint> measure_convergence_hops(std::uint64_t first_seed, std::uint32_t seeds_per_point,
                                                       const std::vector<std::uint32_t>& hop_counts, bool repair) {
  std::vector<ConvergencePoint> out;
  for (std::uint32_t hops : hop_counts) {
    ConvergencePoint pt;
    pt.hops = hops;
    pt.peers = 2 * (hops + 1);
    auto plan = std::make_shared<Plan>();
    plan->name = "chain";
    plan->topology = 1;  // Topology::kChain
    std::vector<std::int64_t> ms;
    for (std::uint32_t i = 0; i < seeds_per_point; ++i) {
      Scenario sc;
      sc.seed = first_seed + i;
      sc.peers = pt.peers;
      sc.sites = hops + 1;
      sc.repair = repair;
      sc.plan = plan;  // the chain; the seed draws the faults (Plan: 5 s of chaos, an op per 30 ms)
      SeedResult r = run_seed(sc);
      ++pt.seeds;
      if (r.converged) {
        ++pt.converged;
        ms.push_back(r.converge_ms);
      }
    }
    std::sort(ms.begin(), ms.end());
    if (!ms.empty()) {
      pt.median_ms = ms[ms.size() / 2];
      pt.p90_ms = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
      pt.max_ms = ms.back();
    }
    out.push_back(pt);
  }
  return out;
}

namespace {

constexpr std::int64_t kEpochNs = 1'700'000'000'000'000'000;

// Two nodes on one loss-free, instant, in-order link. Every message is encoded and decoded.
class Pair {
 public:
  struct Bytes {
    std::uint64_t delta = 0;   // DeltaBatch and DeltaAck
    std::uint64_t repair = 0;  // DigestQuery/Reply, BucketQuery/Reply
    std::uint64_t hello = 0;
    std::uint64_t batches = 0; // DeltaBatch only
    std::uint64_t total = 0;
  };

  Status open(node::NodeOptions base) {
    for (int i = 0; i < 2; ++i) {
      node::NodeOptions o = base;
      o.identity = crdt::replica_for_testing(static_cast<std::uint64_t>(i) + 1, 0);
      // The Pair outlives its nodes (nodes_ is declared after now_).
      o.wall_clock = [this]() { return WallTime::from_ns(kEpochNs + now_.ns()); };
      o.build_threads = 1;
      SHOAL_ASSIGN_OR_RETURN(nodes_[i], node::Node::open(stores_[i], std::move(o)));
    }
    return {};
  }
  node::Node& node(int i) { return *nodes_[i]; }
  Bytes& bytes() { return bytes_; }

  void up() {
    connected_ = true;
    nodes_[0]->peer_up(nodes_[1]->replica(), node::Tier::kHot, now_);
    nodes_[1]->peer_up(nodes_[0]->replica(), node::Tier::kHot, now_);
  }
  void down() {
    connected_ = false;
    nodes_[0]->peer_down(nodes_[1]->replica(), now_);
    nodes_[1]->peer_down(nodes_[0]->replica(), now_);
  }

  // Delivers everything both nodes send, advancing time 1 ms per round, then to the next
  // wake-up, for at most `budget` of simulated time. With `until_equal`, stops as soon as the
  // digests of `collection` are equal and nothing is in flight; without it, when nothing is in
  // flight and no wake-up is due within `quiet`.
  Status pump(Duration budget, bool until_equal, std::string_view collection, Duration quiet = Duration::millis(50)) {
    const MonoTime end = now_ + budget;
    while (now_ < end) {
      std::deque<std::pair<int, std::string>> wire;
      for (int i = 0; i < 2; ++i) {
        nodes_[i]->tick(now_);
        collect(i, wire);
      }
      while (!wire.empty()) {
        auto [to, bytes] = std::move(wire.front());
        wire.pop_front();
        auto msg = transport::decode(bytes);
        if (!msg.ok()) return msg.status();
        (void)nodes_[to]->receive(nodes_[1 - to]->replica(), *msg, now_);
        nodes_[to]->tick(now_);
        collect(to, wire);
      }
      if (until_equal && equal(collection)) return {};
      std::optional<MonoTime> w;
      for (int i = 0; i < 2; ++i) {
        auto wi = nodes_[i]->next_wakeup();
        if (wi && (!w || *wi < *w)) w = wi;
      }
      if (!until_equal && (!w || *w > now_ + quiet)) return {};
      const MonoTime next = now_ + Duration::millis(1);
      now_ = (w && *w > next) ? *w : next;
    }
    return until_equal ? Status(Code::kInternal, "not equal within the budget") : Status();
  }

  bool equal(std::string_view collection) {
    auto a = nodes_[0]->digest_root(collection);
    auto b = nodes_[1]->digest_root(collection);
    return a.ok() && b.ok() && *a == *b;
  }

 private:
  void collect(int from, std::deque<std::pair<int, std::string>>& wire) {
    for (node::Outgoing& o : nodes_[from]->take_outbox()) {
      std::string b = transport::encode(o.message);
      bytes_.total += b.size();
      const std::size_t k = o.message.index();
      if (k == 0) bytes_.hello += b.size();
      else if (k <= 2) bytes_.delta += b.size();
      else bytes_.repair += b.size();
      if (k == 1) bytes_.batches += b.size();
      if (connected_) wire.emplace_back(1 - from, std::move(b));
    }
  }

  MonoTime now_;
  store::MemoryStore stores_[2];
  std::unique_ptr<node::Node> nodes_[2];
  Bytes bytes_;
  bool connected_ = false;
};

node::CollectionSpec small_spec(std::uint32_t dim) {
  node::CollectionSpec s;
  s.name.assign(1, 'c');  // not = "c": GCC 12 warns falsely (-Wrestrict, PR 105329)
  s.dimension = dim;
  s.m = 4;
  s.ef_construction = 16;
  s.ef_search = 16;
  return s;
}

node::RecordValue random_value(Rng& rng, std::uint32_t dim) {
  node::RecordValue v;
  v.vector.resize(dim);
  for (float& x : v.vector) x = rng.uniform_float(-1.0f, 1.0f);
  return v;
}

std::string rid(std::uint64_t i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "r%07llu", static_cast<unsigned long long>(i));
  return buf;
}

}  // namespace

Result<DeltaPathCost> measure_delta_path(std::uint32_t dimension, std::uint32_t changes) {
  auto pair = std::make_unique<Pair>();
  node::NodeOptions o;
  o.sync.repair_enabled = false;  // the delta path alone
  SHOAL_RETURN_IF_ERROR(pair->open(o));
  SHOAL_RETURN_IF_ERROR(pair->node(0).create_collection(small_spec(dimension)));
  SHOAL_RETURN_IF_ERROR(pair->node(1).create_collection(small_spec(dimension)));
  pair->up();
  SHOAL_RETURN_IF_ERROR(pair->pump(Duration::seconds(5), false, "c"));
  pair->bytes() = {};
  Rng rng(42);
  DeltaPathCost cost;
  cost.dimension = dimension;
  cost.changes = changes;
  double payload = 0;
  for (std::uint32_t i = 0; i < changes; ++i) {
    node::RecordValue v = random_value(rng, dimension);
    payload += static_cast<double>(node::encode_payload(v).size());
    SHOAL_RETURN_IF_ERROR(pair->node(0).upsert("c", rid(i % 1000), std::move(v)));
    SHOAL_RETURN_IF_ERROR(pair->pump(Duration::seconds(5), false, "c"));
  }
  if (!pair->equal("c")) return Status(Code::kInternal, "delta path did not deliver every change");
  const double n = changes;
  cost.payload_bytes = payload / n;
  cost.delta_batch_bytes = static_cast<double>(pair->bytes().batches) / n;
  cost.all_sync_bytes = static_cast<double>(pair->bytes().total) / n;
  return cost;
}

Result<RepairCost> measure_repair(std::uint64_t records, double divergence) {
  const auto t0 = std::chrono::steady_clock::now();
  auto pair = std::make_unique<Pair>();
  node::NodeOptions o;
  o.delta_buffer_max = 64;  // the buffer cannot reach back over the divergence: repair must
  o.limits.max_batch_records = 10'000;
  SHOAL_RETURN_IF_ERROR(pair->open(o));
  constexpr std::uint32_t kDim = 4;
  SHOAL_RETURN_IF_ERROR(pair->node(0).create_collection(small_spec(kDim)));
  SHOAL_RETURN_IF_ERROR(pair->node(1).create_collection(small_spec(kDim)));
  Rng rng(7);
  RepairCost cost;
  cost.records = records;
  for (std::uint64_t i = 0; i < records;) {
    std::vector<node::RecordInput> batch;
    for (std::uint64_t j = 0; j < 1000 && i < records; ++j, ++i) batch.push_back({rid(i), random_value(rng, kDim)});
    SHOAL_RETURN_IF_ERROR(pair->node(0).upsert_batch("c", std::move(batch)));
  }
  {
    SHOAL_ASSIGN_OR_RETURN(crdt::ORMap full, pair->node(0).crdt_state_for_testing("c"));
    crdt::Bytes enc;
    crdt::encode_delta(full.to_delta(), enc);
    cost.full_state_bytes = enc.size();
  }
  pair->up();
  SHOAL_RETURN_IF_ERROR(pair->pump(Duration::seconds(600), true, "c"));
  cost.initial_sync_bytes = pair->bytes().total;
  // Let acknowledgements settle so the divergence below is all that differs.
  SHOAL_RETURN_IF_ERROR(pair->pump(Duration::seconds(5), false, "c"));
  pair->down();
  const auto changed = static_cast<std::uint64_t>(static_cast<double>(records) * divergence);
  std::vector<std::uint64_t> order(records);
  for (std::uint64_t i = 0; i < records; ++i) order[i] = i;
  rng.shuffle(std::span<std::uint64_t>(order));
  for (std::uint64_t k = 0; k < changed; ++k) {
    SHOAL_RETURN_IF_ERROR(pair->node(static_cast<int>(k % 2)).upsert("c", rid(order[k]), random_value(rng, kDim)));
  }
  cost.diverged = changed;
  const auto before = pair->node(1).sync_stats().repair_sessions_completed + pair->node(0).sync_stats().repair_sessions_completed;
  pair->bytes() = {};
  pair->up();
  const Status st = pair->pump(Duration::seconds(600), true, "c");
  cost.converged = st.ok();
  cost.delta_bytes = pair->bytes().delta;
  cost.repair_bytes = pair->bytes().repair;
  cost.hello_bytes = pair->bytes().hello;
  cost.total_bytes = pair->bytes().total;
  cost.repair_sessions = pair->node(1).sync_stats().repair_sessions_completed +
                         pair->node(0).sync_stats().repair_sessions_completed - before;
  cost.build_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return cost;
}

}  // namespace shoal::sim
