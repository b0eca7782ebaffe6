// node/daemon/metrics.cpp: MetricsRegistry over prometheus-cpp's core registry.
#include "node/daemon/metrics.hpp"

#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "node/daemon/status_page.hpp"

namespace shoal::daemon {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// Adds to `counter` what the running total `now` grew by since `last`; a total that went down
// restarted from zero (a new link, a restarted host), so all of it is new.
void advance(Counter& counter, std::uint64_t& last, std::uint64_t now) {
  const std::uint64_t added = now >= last ? now - last : now;
  if (added > 0) counter.Increment(static_cast<double>(added));
  last = now;
}

// A label value as the exposition format requires it: valid UTF-8 (the serializer escapes
// backslashes, quotes and newlines itself).
std::string label(std::string_view value) { return valid_utf8(value); }

// The series of one peer, keyed by (peer, tier): removed together when the peer leaves.
struct PeerSeries {
  Gauge* up = nullptr;
  Gauge* lag_entries = nullptr;
  Gauge* lag_seconds = nullptr;  // null while the snapshot has no lag in seconds
  Gauge* last_contact = nullptr;  // null while never heard from
  Gauge* info = nullptr;
  std::tuple<std::string, std::string, std::string> info_labels;  // replica, remote, role
  Counter* bytes_in = nullptr;
  Counter* bytes_out = nullptr;
  Counter* messages_in = nullptr;
  Counter* messages_out = nullptr;
  std::uint64_t last_bytes_in = 0, last_bytes_out = 0, last_messages_in = 0, last_messages_out = 0;
};

struct CollectionSeries {
  Gauge* records = nullptr;
  Gauge* index_bytes = nullptr;
};

struct FailureSeries {
  Counter* counter = nullptr;
  std::uint64_t last = 0;
};

template <typename T>
void remove_if_set(Family<T>& family, T*& metric) {
  if (metric != nullptr) family.Remove(metric);
  metric = nullptr;
}

}  // namespace

struct MetricsRegistry::Impl {
  prometheus::Registry registry;

  Family<Histogram>& search_seconds = prometheus::BuildHistogram()
      .Name("shoal_search_duration_seconds")
      .Help("Time to answer one k-nearest-neighbour search, from the call to its answer")
      .Register(registry);
  Family<Histogram>& write_seconds = prometheus::BuildHistogram()
      .Name("shoal_write_duration_seconds")
      .Help("Time to acknowledge one write (upsert, batch or delete), durable in the store")
      .Register(registry);
  Histogram& search = search_seconds.Add({}, latency_buckets_seconds());
  Histogram& write = write_seconds.Add({}, latency_buckets_seconds());

  Family<Gauge>& peer_up = prometheus::BuildGauge()
      .Name("shoal_peer_up")
      .Help("1 while the peer has a live, introduced link; 0 while it is partitioned")
      .Register(registry);
  Family<Gauge>& peer_lag_entries = prometheus::BuildGauge()
      .Name("shoal_peer_lag_entries")
      .Help("Entries of our delta buffer the peer has not acknowledged")
      .Register(registry);
  Family<Gauge>& peer_lag_seconds = prometheus::BuildGauge()
      .Name("shoal_peer_lag_seconds")
      .Help("Seconds since the last delta from the peer (absent until one arrived)")
      .Register(registry);
  Family<Gauge>& peer_last_contact = prometheus::BuildGauge()
      .Name("shoal_peer_last_contact_timestamp_seconds")
      .Help("Unix time of the last message from the peer (absent until one arrived)")
      .Register(registry);
  Family<Gauge>& peer_info = prometheus::BuildGauge()
      .Name("shoal_peer_info")
      .Help("Always 1; labels name the peer's replica id, remote address and role")
      .Register(registry);
  Family<Counter>& peer_bytes_in = prometheus::BuildCounter()
      .Name("shoal_peer_received_bytes_total")
      .Help("Socket bytes received from the peer, handshakes included, across its links")
      .Register(registry);
  Family<Counter>& peer_bytes_out = prometheus::BuildCounter()
      .Name("shoal_peer_sent_bytes_total")
      .Help("Socket bytes sent to the peer, handshakes included, across its links")
      .Register(registry);
  Family<Counter>& peer_messages_in = prometheus::BuildCounter()
      .Name("shoal_peer_received_messages_total")
      .Help("Cap'n Proto messages received from the peer, across its links")
      .Register(registry);
  Family<Counter>& peer_messages_out = prometheus::BuildCounter()
      .Name("shoal_peer_sent_messages_total")
      .Help("Cap'n Proto messages sent to the peer, across its links")
      .Register(registry);
  Family<Gauge>& peers = prometheus::BuildGauge()
      .Name("shoal_peers")
      .Help("Peers known to this node, by tier and state (up or partitioned)")
      .Register(registry);

  Family<Counter>& handshake_failures = prometheus::BuildCounter()
      .Name("shoal_handshake_failures_total")
      .Help("Handshakes refused or failed, by reason")
      .Register(registry);
  Family<Gauge>& store_bytes_family = prometheus::BuildGauge()
      .Name("shoal_store_bytes")
      .Help("Size of the data directory's store in bytes")
      .Register(registry);
  Gauge& store_bytes = store_bytes_family.Add({});
  Family<Gauge>& index_bytes = prometheus::BuildGauge()
      .Name("shoal_index_bytes")
      .Help("Memory held by a collection's vector index in bytes")
      .Register(registry);
  Family<Gauge>& index_records = prometheus::BuildGauge()
      .Name("shoal_index_records")
      .Help("Live records in a collection")
      .Register(registry);
  Family<Gauge>& delta_buffer_family = prometheus::BuildGauge()
      .Name("shoal_delta_buffer_entries")
      .Help("Entries in the delta buffer (kept until every peer acknowledged them, bounded)")
      .Register(registry);
  Gauge& delta_buffer = delta_buffer_family.Add({});
  Family<Gauge>& index_backlog_family = prometheus::BuildGauge()
      .Name("shoal_index_backlog")
      .Help("Index operations committed and still queued for the vector index (searches scan them exactly)")
      .Register(registry);
  Gauge& index_backlog = index_backlog_family.Add({});
  Family<Counter>& write_groups_family = prometheus::BuildCounter()
      .Name("shoal_write_groups_total")
      .Help("Group commits: shared store transactions, each with one durable sync")
      .Register(registry);
  Counter& write_groups = write_groups_family.Add({});
  Family<Counter>& group_writes_family = prometheus::BuildCounter()
      .Name("shoal_group_writes_total")
      .Help("Writes (upserts, batches, deletes) carried by group commits")
      .Register(registry);
  Counter& group_writes = group_writes_family.Add({});
  std::uint64_t last_write_groups = 0, last_group_writes = 0;
  Family<Counter>& repair_started_family = prometheus::BuildCounter()
      .Name("shoal_repair_sessions_started_total")
      .Help("Digest repair sessions started with peers")
      .Register(registry);
  Family<Counter>& repair_completed_family = prometheus::BuildCounter()
      .Name("shoal_repair_sessions_completed_total")
      .Help("Digest repair sessions that reconciled every differing bucket")
      .Register(registry);
  Family<Counter>& repair_abandoned_family = prometheus::BuildCounter()
      .Name("shoal_repair_sessions_abandoned_total")
      .Help("Digest repair sessions given up (peer lost, timeout, refused slice)")
      .Register(registry);
  Family<Counter>& discovered_family = prometheus::BuildCounter()
      .Name("shoal_discovered_devices_total")
      .Help("Sightings of devices of our mesh by mDNS discovery (each one dialed)")
      .Register(registry);
  Family<Counter>& warm_bytes_family = prometheus::BuildCounter()
      .Name("shoal_warm_bytes_sent_total")
      .Help("Bytes sent to warm peers (delta entries and repair slices; docs/tiers.md)")
      .Register(registry);
  Family<Counter>& warm_deferrals_family = prometheus::BuildCounter()
      .Name("shoal_warm_budget_deferrals_total")
      .Help("Delta batches or digest comparisons with warm peers deferred to the next budget window")
      .Register(registry);
  Family<Counter>& warm_withheld_family = prometheus::BuildCounter()
      .Name("shoal_warm_entries_withheld_total")
      .Help("Delta entries not sent to warm peers because their collection is not replicated warm")
      .Register(registry);
  Family<Gauge>& sink_backlog_family = prometheus::BuildGauge()
      .Name("shoal_sink_backlog_entries")
      .Help("Delta buffer entries the cold-tier sink has not acknowledged yet (docs/tiers.md)")
      .Register(registry);
  Family<Gauge>& sink_connected_family = prometheus::BuildGauge()
      .Name("shoal_sink_connected")
      .Help("1 while a link to the configured sink is up")
      .Register(registry);
  Family<Counter>& sink_bytes_family = prometheus::BuildCounter()
      .Name("shoal_sink_uploaded_bytes_total")
      .Help("Delta bytes the sink acknowledged durably")
      .Register(registry);
  Family<Counter>& sink_refusals_family = prometheus::BuildCounter()
      .Name("shoal_sink_quota_refusals_total")
      .Help("Local writes refused because the sink backlog reached its quota")
      .Register(registry);
  Family<Gauge>& evicted_family = prometheus::BuildGauge()
      .Name("shoal_evicted_records")
      .Help("Records held as stubs, their payloads evicted to the cold-tier sink (docs/tiers.md, Eviction)")
      .Register(registry);
  Gauge* evicted = nullptr;       // present only when a sink is configured
  Gauge* sink_backlog = nullptr;  // present only when a sink is configured
  Gauge* sink_connected = nullptr;
  Counter* sink_bytes = nullptr;
  Counter* sink_refusals = nullptr;
  std::uint64_t last_sink_bytes = 0, last_sink_refusals = 0;
  Counter& warm_bytes = warm_bytes_family.Add({});
  Counter& warm_deferrals = warm_deferrals_family.Add({});
  Counter& warm_withheld = warm_withheld_family.Add({});
  Counter& repair_started = repair_started_family.Add({});
  Counter& repair_completed = repair_completed_family.Add({});
  Counter& repair_abandoned = repair_abandoned_family.Add({});
  Counter& discovered = discovered_family.Add({});

  // Guards everything below and orders update() with serialize(). Histograms and families have
  // their own locks (prometheus-cpp's), so observe_* never takes it.
  mutable std::mutex mu;
  std::map<std::pair<std::string, std::string>, PeerSeries> peer_series;  // (peer, tier)
  std::map<std::pair<std::string, std::string>, Gauge*> peer_counts;      // (tier, state)
  std::map<std::string, CollectionSeries> collection_series;
  std::map<std::string, FailureSeries> failure_series;
  std::uint64_t last_repair_started = 0, last_repair_completed = 0, last_repair_abandoned = 0;
  std::uint64_t last_discovered = 0;
  std::uint64_t last_warm_bytes = 0, last_warm_deferrals = 0, last_warm_withheld = 0;

  void remove_peer(PeerSeries& s) {
    remove_if_set(peer_up, s.up);
    remove_if_set(peer_lag_entries, s.lag_entries);
    remove_if_set(peer_lag_seconds, s.lag_seconds);
    remove_if_set(peer_last_contact, s.last_contact);
    remove_if_set(peer_info, s.info);
    remove_if_set(peer_bytes_in, s.bytes_in);
    remove_if_set(peer_bytes_out, s.bytes_out);
    remove_if_set(peer_messages_in, s.messages_in);
    remove_if_set(peer_messages_out, s.messages_out);
  }

  void update_peer(PeerSeries& s, const prometheus::Labels& labels, const PeerSnapshot& p) {
    if (s.up == nullptr) {
      s.up = &peer_up.Add(labels);
      s.lag_entries = &peer_lag_entries.Add(labels);
      s.bytes_in = &peer_bytes_in.Add(labels);
      s.bytes_out = &peer_bytes_out.Add(labels);
      s.messages_in = &peer_messages_in.Add(labels);
      s.messages_out = &peer_messages_out.Add(labels);
    }
    s.up->Set(p.up ? 1.0 : 0.0);
    s.lag_entries->Set(static_cast<double>(p.lag_entries));
    if (p.lag_seconds.has_value() && std::isfinite(*p.lag_seconds)) {
      if (s.lag_seconds == nullptr) s.lag_seconds = &peer_lag_seconds.Add(labels);
      s.lag_seconds->Set(*p.lag_seconds);
    } else {
      remove_if_set(peer_lag_seconds, s.lag_seconds);
    }
    if (p.last_contact_unix_ms.has_value()) {
      if (s.last_contact == nullptr) s.last_contact = &peer_last_contact.Add(labels);
      s.last_contact->Set(static_cast<double>(*p.last_contact_unix_ms) / 1000.0);
    } else {
      remove_if_set(peer_last_contact, s.last_contact);
    }
    auto info_labels = std::make_tuple(label(p.replica), label(p.remote), label(p.role));
    if (s.info == nullptr || info_labels != s.info_labels) {
      remove_if_set(peer_info, s.info);
      prometheus::Labels with = labels;
      with["replica"] = std::get<0>(info_labels);
      with["remote"] = std::get<1>(info_labels);
      with["role"] = std::get<2>(info_labels);
      s.info = &peer_info.Add(with);
      s.info->Set(1.0);
      s.info_labels = std::move(info_labels);
    }
    advance(*s.bytes_in, s.last_bytes_in, p.bytes_in);
    advance(*s.bytes_out, s.last_bytes_out, p.bytes_out);
    advance(*s.messages_in, s.last_messages_in, p.messages_in);
    advance(*s.messages_out, s.last_messages_out, p.messages_out);
  }

  void update_peers(const std::vector<PeerSnapshot>& snapshot_peers) {
    std::set<std::pair<std::string, std::string>> seen;
    std::map<std::pair<std::string, std::string>, double> counts;
    for (const char* tier : {"hot", "warm"}) {
      counts[{tier, "up"}] = 0;
      counts[{tier, "partitioned"}] = 0;
    }
    for (const PeerSnapshot& p : snapshot_peers) {
      std::pair<std::string, std::string> key{label(p.device), tier_name(p.tier)};
      // One series per device and tier: a duplicate would overwrite the first one's counters.
      if (!seen.insert(key).second) continue;
      counts[{key.second, p.up ? "up" : "partitioned"}] += 1;
      update_peer(peer_series[key], {{"peer", key.first}, {"tier", key.second}}, p);
    }
    for (auto it = peer_series.begin(); it != peer_series.end();) {
      if (seen.count(it->first) != 0) {
        ++it;
        continue;
      }
      remove_peer(it->second);
      it = peer_series.erase(it);
    }
    for (const auto& [key, n] : counts) {
      Gauge*& g = peer_counts[key];
      if (g == nullptr) g = &peers.Add({{"tier", key.first}, {"state", key.second}});
      g->Set(n);
    }
  }

  void update_collections(const std::vector<CollectionSnapshot>& collections) {
    std::set<std::string> seen;
    for (const CollectionSnapshot& c : collections) {
      std::string name = label(c.name);
      if (!seen.insert(name).second) continue;
      CollectionSeries& s = collection_series[name];
      if (s.records == nullptr) {
        s.records = &index_records.Add({{"collection", name}});
        s.index_bytes = &index_bytes.Add({{"collection", name}});
      }
      s.records->Set(static_cast<double>(c.records));
      s.index_bytes->Set(static_cast<double>(c.index_bytes));
    }
    for (auto it = collection_series.begin(); it != collection_series.end();) {
      if (seen.count(it->first) != 0) {
        ++it;
        continue;
      }
      remove_if_set(index_records, it->second.records);
      remove_if_set(index_bytes, it->second.index_bytes);
      it = collection_series.erase(it);
    }
  }

  void update_failures(const std::map<std::string, std::uint64_t>& failures) {
    std::set<std::string> seen;
    for (const auto& [reason_raw, total] : failures) {
      std::string reason = label(reason_raw);
      if (!seen.insert(reason).second) continue;
      FailureSeries& s = failure_series[reason];
      if (s.counter == nullptr) s.counter = &handshake_failures.Add({{"reason", reason}});
      advance(*s.counter, s.last, total);
    }
    for (auto it = failure_series.begin(); it != failure_series.end();) {
      if (seen.count(it->first) != 0) {
        ++it;
        continue;
      }
      remove_if_set(handshake_failures, it->second.counter);
      it = failure_series.erase(it);
    }
  }
};

const std::vector<double>& MetricsRegistry::latency_buckets_seconds() {
  static const std::vector<double> kBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1.0};
  return kBuckets;
}

MetricsRegistry::MetricsRegistry() : impl_(std::make_unique<Impl>()) {}
MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::observe_search(double seconds) {
  if (std::isfinite(seconds) && seconds >= 0) impl_->search.Observe(seconds);
}

void MetricsRegistry::observe_write(double seconds) {
  if (std::isfinite(seconds) && seconds >= 0) impl_->write.Observe(seconds);
}

void MetricsRegistry::update(const DaemonSnapshot& snapshot) {
  std::lock_guard lock(impl_->mu);
  Impl& m = *impl_;
  m.update_peers(snapshot.peers);
  m.update_collections(snapshot.collections);
  m.update_failures(snapshot.handshake_failures);
  m.store_bytes.Set(static_cast<double>(snapshot.store_bytes));
  m.delta_buffer.Set(static_cast<double>(snapshot.delta_buffer_entries));
  m.index_backlog.Set(static_cast<double>(snapshot.index_backlog));
  advance(m.write_groups, m.last_write_groups, snapshot.write_groups);
  advance(m.group_writes, m.last_group_writes, snapshot.group_writes);
  advance(m.repair_started, m.last_repair_started, snapshot.repair_sessions_started);
  advance(m.repair_completed, m.last_repair_completed, snapshot.repair_sessions_completed);
  advance(m.repair_abandoned, m.last_repair_abandoned, snapshot.repair_sessions_abandoned);
  advance(m.discovered, m.last_discovered, snapshot.discovered_devices);
  advance(m.warm_bytes, m.last_warm_bytes, snapshot.warm_bytes_sent);
  advance(m.warm_deferrals, m.last_warm_deferrals, snapshot.warm_budget_deferrals);
  advance(m.warm_withheld, m.last_warm_withheld, snapshot.warm_entries_withheld);
  if (snapshot.sink) {
    if (m.sink_backlog == nullptr) {
      m.sink_backlog = &m.sink_backlog_family.Add({});
      m.sink_connected = &m.sink_connected_family.Add({});
      m.sink_bytes = &m.sink_bytes_family.Add({});
      m.sink_refusals = &m.sink_refusals_family.Add({});
      m.evicted = &m.evicted_family.Add({});
    }
    m.evicted->Set(static_cast<double>(snapshot.sink->evicted_records));
    m.sink_backlog->Set(static_cast<double>(snapshot.sink->backlog_entries));
    m.sink_connected->Set(snapshot.sink->connected ? 1.0 : 0.0);
    advance(*m.sink_bytes, m.last_sink_bytes, snapshot.sink->bytes);
    advance(*m.sink_refusals, m.last_sink_refusals, snapshot.sink->quota_refusals);
  }
}

std::string MetricsRegistry::serialize() const {
  std::lock_guard lock(impl_->mu);
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

}  // namespace shoal::daemon
