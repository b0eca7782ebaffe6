#include "sim/network.hpp"

#include <algorithm>
#include <cstdio>

namespace shoal::sim {

const char* shape_name(PartitionShape s) noexcept {
  switch (s) {
    case PartitionShape::kSplitBrain: return "split_brain";
    case PartitionShape::kIsolateOne: return "isolate_one";
    case PartitionShape::kOneWay: return "one_way";
    case PartitionShape::kSilentOneWay: return "silent_one_way";
    case PartitionShape::kRingCut: return "ring_cut";
  }
  return "?";
}

const char* topology_name(Topology t) noexcept {
  switch (t) {
    case Topology::kFullMesh: return "full";
    case Topology::kChain: return "chain";
    case Topology::kStar: return "star";
  }
  return "?";
}

Network::Network(std::vector<std::uint32_t> site_of, const NetworkFaults& faults, Rng rng, Topology topology)
    : n_(static_cast<std::uint32_t>(site_of.size())),
      site_of_(std::move(site_of)),
      reorder_(faults.reorder),
      rng_(rng),
      links_(std::size_t{n_} * n_),
      cut_(std::size_t{n_} * n_, 0),
      linked_(std::size_t{n_} * n_, 0) {
  std::uint32_t sites = 0;
  for (std::uint32_t s : site_of_) sites = std::max(sites, s + 1);
  for (std::uint32_t a = 0; a < n_; ++a) {
    for (std::uint32_t b = 0; b < n_; ++b) {
      if (a == b) continue;
      const std::uint32_t sa = site_of_[a], sb = site_of_[b];
      bool link = sa == sb || topology == Topology::kFullMesh;
      // Cross-site links join gateways only: peer s is site s's gateway.
      const bool gateways = a == sa && b == sb;
      if (topology == Topology::kChain) link = link || (gateways && (sa + 1 == sb || sb + 1 == sa));
      if (topology == Topology::kStar) link = link || (gateways && (sa == 0 || sb == 0));
      linked_[idx(a, b)] = link ? 1 : 0;
    }
  }
  if (sites >= 2 && topology == Topology::kChain) diameter_ = sites - 1;
  if (sites >= 3 && topology == Topology::kStar) diameter_ = 2;
  for (std::uint32_t a = 0; a < n_; ++a) {
    for (std::uint32_t b = 0; b < n_; ++b) {
      Link& l = links_[idx(a, b)];
      const bool hot = site_of_[a] == site_of_[b];
      const std::int64_t base_us = hot ? rng_.uniform_range(1000, 5000) : rng_.uniform_range(10000, 80000);
      l.base = Duration::micros(base_us);
      l.jitter = Duration::micros(rng_.uniform_range(0, base_us / 2));
      // Each link varies around the seed's rates, capped at the maxima.
      const double f = 0.5 + rng_.uniform_double();
      l.loss = std::min(0.3, faults.loss * f);
      l.dup = std::min(0.5, faults.duplication * f);
    }
  }
}

MonoTime Network::arrival(Link& l, MonoTime now) {
  Duration d = l.base + Duration::nanos(static_cast<std::int64_t>(rng_.uniform(static_cast<std::uint64_t>(l.jitter.ns()) + 1)));
  if (rng_.bernoulli(reorder_)) d += Duration::micros(rng_.uniform_range(0, 50000));
  if (now < l.clog_until) d += l.clog_extra;
  return now + d;
}

LinkFate Network::send(std::uint32_t from, std::uint32_t to, MonoTime now) {
  LinkFate fate;
  Link& l = links_[idx(from, to)];
  if (linked_[idx(from, to)] == 0) {
    fate.drop_reason = "no_link";
    return fate;
  }
  if (cut_[idx(from, to)] != 0) {
    fate.drop_reason = "cut";
    return fate;
  }
  if (rng_.bernoulli(l.loss)) {
    fate.drop_reason = "loss";
    return fate;
  }
  const int copies = rng_.bernoulli(l.dup) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    if (l.in_flight >= kMaxInFlightPerLink) {
      ++queue_drops_;
      if (fate.deliveries.empty()) fate.drop_reason = "queue_full";
      break;
    }
    ++l.in_flight;
    ++in_flight_total_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_total_);
    fate.deliveries.push_back(arrival(l, now));
  }
  return fate;
}

bool Network::deliver(std::uint32_t from, std::uint32_t to) {
  Link& l = links_[idx(from, to)];
  SHOAL_ASSERT(l.in_flight > 0 && in_flight_total_ > 0);
  --l.in_flight;
  --in_flight_total_;
  return cut_[idx(from, to)] == 0;
}

std::string Network::isolate(const std::vector<std::uint32_t>& group) {
  std::fill(cut_.begin(), cut_.end(), std::uint8_t{0});
  std::vector<std::uint8_t> in(n_, 0);
  std::string desc = "isolate peers=";
  for (std::uint32_t p : group) {
    if (p < n_) in[p] = 1;
    desc += std::to_string(p) + ",";
  }
  for (std::uint32_t a = 0; a < n_; ++a) {
    for (std::uint32_t b = 0; b < n_; ++b) {
      if (in[a] != in[b]) cut_[idx(a, b)] = 1;
    }
  }
  return desc;
}

std::string Network::partition(PartitionShape shape) {
  std::fill(cut_.begin(), cut_.end(), std::uint8_t{0});
  std::string desc = shape_name(shape);
  auto cut_both = [this](std::uint32_t a, std::uint32_t b) {
    cut_[idx(a, b)] = 1;
    cut_[idx(b, a)] = 1;
  };
  switch (shape) {
    case PartitionShape::kSplitBrain: {
      std::vector<std::uint32_t> order(n_);
      for (std::uint32_t i = 0; i < n_; ++i) order[i] = i;
      rng_.shuffle(std::span<std::uint32_t>(order));
      const std::uint32_t left = 1 + static_cast<std::uint32_t>(rng_.uniform(std::max<std::uint32_t>(1, n_ - 1)));
      std::vector<std::uint8_t> side(n_, 0);
      for (std::uint32_t i = 0; i < left && i < n_; ++i) side[order[i]] = 1;
      desc += " left=";
      for (std::uint32_t i = 0; i < n_; ++i) {
        if (side[i] != 0) desc += std::to_string(i) + ",";
      }
      for (std::uint32_t a = 0; a < n_; ++a) {
        for (std::uint32_t b = 0; b < n_; ++b) {
          if (side[a] != side[b]) cut_[idx(a, b)] = 1;
        }
      }
      break;
    }
    case PartitionShape::kIsolateOne: {
      const auto p = static_cast<std::uint32_t>(rng_.uniform(n_));
      desc += " peer=" + std::to_string(p);
      for (std::uint32_t b = 0; b < n_; ++b) {
        if (b != p) cut_both(p, b);
      }
      break;
    }
    case PartitionShape::kOneWay:
    case PartitionShape::kSilentOneWay: {
      const auto p = static_cast<std::uint32_t>(rng_.uniform(n_));
      desc += " from=" + std::to_string(p);
      const std::uint8_t mark = shape == PartitionShape::kOneWay ? 1 : 2;
      for (std::uint32_t b = 0; b < n_; ++b) {
        if (b != p) cut_[idx(p, b)] = mark;
      }
      break;
    }
    case PartitionShape::kRingCut: {
      std::vector<std::uint32_t> order(n_);
      for (std::uint32_t i = 0; i < n_; ++i) order[i] = i;
      rng_.shuffle(std::span<std::uint32_t>(order));
      std::vector<std::uint32_t> pos(n_);
      for (std::uint32_t i = 0; i < n_; ++i) pos[order[i]] = i;
      for (std::uint32_t a = 0; a < n_; ++a) {
        for (std::uint32_t b = a + 1; b < n_; ++b) {
          const std::uint32_t d = pos[a] > pos[b] ? pos[a] - pos[b] : pos[b] - pos[a];
          if (d != 1 && d != n_ - 1) cut_both(a, b);
        }
      }
      desc += " ring=";
      for (std::uint32_t i = 0; i < n_; ++i) desc += std::to_string(order[i]) + ",";
      break;
    }
  }
  return desc;
}

void Network::clear_partition() { std::fill(cut_.begin(), cut_.end(), std::uint8_t{0}); }

void Network::clog(std::uint32_t from, std::uint32_t to, Duration extra, MonoTime until) {
  Link& l = links_[idx(from, to)];
  l.clog_extra = extra;
  l.clog_until = until;
}

void Network::heal() {
  clear_partition();
  reorder_ = 0.0;
  for (Link& l : links_) {
    l.loss = 0.0;
    l.dup = 0.0;
    l.clog_until = MonoTime();
  }
}

}  // namespace shoal::sim
