#include "sim/trace.hpp"

#include <cstdio>

namespace shoal::sim {

void Trace::line(MonoTime now, int peer, std::string_view event, std::string_view detail) {
  char buf[512];
  char peer_col[8];
  if (peer == kNoPeer) {
    std::snprintf(peer_col, sizeof peer_col, "  -");
  } else {
    std::snprintf(peer_col, sizeof peer_col, "p%02d", peer);
  }
  const int n = std::snprintf(buf, sizeof buf, "%012lld %s %-14.*s %.*s\n",
                              static_cast<long long>(now.ns() / 1000), peer_col,
                              static_cast<int>(event.size()), event.data(),
                              static_cast<int>(detail.size() > 400 ? 400 : detail.size()),
                              detail.data());
  const std::size_t len = n < 0 ? 0 : (static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1);
  hasher_.update(buf, len);
  ++lines_;
  if (out_ != nullptr) std::fwrite(buf, 1, len, out_);
}

}  // namespace shoal::sim
