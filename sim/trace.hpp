// sim/trace.hpp: the simulator's event trace, one fixed-column line per event, hashed.
//
// Role: determinism evidence. Every event the simulator processes becomes one line
//   "<time_us, 12 digits> <peer, 3 columns> <event, 14 columns> <detail>"
// and every line is fed to an XXH3-64 stream. Two runs of one seed must give the same hash;
// CI runs seeds twice and compares. With an output stream set, lines are also printed.
// Thread rules: one Trace belongs to one simulation (one thread).
// Ownership: the output FILE (nullable) is the caller's and must outlive the Trace.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string_view>

#include "common/hash.hpp"
#include "common/time.hpp"

namespace shoal::sim {

// Peer column value for events that belong to no peer (heal, convergence checks).
inline constexpr int kNoPeer = -1;

class Trace {
 public:
  explicit Trace(std::FILE* out_nullable = nullptr) noexcept : out_(out_nullable) {}
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;

  // Appends one line (hashed; printed when an output is set). Details longer than the line
  // buffer are truncated, identically on every run.
  void line(MonoTime now, int peer, std::string_view event, std::string_view detail);
  std::uint64_t hash() const noexcept { return hasher_.digest(); }
  std::uint64_t lines() const noexcept { return lines_; }

 private:
  std::FILE* out_;  // nullable, not owned
  Hasher64 hasher_;
  std::uint64_t lines_ = 0;
};

}  // namespace shoal::sim
