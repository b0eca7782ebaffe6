#include "sim/simulation.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <memory>
#include <variant>

#include "common/random.hpp"
#include "crdt/replica.hpp"
#include "index/exact_index.hpp"
#include "index/kernels.hpp"
#include "node/core/node.hpp"
#include "node/store/memory_store.hpp"
#include "sim/event_queue.hpp"
#include "sim/network.hpp"
#include "sim/trace.hpp"
#include "transport/codec.hpp"

namespace shoal::sim {

const char* mutation_name(Mutation m) noexcept {
  switch (m) {
    case Mutation::kNone: return "none";
    case Mutation::kLww: return "lww";
    case Mutation::kLazyCounter: return "lazy-counter";
    case Mutation::kTrimBeforeAck: return "trim-before-ack";
    case Mutation::kEarlyContextMerge: return "early-context-merge";
  }
  return "?";
}

Result<Mutation> parse_mutation(std::string_view text) {
  for (Mutation m : {Mutation::kNone, Mutation::kLww, Mutation::kLazyCounter, Mutation::kTrimBeforeAck,
                     Mutation::kEarlyContextMerge}) {
    if (text == mutation_name(m)) return m;
  }
  return Status(Detail::kUnknownName, "unknown mutation '" + std::string(text) +
                                          "' (none, lww, lazy-counter, trim-before-ack, early-context-merge)");
}

std::string reproduce_command(const Scenario& s) {
  std::string cmd = "shoal-sim --seed " + std::to_string(s.seed) + " --seeds 1";
  if (s.peers) cmd += " --peers " + std::to_string(*s.peers);
  if (s.sites) cmd += " --sites " + std::to_string(*s.sites);
  if (!s.faults) cmd += " --no-faults";
  if (!s.repair) cmd += " --no-repair";
  if (s.mutation != Mutation::kNone) cmd += std::string(" --mutation ") + mutation_name(s.mutation);
  if (s.max_converge != Duration::seconds(120)) cmd += " --max-converge-s " + std::to_string(s.max_converge.ms() / 1000);
  return cmd;
}

namespace {

// Virtual wall time starts here (Nov 2023), so hybrid clocks look like real ones.
constexpr std::int64_t kEpochNs = 1'700'000'000'000'000'000;
constexpr std::string_view kCollection = "c";
constexpr std::uint32_t kDim = 8;
// Bounds the simulator checks during chaos: one outbox, one encoded message.
constexpr std::size_t kMaxOutbox = 4096;
constexpr std::size_t kMaxMessageBytes = std::size_t{4} << 20;

enum class Ev : std::uint8_t {
  kDeliver, kWake, kClientOp, kFault, kRestart, kUnpartition, kDiskRestore, kHeal, kCheck, kSample
};

struct Event {
  explicit Event(Ev k, std::uint32_t pa = 0, std::uint32_t pb = 0, std::uint64_t g = 0, std::string by = {})
      : kind(k), a(pa), b(pb), gen(g), bytes(std::move(by)) {}
  Ev kind = Ev::kWake;
  std::uint32_t a = 0;  // peer (or sender)
  std::uint32_t b = 0;  // receiver
  std::uint64_t gen = 0;
  std::string bytes;
};

std::string peer_name(std::uint32_t p) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "p%02u", p);
  return buf;
}

std::string fmt(const char* f, auto... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

class Simulation {
 public:
  explicit Simulation(const Scenario& sc)
      : sc_(sc), root_(sc.seed), trace_(sc.trace_out), net_({0}, {}, Rng(0)) {}
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  SeedResult run();

 private:
  struct Peer {
    std::unique_ptr<store::MemoryStore> store;
    std::unique_ptr<node::Node> node;  // null while crashed
    crdt::ReplicaId replica;
    std::uint64_t gen = 0;       // bumps on every crash and open; stale events carry old values
    Duration skew;               // wall clock offset from virtual time
    MonoTime wake_at = MonoTime::from_ns(INT64_MAX);
    std::vector<std::uint8_t> view;  // view[q]: this node was told q is up
    std::optional<crdt::CausalContext> last_context;
    std::uint64_t disk_gen = 0;
  };

  void setup();
  [[nodiscard]] bool open_node(std::uint32_t p);
  void crash(std::uint32_t p);
  void after_input(std::uint32_t p);
  void drain(std::uint32_t p);
  void schedule_wake(std::uint32_t p);
  void refresh_views();
  void deliver(Event& ev);
  void client_op();
  void fault();
  void heal();
  bool check_converged();
  void sample_contexts();
  void final_checks();
  void search_check(std::uint32_t p, Rng& rng);
  Result<crdt::ORMap> state(std::uint32_t p);
  void violation(std::string kind, std::string detail);
  node::RecordValue random_value();
  node::NodeOptions options_for(std::uint32_t p);
  node::Tier tier(std::uint32_t a, std::uint32_t b) const {
    return net_.same_site(a, b) ? node::Tier::kHot : node::Tier::kWarm;
  }
  void push(MonoTime at, Event ev) { queue_.push(at, std::move(ev)); }

  Scenario sc_;
  Rng root_;
  Trace trace_;
  Network net_;
  EventQueue<Event> queue_;
  std::vector<Peer> peers_;
  std::map<crdt::ReplicaId, std::uint32_t> index_of_;
  Oracle oracle_;
  std::vector<Violation> violations_;
  SeedStats stats_;
  Rng workload_rng_{0};
  Rng fault_rng_{0};
  MonoTime now_;
  MonoTime heal_at_;
  bool healed_ = false;
  bool done_ = false;
  bool converged_ = false;
  std::uint64_t partition_gen_ = 0;
  std::uint32_t n_ = 0;
  std::uint32_t sites_ = 0;
  std::uint32_t id_pool_ = 0;
  Duration op_mean_;
  Duration fault_mean_;
  Duration chaos_;
  std::string scenario_line_;
};

node::NodeOptions Simulation::options_for(std::uint32_t p) {
  node::NodeOptions o;
  o.identity = peers_[p].replica;
  // The node reads virtual time plus its skew; the Simulation outlives every Node.
  o.wall_clock = [this, p]() { return WallTime::from_ns(kEpochNs + now_.ns() + peers_[p].skew.ns()); };
  o.build_threads = 1;
  // Index rebuilds run inline, in order, and distances use one fixed kernel table: no thread or
  // CPU feature can change a result.
  o.rebuild_executor = [](std::function<void()> job) { job(); };
  o.index_isa = index::Isa::kScalar;
  // Small, so offline periods outlast what the buffer reaches back to and repair must run;
  // without repair, large, so the delta path alone must deliver everything.
  o.delta_buffer_max = sc_.repair ? 64 : 1'000'000;
  o.sync.repair_enabled = sc_.repair;
  o.mutations.lww_join = sc_.mutation == Mutation::kLww;
  o.mutations.lazy_counter = sc_.mutation == Mutation::kLazyCounter;
  o.mutations.trim_before_ack = sc_.mutation == Mutation::kTrimBeforeAck;
  o.mutations.early_context_merge = sc_.mutation == Mutation::kEarlyContextMerge;
  return o;
}

void Simulation::violation(std::string kind, std::string detail) {
  trace_.line(now_, kNoPeer, "violation", kind + " " + detail);
  violations_.push_back({std::move(kind), std::move(detail)});
}

Result<crdt::ORMap> Simulation::state(std::uint32_t p) {
  SHOAL_ASSERT(peers_[p].node != nullptr);
  return peers_[p].node->crdt_state_for_testing(kCollection);
}

node::RecordValue Simulation::random_value() {
  node::RecordValue v;
  v.vector.resize(kDim);
  for (float& x : v.vector) x = workload_rng_.uniform_float(-1.0f, 1.0f);
  return v;
}

bool Simulation::open_node(std::uint32_t p) {
  Peer& peer = peers_[p];
  auto opened = node::Node::open(*peer.store, options_for(p));
  ++peer.gen;
  if (!opened.ok()) {
    trace_.line(now_, static_cast<int>(p), "open_failed", opened.status().to_string());
    return false;
  }
  peer.node = std::move(opened).value();
  if (peer.node->replica() != peer.replica) {
    violation("identity", peer_name(p) + " reopened as " + peer.node->replica().to_string());
  }
  std::fill(peer.view.begin(), peer.view.end(), std::uint8_t{0});
  peer.wake_at = MonoTime::from_ns(INT64_MAX);
  return true;
}

void Simulation::setup() {
  Rng topo = root_.fork(1);
  Rng netr = root_.fork(2);
  workload_rng_ = root_.fork(3);
  fault_rng_ = root_.fork(4);
  n_ = sc_.peers ? std::clamp<std::uint32_t>(*sc_.peers, 1, 64) : 2 + static_cast<std::uint32_t>(topo.uniform(15));
  const std::uint32_t max_sites = std::min<std::uint32_t>(4, n_);
  sites_ = sc_.sites ? std::clamp<std::uint32_t>(*sc_.sites, 1, n_) : 1 + static_cast<std::uint32_t>(topo.uniform(max_sites));
  std::vector<std::uint32_t> site_of(n_);
  for (std::uint32_t i = 0; i < n_; ++i) {
    site_of[i] = i < sites_ ? i : static_cast<std::uint32_t>(topo.uniform(sites_));
  }
  NetworkFaults nf;
  if (sc_.faults) {
    nf.loss = topo.uniform_double() * 0.3;
    nf.duplication = topo.uniform_double() * 0.5;
    nf.reorder = topo.uniform_double() * 0.2;
  }
  net_ = Network(site_of, nf, netr);
  id_pool_ = 8 + static_cast<std::uint32_t>(topo.uniform(41));
  op_mean_ = Duration::millis(topo.uniform_range(15, 50));
  fault_mean_ = Duration::millis(topo.uniform_range(150, 800));
  chaos_ = Duration::millis(topo.uniform_range(2000, 8000));
  scenario_line_ = fmt("peers=%u sites=%u loss=%.3f dup=%.3f reorder=%.3f ids=%u op_mean_ms=%lld "
                       "fault_mean_ms=%lld chaos_ms=%lld faults=%s repair=%s mutation=%s",
                       n_, sites_, nf.loss, nf.duplication, nf.reorder, id_pool_,
                       static_cast<long long>(op_mean_.ms()), static_cast<long long>(fault_mean_.ms()),
                       static_cast<long long>(chaos_.ms()), sc_.faults ? "on" : "off",
                       sc_.repair ? "on" : "off", mutation_name(sc_.mutation));
  trace_.line(now_, kNoPeer, "scenario", scenario_line_);

  peers_.resize(n_);
  for (std::uint32_t i = 0; i < n_; ++i) {
    Peer& p = peers_[i];
    p.store = std::make_unique<store::MemoryStore>();
    p.replica = crdt::replica_for_testing(i + 1, 0);
    p.view.assign(n_, 0);
    index_of_[p.replica] = i;
  }
  node::CollectionSpec spec;
  spec.name = std::string(kCollection);
  spec.dimension = kDim;
  spec.metric = node::Metric::kL2;
  spec.m = 8;
  spec.ef_construction = 32;
  spec.ef_search = 32;
  for (std::uint32_t i = 0; i < n_; ++i) {
    if (!open_node(i)) {
      violation("open", peer_name(i) + " failed to open");
      continue;
    }
    const Status st = peers_[i].node->create_collection(spec);
    if (!st.ok()) violation("open", peer_name(i) + " create_collection: " + st.to_string());
  }
  refresh_views();
  push(now_ + Duration::millis(1), Event{Ev::kClientOp});
  if (sc_.faults) push(now_ + Duration::millis(50), Event{Ev::kFault});
  push(now_ + Duration::millis(200), Event{Ev::kSample});
  push(now_ + chaos_, Event{Ev::kHeal});
}

void Simulation::crash(std::uint32_t p) {
  Peer& peer = peers_[p];
  peer.node.reset();
  peer.store->crash();
  ++peer.gen;
  std::fill(peer.view.begin(), peer.view.end(), std::uint8_t{0});
  ++stats_.crashes;
}

void Simulation::after_input(std::uint32_t p) {
  if (peers_[p].node == nullptr) return;
  peers_[p].node->tick(now_);
  drain(p);
  schedule_wake(p);
}

void Simulation::drain(std::uint32_t p) {
  std::vector<node::Outgoing> out = peers_[p].node->take_outbox();
  if (out.size() > kMaxOutbox) violation("unbounded", peer_name(p) + fmt(" outbox of %zu messages", out.size()));
  for (node::Outgoing& o : out) {
    auto it = index_of_.find(o.to);
    const char* name = transport::message_name(o.message);
    if (it == index_of_.end()) {
      violation("unknown_peer", peer_name(p) + " sent " + name + " to " + o.to.to_string());
      continue;
    }
    const std::uint32_t to = it->second;
    std::string bytes = transport::encode(o.message);
    ++stats_.messages_sent;
    stats_.bytes_sent += bytes.size();
    const std::size_t kind = o.message.index();
    if (std::holds_alternative<transport::DeltaBatch>(o.message)) stats_.delta_batch_bytes += bytes.size();
    if (kind >= 3) stats_.repair_bytes += bytes.size();
    if (bytes.size() > kMaxMessageBytes) violation("unbounded", peer_name(p) + fmt(" %s of %zu bytes", name, bytes.size()));
    LinkFate fate = net_.send(p, to, now_);
    if (fate.deliveries.empty()) {
      ++stats_.messages_dropped;
      trace_.line(now_, static_cast<int>(p), "send_drop", fmt("to=p%02u %s %zuB %s", to, name, bytes.size(), fate.drop_reason));
      continue;
    }
    trace_.line(now_, static_cast<int>(p), "send", fmt("to=p%02u %s %zuB x%zu", to, name, bytes.size(), fate.deliveries.size()));
    for (std::size_t i = 0; i < fate.deliveries.size(); ++i) {
      Event ev{Ev::kDeliver, p, to, 0, i + 1 == fate.deliveries.size() ? std::move(bytes) : bytes};
      push(fate.deliveries[i], std::move(ev));
    }
  }
}

void Simulation::schedule_wake(std::uint32_t p) {
  Peer& peer = peers_[p];
  std::optional<MonoTime> w = peer.node->next_wakeup();
  if (!w) return;
  // A wake-up at or before now is due at once; a small step keeps a busy node from spinning.
  const MonoTime at = std::max(*w, now_ + Duration::micros(100));
  if (at >= peer.wake_at) return;
  peer.wake_at = at;
  push(at, Event{Ev::kWake, p, 0, peer.gen});
}

void Simulation::refresh_views() {
  for (std::uint32_t a = 0; a < n_; ++a) {
    Peer& pa = peers_[a];
    if (pa.node == nullptr) continue;
    bool changed = false;
    for (std::uint32_t b = 0; b < n_; ++b) {
      if (a == b) continue;
      const bool want = peers_[b].node != nullptr && !net_.detected_cut(a, b) && !net_.detected_cut(b, a);
      if (want == (pa.view[b] != 0)) continue;
      pa.view[b] = want ? 1 : 0;
      changed = true;
      if (want) {
        pa.node->peer_up(peers_[b].replica, tier(a, b), now_);
        trace_.line(now_, static_cast<int>(a), "peer_up", peer_name(b) + (tier(a, b) == node::Tier::kHot ? " hot" : " warm"));
      } else {
        pa.node->peer_down(peers_[b].replica, now_);
        trace_.line(now_, static_cast<int>(a), "peer_down", peer_name(b));
      }
    }
    if (changed) after_input(a);
  }
}

void Simulation::deliver(Event& ev) {
  const bool open = net_.deliver(ev.a, ev.b);
  Peer& to = peers_[ev.b];
  if (!open || to.node == nullptr) {
    ++stats_.messages_dropped;
    trace_.line(now_, static_cast<int>(ev.b), "recv_drop", fmt("from=p%02u %zuB %s", ev.a, ev.bytes.size(), open ? "down" : "cut"));
    return;
  }
  Result<transport::Message> msg = transport::decode(ev.bytes);
  if (!msg.ok()) {
    violation("codec", peer_name(ev.b) + " could not decode " + std::to_string(ev.bytes.size()) +
                           " bytes from " + peer_name(ev.a) + ": " + msg.status().to_string());
    return;
  }
  ++stats_.messages_delivered;
  const Status st = to.node->receive(peers_[ev.a].replica, *msg, now_);
  trace_.line(now_, static_cast<int>(ev.b), "recv",
              fmt("from=p%02u %s %zuB%s%s", ev.a, transport::message_name(*msg), ev.bytes.size(),
                  st.ok() ? "" : " rejected: ", st.ok() ? "" : st.to_string().substr(0, 120).c_str()));
  after_input(ev.b);
}

void Simulation::client_op() {
  if (healed_) return;
  push(now_ + Duration::nanos(static_cast<std::int64_t>(workload_rng_.exponential(static_cast<double>(op_mean_.ns())))) + Duration::micros(1),
       Event{Ev::kClientOp});
  const auto p = static_cast<std::uint32_t>(workload_rng_.uniform(n_));
  Peer& peer = peers_[p];
  const double r = workload_rng_.uniform_double();
  const std::string id = "r" + std::to_string(workload_rng_.uniform(id_pool_));
  if (peer.node == nullptr) {
    ++stats_.failed_ops;
    trace_.line(now_, static_cast<int>(p), "op_down", id);
    return;
  }
  node::Node& nd = *peer.node;
  if (r < 0.85) {
    auto before = state(p);
    if (!before.ok()) {
      ++stats_.failed_ops;
      trace_.line(now_, static_cast<int>(p), "op_fail", "state: " + before.status().to_string());
      after_input(p);
      return;
    }
    std::vector<std::pair<std::string, bool>> done;  // id, is upsert
    Status st;
    std::string what;
    if (r < 0.55) {
      node::RecordValue v = random_value();
      stats_.payload_bytes += node::encode_payload(v).size();
      st = nd.upsert(kCollection, id, std::move(v));
      done.push_back({id, true});
      what = "upsert";
    } else if (r < 0.65) {
      std::vector<node::RecordInput> batch;
      const std::uint64_t k = 2 + workload_rng_.uniform(4);
      for (std::uint64_t i = 0; i < k; ++i) {
        std::string bid = "r" + std::to_string(workload_rng_.uniform(id_pool_));
        if (std::any_of(done.begin(), done.end(), [&](const auto& d) { return d.first == bid; })) continue;
        node::RecordValue v = random_value();
        stats_.payload_bytes += node::encode_payload(v).size();
        batch.push_back({bid, std::move(v)});
        done.push_back({bid, true});
      }
      st = nd.upsert_batch(kCollection, std::move(batch));
      what = "upsert_batch";
    } else {
      st = nd.remove(kCollection, id);
      done.push_back({id, false});
      what = "remove";
    }
    std::string ids;
    for (const auto& d : done) ids += d.first + ",";
    trace_.line(now_, static_cast<int>(p), what, ids + (st.ok() ? " ok" : " " + st.to_string()));
    if (st.ok()) {
      auto after = state(p);
      if (!after.ok()) {
        violation("state_unreadable", peer_name(p) + ": " + after.status().to_string());
      } else {
        for (const auto& [did, up] : done) {
          if (up) {
            oracle_.upsert(peer.replica, did, entries_of(*before, did), entries_of(*after, did), violations_);
            ++stats_.acked_upserts;
          } else {
            oracle_.remove(did, entries_of(*before, did));
            ++stats_.acked_removes;
          }
        }
      }
    } else {
      ++stats_.failed_ops;
    }
  } else {
    node::RecordValue q = random_value();
    node::SearchOptions so;
    so.k = 10;
    auto hits = nd.search(kCollection, q.vector, so);
    trace_.line(now_, static_cast<int>(p), "search",
                hits.ok() ? fmt("%zu hits", hits->size()) : hits.status().to_string());
  }
  after_input(p);
}

void Simulation::fault() {
  if (healed_) return;
  Rng& r = fault_rng_;
  push(now_ + Duration::nanos(static_cast<std::int64_t>(r.exponential(static_cast<double>(fault_mean_.ns())))) + Duration::micros(1),
       Event{Ev::kFault});
  const double x = r.uniform_double();
  const auto p = static_cast<std::uint32_t>(r.uniform(n_));
  if (x < 0.25) {
    if (n_ < 2) return;
    const auto shape = static_cast<PartitionShape>(r.uniform(5));
    const std::string desc = net_.partition(shape);
    ++stats_.partitions;
    const Duration d = Duration::millis(r.uniform_range(200, 4000));
    trace_.line(now_, kNoPeer, "partition", desc + fmt(" for_ms=%lld", static_cast<long long>(d.ms())));
    push(now_ + d, Event{Ev::kUnpartition, 0, 0, ++partition_gen_});
    refresh_views();
  } else if (x < 0.40) {
    if (n_ < 2) return;
    auto q = static_cast<std::uint32_t>(r.uniform(n_ - 1));
    if (q >= p) ++q;
    const Duration extra = Duration::millis(r.uniform_range(50, 1000));
    const Duration d = Duration::millis(r.uniform_range(100, 3000));
    net_.clog(p, q, extra, now_ + d);
    trace_.line(now_, static_cast<int>(p), "clog", fmt("to=p%02u extra_ms=%lld for_ms=%lld", q,
                                                       static_cast<long long>(extra.ms()), static_cast<long long>(d.ms())));
  } else if (x < 0.60) {
    if (peers_[p].node == nullptr) return;
    // Long offline periods outlast what a 64-entry delta buffer reaches back to.
    const bool long_offline = sc_.repair && r.bernoulli(0.3);
    const Duration d = long_offline ? Duration::millis(r.uniform_range(5000, 20000))
                                    : Duration::millis(r.uniform_range(50, 2000));
    crash(p);
    trace_.line(now_, static_cast<int>(p), "crash", fmt("restart_in_ms=%lld", static_cast<long long>(d.ms())));
    push(now_ + d, Event{Ev::kRestart, p, 0, peers_[p].gen});
    refresh_views();
  } else if (x < 0.75) {
    // A clock jump, forwards or backwards (NTP step, RTC reset).
    const Duration jump = Duration::millis(static_cast<std::int64_t>(r.normal(0.0, 5000.0)));
    peers_[p].skew += jump;
    trace_.line(now_, static_cast<int>(p), "clock_jump", fmt("by_ms=%lld skew_ms=%lld", static_cast<long long>(jump.ms()),
                                                            static_cast<long long>(peers_[p].skew.ms())));
  } else if (x < 0.90) {
    store::MemoryStore& st = *peers_[p].store;
    st.set_capacity_bytes(st.used_bytes() + r.uniform(2000));
    const Duration d = Duration::millis(r.uniform_range(200, 3000));
    trace_.line(now_, static_cast<int>(p), "disk_full", fmt("used=%llu for_ms=%lld", static_cast<unsigned long long>(st.used_bytes()),
                                                           static_cast<long long>(d.ms())));
    push(now_ + d, Event{Ev::kDiskRestore, p, 0, ++peers_[p].disk_gen});
  } else {
    const auto k = static_cast<std::uint32_t>(1 + r.uniform(3));
    peers_[p].store->fail_next_writes(k);
    trace_.line(now_, static_cast<int>(p), "io_fail", fmt("next_writes=%u", k));
  }
}

void Simulation::heal() {
  healed_ = true;
  heal_at_ = now_;
  net_.heal();
  ++partition_gen_;
  trace_.line(now_, kNoPeer, "heal", "");
  for (std::uint32_t p = 0; p < n_; ++p) {
    peers_[p].store->set_capacity_bytes(UINT64_MAX);
    peers_[p].store->fail_next_writes(0);
    ++peers_[p].disk_gen;
    if (peers_[p].node == nullptr) {
      if (open_node(p)) {
        trace_.line(now_, static_cast<int>(p), "restart", "at heal");
      } else {
        violation("reopen", peer_name(p) + " failed to reopen at heal");
      }
    }
  }
  refresh_views();
  push(now_ + Duration::millis(10), Event{Ev::kCheck});
}

bool Simulation::check_converged() {
  std::optional<std::uint64_t> root;
  for (std::uint32_t p = 0; p < n_; ++p) {
    if (peers_[p].node == nullptr) return false;
    auto r = peers_[p].node->digest_root(kCollection);
    if (!r.ok()) return false;
    if (root && *root != *r) return false;
    root = *r;
  }
  auto first = state(0);
  if (!first.ok()) return false;
  for (std::uint32_t p = 1; p < n_; ++p) {
    auto s = state(p);
    if (!s.ok() || !(*s == *first)) return false;
  }
  return true;
}

void Simulation::sample_contexts() {
  for (std::uint32_t p = 0; p < n_; ++p) {
    Peer& peer = peers_[p];
    if (peer.node == nullptr) continue;
    auto s = state(p);
    if (!s.ok()) continue;  // an injected read fault; sampled next time
    if (peer.last_context && !s->context().includes(*peer.last_context)) {
      violation("context_shrank", peer_name(p) + " context lost dots: was " +
                                      peer.last_context->to_string().substr(0, 160) + " now " +
                                      s->context().to_string().substr(0, 160));
    }
    peer.last_context = s->context();
  }
}

void Simulation::search_check(std::uint32_t p, Rng& rng) {
  // Exact k-NN over the oracle's winners is the reference.
  std::vector<std::string> ids;
  std::vector<float> base;
  for (const auto& [id, entries] : oracle_.model().records()) {
    const crdt::Entry* w = crdt::winner(entries);
    if (w == nullptr) continue;
    auto v = node::decode_payload(std::string_view(reinterpret_cast<const char*>(w->payload.data()), w->payload.size()));
    if (!v.ok() || v->vector.size() != kDim) {
      violation("payload", "oracle winner of '" + id + "' does not decode");
      return;
    }
    ids.push_back(id);
    base.insert(base.end(), v->vector.begin(), v->vector.end());
  }
  double found = 0, wanted = 0;
  for (int qi = 0; qi < 3; ++qi) {
    std::vector<float> q(kDim);
    for (float& x : q) x = rng.uniform_float(-1.0f, 1.0f);
    auto exact = index::exact_knn(index::scalar_kernels(), index::Metric::kL2, base, kDim, q, 10);
    node::SearchOptions so;
    so.k = 10;
    so.with_metadata = false;
    auto hits = peers_[p].node->search(kCollection, q, so);
    if (!hits.ok()) {
      violation("search", peer_name(p) + ": " + hits.status().to_string());
      return;
    }
    if (hits->size() != exact.size()) {
      violation("search", peer_name(p) + fmt(": %zu hits, exact search over the model has %zu", hits->size(), exact.size()));
    }
    for (const auto& nb : exact) {
      wanted += 1;
      const std::string& want = ids[nb.label];
      if (std::any_of(hits->begin(), hits->end(), [&](const node::Hit& h) { return h.id == want; })) found += 1;
    }
  }
  const double recall = wanted == 0 ? 1.0 : found / wanted;
  trace_.line(now_, static_cast<int>(p), "search_check", fmt("recall=%.3f", recall));
  if (recall < 0.95) violation("search_recall", peer_name(p) + fmt(": recall@10 %.3f < 0.95", recall));
}

void Simulation::final_checks() {
  for (std::uint32_t p = 0; p < n_; ++p) {
    if (peers_[p].node == nullptr) continue;
    auto s = state(p);
    if (!s.ok()) {
      violation("state_unreadable", peer_name(p) + ": " + s.status().to_string());
      continue;
    }
    const std::size_t before = violations_.size();
    oracle_.check_replica(peer_name(p), *s, violations_);
    for (std::size_t i = before; i < violations_.size(); ++i) {
      trace_.line(now_, static_cast<int>(p), "violation", violations_[i].kind + " " + violations_[i].detail);
    }
    // Once converged every replica is equal: checking one is checking all; report it once.
    if (converged_ && violations_.size() > before) break;
  }
  if (converged_) {
    Rng rng = root_.fork(5);
    for (std::uint32_t p = 0; p < n_; ++p) search_check(p, rng);
  }
}

SeedResult Simulation::run() {
  setup();
  while (!done_ && !queue_.empty()) {
    auto item = queue_.pop();
    now_ = item.at;
    Event& ev = item.payload;
    ++stats_.events;
    switch (ev.kind) {
      case Ev::kDeliver:
        deliver(ev);
        break;
      case Ev::kWake: {
        Peer& peer = peers_[ev.a];
        if (peer.node == nullptr || peer.gen != ev.gen) break;
        if (peer.wake_at == now_) peer.wake_at = MonoTime::from_ns(INT64_MAX);
        trace_.line(now_, static_cast<int>(ev.a), "wake", "");
        after_input(ev.a);
        break;
      }
      case Ev::kClientOp:
        client_op();
        break;
      case Ev::kFault:
        fault();
        break;
      case Ev::kRestart:
        if (healed_ || peers_[ev.a].node != nullptr || peers_[ev.a].gen != ev.gen) break;
        if (open_node(ev.a)) {
          trace_.line(now_, static_cast<int>(ev.a), "restart", "");
          refresh_views();
        } else {
          // E.g. a full disk; try again shortly (the event keeps the new generation).
          push(now_ + Duration::millis(500), Event{Ev::kRestart, ev.a, 0, peers_[ev.a].gen});
        }
        break;
      case Ev::kUnpartition:
        if (healed_ || ev.gen != partition_gen_) break;
        net_.clear_partition();
        trace_.line(now_, kNoPeer, "unpartition", "");
        refresh_views();
        break;
      case Ev::kDiskRestore:
        if (healed_ || ev.gen != peers_[ev.a].disk_gen) break;
        peers_[ev.a].store->set_capacity_bytes(UINT64_MAX);
        trace_.line(now_, static_cast<int>(ev.a), "disk_ok", "");
        break;
      case Ev::kHeal:
        heal();
        break;
      case Ev::kCheck:
        if (check_converged()) {
          converged_ = true;
          done_ = true;
          trace_.line(now_, kNoPeer, "converged", fmt("after_ms=%lld", static_cast<long long>((now_ - heal_at_).ms())));
        } else if (now_ - heal_at_ > sc_.max_converge) {
          done_ = true;
          violation("not_converged", fmt("replicas differ %lld ms after heal", static_cast<long long>((now_ - heal_at_).ms())));
        } else {
          push(now_ + Duration::millis(20), Event{Ev::kCheck});
        }
        break;
      case Ev::kSample:
        if (healed_) break;
        sample_contexts();
        push(now_ + Duration::millis(200), Event{Ev::kSample});
        break;
    }
  }
  if (!done_) violation("not_converged", "event queue ran dry before convergence");
  final_checks();

  SeedResult res;
  res.seed = sc_.seed;
  res.peers = n_;
  res.sites = sites_;
  res.violations = std::move(violations_);
  res.converged = converged_;
  res.converge_ms = converged_ ? (now_ - heal_at_).ms() : 0;
  stats_.max_in_flight = net_.max_in_flight();
  stats_.records = oracle_.model().size();
  res.stats = stats_;
  res.scenario = scenario_line_;
  res.trace_hash = trace_.hash();
  return res;
}

}  // namespace

SeedResult run_seed(const Scenario& scenario) {
  auto sim = std::make_unique<Simulation>(scenario);
  return sim->run();
}

}  // namespace shoal::sim
