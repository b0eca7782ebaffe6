// node/daemon/metrics.hpp: the daemon's Prometheus metrics (served as /metrics by
// http_server.hpp).
//
// Role: a registry of prometheus-cpp's core library (counters, gauges, histograms and its text
// serializer; not its HTTP exposer: the daemon serves the text itself on its own loop). Two kinds
// of input: latencies observed as they happen by whoever runs a search or a write, and a
// DaemonSnapshot (status.hpp) that the daemon hands over about once a second, from which every
// other metric is set. docs/operations.md ("Metrics and status page") lists every metric.
//
// Counters fed from a snapshot: the snapshot carries totals (a link's bytes, the sync engine's
// repair sessions); the registry adds the difference since the previous snapshot, and a total
// that went down (a peer's new link, a restarted host) is taken as a reset, so the new total is
// added whole. A per-peer series therefore counts across reconnections, less what a link
// carried between its last snapshot and its close.
//
// Series lifetime: a peer's series exist while the peer is in the snapshot; a peer that leaves it
// (or changes tier) has its series removed, so devices coming and going do not grow the output
// without bound. The same holds for collections and handshake-failure reasons.
//
// Thread rules: observe_search() and observe_write() from any thread at any time; update() and
// serialize() from any thread, serialized by an internal mutex (the daemon calls both on its
// loop). No prometheus-cpp type appears in this header.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "node/daemon/status.hpp"

namespace shoal::daemon {

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The histogram buckets of both latency histograms, in seconds (50 µs to 1 s).
  static const std::vector<double>& latency_buckets_seconds();

  // One search / one write (upsert, batch or delete) took `seconds`, measured by the caller
  // around the whole call. Negative or non-finite values are ignored.
  void observe_search(double seconds);
  void observe_write(double seconds);

  // Sets every snapshot-fed metric from `snapshot` (see the file comment for counters and series
  // lifetime). Copies what it needs; `snapshot` is needed only during the call.
  void update(const DaemonSnapshot& snapshot);

  // The whole registry in the Prometheus text exposition format 0.0.4 (serve it with
  // `Content-Type: text/plain; version=0.0.4`): `# HELP` and `# TYPE` before each family.
  std::string serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::daemon
