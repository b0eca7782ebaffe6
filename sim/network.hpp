// sim/network.hpp: the simulated network between peers: per directed link delay, jitter, loss,
// duplication, reordering, partitions of several shapes, and clogging.
//
// Role: decides the fate of every message the simulator carries (dropped, delivered once, or
// duplicated, and when), and whether two peers see each other as up. It carries no bytes itself
// (the simulator's event queue does) and knows nothing of nodes or messages.
//
// Model (docs/sim.md, "Network"):
//   - Each directed link a->b has a base delay (hot: same site, 1-5 ms; warm: other sites,
//     10-80 ms), a jitter (up to half the base, uniform), a loss rate and a duplication rate
//     drawn per seed and per link; with probability reorder_rate a message takes an extra
//     0-50 ms, so messages on one link overtake each other.
//   - A partition cuts a set of directed links. A "detected" cut is seen by the peers (peer_down);
//     a "silent" cut (gray failure) drops messages one way while both peers still see each other
//     as up. Peer a sees b as up exactly when a and b are alive and neither a->b nor b->a has a
//     detected cut.
//   - A clog adds latency to one directed link until a deadline (a bandwidth/latency spike).
//   - Each directed link holds at most kMaxInFlightPerLink undelivered messages; a send beyond
//     that is dropped (a bounded queue), and counted.
//   - A cut is checked twice: when sending and again at delivery (a message in flight when the
//     link is cut is lost).
// After heal(): no cuts, no clogs, no loss or duplication; delays and jitter stay.
// Thread rules: one simulation thread. Deterministic: its only randomness is the Rng it owns.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "common/time.hpp"

namespace shoal::sim {

inline constexpr std::uint32_t kMaxInFlightPerLink = 512;

enum class PartitionShape : std::uint8_t {
  kSplitBrain = 0,   // two random halves, cut both ways (detected)
  kIsolateOne = 1,   // one peer cut from all others (detected)
  kOneWay = 2,       // one peer's outgoing links cut (detected by both sides: asymmetric drop)
  kSilentOneWay = 3, // one peer's outgoing links drop silently; everyone still sees it up
  kRingCut = 4,      // peers on a ring, only ring neighbours connected (detected)
};
const char* shape_name(PartitionShape s) noexcept;

// How sites connect (docs/sim.md, "Topology"). Inside a site every pair of peers has a link (a
// full mesh of hot peers, D16). Across sites: every pair (kFullMesh), or one link between the
// gateways of consecutive sites (kChain: site 0 - 1 - 2 - 3), or one link from each site's
// gateway to site 0's (kStar). Peer s (s < sites) is site s's gateway. Peers without a link never
// exchange messages and never see each other up: changes travel several hops.
enum class Topology : std::uint8_t { kFullMesh = 0, kChain = 1, kStar = 2 };
const char* topology_name(Topology t) noexcept;

struct NetworkFaults {
  double loss = 0.0;         // per-seed mean loss rate, 0..0.3
  double duplication = 0.0;  // per-seed mean duplication rate, 0..0.5
  double reorder = 0.0;      // probability of an extra 0..50 ms on a message
};

struct LinkFate {
  // Empty: dropped. Two entries: duplicated.
  std::vector<MonoTime> deliveries;
  const char* drop_reason = nullptr;  // "loss", "cut", "queue_full" when dropped
};

class Network {
 public:
  // site_of[i] is peer i's site; peers on one site are hot to each other.
  // Sites are numbered 0..max(site_of); peer s must be on site s for every site s (its gateway).
  Network(std::vector<std::uint32_t> site_of, const NetworkFaults& faults, Rng rng,
          Topology topology = Topology::kFullMesh);

  std::uint32_t peers() const noexcept { return n_; }
  bool same_site(std::uint32_t a, std::uint32_t b) const noexcept { return site_of_[a] == site_of_[b]; }
  // Whether a and b have a link at all (the topology); a send without one is dropped ("no_link").
  bool linked(std::uint32_t a, std::uint32_t b) const noexcept { return linked_[idx(a, b)] != 0; }
  // The largest number of cross-site links on a shortest path between two sites (1 when there is
  // one site or a full mesh).
  std::uint32_t site_diameter() const noexcept { return diameter_; }

  // The fate of one message sent a->b at `now` (reserves in-flight slots for each delivery).
  LinkFate send(std::uint32_t from, std::uint32_t to, MonoTime now);
  // Releases one in-flight slot of a->b and tells whether the message arrives (no cut now).
  bool deliver(std::uint32_t from, std::uint32_t to);

  // Replaces the current partition by a new one of `shape`. Returns a description for the trace.
  std::string partition(PartitionShape shape);
  void clear_partition();
  // Replaces the current partition by one that cuts every link between `group` and the other
  // peers (detected). Returns a description for the trace.
  std::string isolate(const std::vector<std::uint32_t>& group);
  // Adds `extra` latency to a->b until `until`.
  void clog(std::uint32_t from, std::uint32_t to, Duration extra, MonoTime until);
  // Ends every fault: no cuts, clogs, loss or duplication.
  void heal();

  // A detected or silent cut on a->b.
  bool cut(std::uint32_t from, std::uint32_t to) const noexcept { return cut_[idx(from, to)] != 0; }
  // Whether a->b's cut is detected (peer_down is delivered).
  bool detected_cut(std::uint32_t from, std::uint32_t to) const noexcept {
    return cut_[idx(from, to)] == 1;
  }

  std::uint64_t in_flight() const noexcept { return in_flight_total_; }
  std::uint64_t max_in_flight() const noexcept { return max_in_flight_; }
  std::uint64_t queue_drops() const noexcept { return queue_drops_; }

 private:
  struct Link {
    Duration base;
    Duration jitter;
    double loss = 0.0;
    double dup = 0.0;
    Duration clog_extra;
    MonoTime clog_until;
    std::uint32_t in_flight = 0;
  };
  std::size_t idx(std::uint32_t a, std::uint32_t b) const noexcept { return std::size_t{a} * n_ + b; }
  MonoTime arrival(Link& l, MonoTime now);

  std::uint32_t n_;
  std::vector<std::uint32_t> site_of_;
  double reorder_;
  Rng rng_;
  std::vector<Link> links_;
  std::vector<std::uint8_t> cut_;  // 0 open, 1 detected cut, 2 silent cut
  std::vector<std::uint8_t> linked_;  // 1 where the topology has a link
  std::uint32_t diameter_ = 1;
  std::uint64_t in_flight_total_ = 0;
  std::uint64_t max_in_flight_ = 0;
  std::uint64_t queue_drops_ = 0;
};

}  // namespace shoal::sim
