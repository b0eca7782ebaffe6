// sim/measure.hpp: the measurements `shoal-sim --report` prints for the sync issue's closing note.
//
// Role: three drivers on top of the same nodes, stores and codec as the seed runner.
//   - measure_convergence(): simulated time from heal to equal states, against the peer count,
//     over faulty seeds (run_seed with a fixed --peers).
//   - measure_delta_path(): two hot peers on a loss-free link; one upsert at a time is delivered;
//     encoded bytes on the wire per delivered change against the record's payload bytes.
//   - measure_repair(): two peers share `records` records, are cut apart, each changes half of
//     `divergence` of the records, then reconnect; encoded bytes until equal digests, split by
//     message kind, against the encoded full state.
// Messages pass through transport::encode/decode as in the simulator; the pair driver delivers
// instantly and in order (no faults), because these are costs, not correctness runs.
// Thread rules: each call runs on the calling thread and shares nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.hpp"

namespace shoal::sim {

struct ConvergencePoint {
  std::uint32_t peers = 0;
  std::uint32_t hops = 0;  // measure_convergence_hops: gateway links on the longest path
  std::uint32_t seeds = 0;
  std::uint32_t converged = 0;
  std::int64_t median_ms = 0;
  std::int64_t p90_ms = 0;
  std::int64_t max_ms = 0;
};
std::vector<ConvergencePoint> measure_convergence(std::uint64_t first_seed, std::uint32_t seeds_per_point,
                                                  const std::vector<std::uint32_t>& peer_counts);
// The same against hop count: chains of `hops + 1` sites with 2 peers each (every change crosses
// up to `hops` gateway links, relayed by each gateway), the seed's faults, repair on or off.
std::vector<ConvergencePoint> measure_convergence_hops(std::uint64_t first_seed, std::uint32_t seeds_per_point,
                                                       const std::vector<std::uint32_t>& hop_counts, bool repair);

struct DeltaPathCost {
  std::uint32_t dimension = 0;
  std::uint64_t changes = 0;
  double payload_bytes = 0;         // per change: encode_payload() size
  double delta_batch_bytes = 0;     // per change: encoded DeltaBatch messages
  double all_sync_bytes = 0;        // per change: every message both ways (acks included)
};
[[nodiscard]] Result<DeltaPathCost> measure_delta_path(std::uint32_t dimension, std::uint32_t changes);

struct RepairCost {
  std::uint64_t records = 0;
  std::uint64_t diverged = 0;            // records changed while apart (both sides together)
  std::uint64_t full_state_bytes = 0;    // crdt::encode_delta of one side's whole state
  std::uint64_t initial_sync_bytes = 0;  // bytes to bring an empty peer up to `records`
  std::uint64_t delta_bytes = 0;         // after reconnecting: DeltaBatch/DeltaAck bytes
  std::uint64_t repair_bytes = 0;        // after reconnecting: digest and bucket messages
  std::uint64_t hello_bytes = 0;
  std::uint64_t total_bytes = 0;
  std::uint64_t repair_sessions = 0;
  bool converged = false;
  double build_seconds = 0;              // real time to build and sync both sides
};
[[nodiscard]] Result<RepairCost> measure_repair(std::uint64_t records, double divergence);

}  // namespace shoal::sim
