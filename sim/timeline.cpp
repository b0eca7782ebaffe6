#include "sim/timeline.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

namespace shoal::sim {

namespace {

std::string fmt_s(Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%9.3f s", static_cast<double>(d.ns()) / 1e9);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

}  // namespace

std::string timeline_text(const SeedResult& r) {
  std::string out;
  std::map<int, std::uint64_t> writes;
  for (const TimelineEvent& e : r.timeline) {
    if (e.kind == "write") {
      ++writes[e.peer];  // summarized below: one line per write would drown the faults
      continue;
    }
    char peer[8];
    std::snprintf(peer, sizeof peer, e.peer < 0 ? "mesh" : "p%02d", e.peer);
    out += fmt_s(e.at) + "  " + peer + "  " + e.kind + (e.detail.empty() ? "" : "  " + e.detail) + "\n";
  }
  for (const auto& [p, n] : writes) {
    char line[64];
    std::snprintf(line, sizeof line, "writes acknowledged by p%02d: %llu\n", p, static_cast<unsigned long long>(n));
    out += line;
  }
  char end[160];
  std::snprintf(end, sizeof end, "result: converged=%s converge_ms=%lld violations=%zu\n", r.converged ? "yes" : "no",
                static_cast<long long>(r.converge_ms), r.violations.size());
  out += end;
  for (const Violation& v : r.violations) out += "violation " + v.kind + ": " + v.detail + "\n";
  return out;
}

std::string timeline_svg(const SeedResult& r, const std::string& title) {
  const int lanes = static_cast<int>(r.peers);
  const double left = 60, right = 20, top = 40, lane_h = 28, width = 960;
  const double height = top + lane_h * lanes + 50;
  std::int64_t end_ns = 1;
  for (const TimelineEvent& e : r.timeline) end_ns = std::max(end_ns, e.at.ns());
  end_ns = end_ns + end_ns / 20 + 1;
  auto x = [&](std::int64_t ns) { return left + (width - left - right) * static_cast<double>(ns) / static_cast<double>(end_ns); };
  auto y = [&](int lane) { return top + lane_h * lane; };
  std::string s;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
                width, height);
  s += buf;
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  std::snprintf(buf, sizeof buf, "<text x=\"%.0f\" y=\"20\" font-size=\"14\">", left);
  s += buf + escape(title) + (r.converged ? " (converged)" : " (NOT converged)") + "</text>\n";
  for (int p = 0; p < lanes; ++p) {
    std::snprintf(buf, sizeof buf,
                  "<text x=\"8\" y=\"%.1f\">p%02d</text><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ccc\"/>\n",
                  y(p) + lane_h / 2 + 4, p, left, y(p) + lane_h / 2, width - right, y(p) + lane_h / 2);
    s += buf;
  }
  // Bars: a cut (grey) or a crash (red) from its start to its end (uncut, restart, or heal).
  std::map<int, std::pair<std::int64_t, std::string>> open_bar;
  auto close_bar = [&](int p, std::int64_t at) {
    auto it = open_bar.find(p);
    if (it == open_bar.end()) return;
    const std::string& why = it->second.second;
    const bool crash = why == "crash";
    // Down after a restore or a clone: purple, the peer comes back on a copy of a store.
    const bool copied = why == "restore" || why == "clone";
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" opacity=\"0.6\"><title>%s</title></rect>\n",
                  x(it->second.first), y(p) + 4, std::max(1.0, x(at) - x(it->second.first)), lane_h - 8,
                  crash ? "#d33" : copied ? "#93c" : "#888",
                  crash ? "down" : copied ? "down, then started on a copy of a store" : "cut off");
    s += buf;
    open_bar.erase(it);
  };
  for (const TimelineEvent& e : r.timeline) {
    const std::int64_t at = e.at.ns();
    if (e.kind == "cut" || e.kind == "crash" || e.kind == "restore" || e.kind == "clone") {
      close_bar(e.peer, at);
      open_bar[e.peer] = {at, e.kind};
    } else if (e.kind == "copy" && e.peer >= 0) {
      // The moment a store was copied (a backup or a golden image).
      std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#93c\"><title>%s</title></circle>\n", x(at),
                    y(e.peer) + lane_h / 2, escape("copy: " + e.detail).c_str());
      s += buf;
    } else if (e.kind == "restart") {
      close_bar(e.peer, at);
    } else if (e.kind == "uncut") {
      std::vector<int> cut;
      for (const auto& [p, b] : open_bar) {
        if (b.second == "cut") cut.push_back(p);
      }
      for (int p : cut) close_bar(p, at);
    } else if (e.kind == "heal" || e.kind == "converged") {
      std::vector<int> all;
      for (const auto& [p, b] : open_bar) all.push_back(p);
      for (int p : all) close_bar(p, at);
      const bool heal = e.kind == "heal";
      std::snprintf(buf, sizeof buf,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s</text>\n",
                    x(at), top - 6, x(at), y(lanes), heal ? "#36c" : "#2a2", x(at) + 3, y(lanes) + (heal ? 16 : 32),
                    heal ? "#36c" : "#2a2", heal ? "heal" : escape("converged " + e.detail).c_str());
      s += buf;
    } else if (e.kind == "write" && e.peer >= 0) {
      std::snprintf(buf, sizeof buf, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x(at),
                    y(e.peer) + lane_h / 2 - 4, x(at), y(e.peer) + lane_h / 2 + 4);
      s += buf;
    }
  }
  std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.1f\">0 s</text><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f s</text>\n",
                left, height - 8, width - right, height - 8, static_cast<double>(end_ns) / 1e9);
  s += buf;
  s += "</svg>\n";
  return s;
}

}  // namespace shoal::sim
