// node/daemon/status_page.cpp: the status page, its SVG picture of the mesh, and /status.json.
#include "node/daemon/status_page.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <numbers>
#include <string>
#include <vector>

namespace shoal::daemon {

const char* tier_name(PeerTier tier) noexcept { return tier == PeerTier::kWarm ? "warm" : "hot"; }

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The picture's geometry (SVG user units) and how much of it is drawn.
constexpr double kWidth = 960, kHeight = 640;
constexpr double kCenterX = kWidth / 2, kCenterY = kHeight / 2;
constexpr double kHotRing = 150, kWarmRing = 250;
constexpr double kSelfRadius = 36, kPeerRadius = 14;
// Peers beyond this many are listed in the table only (the picture would be unreadable).
constexpr std::size_t kMaxDrawnPeers = 64;
// Labels in the picture are cut to this many characters (the table and the tooltip hold all).
constexpr std::size_t kMaxLabelChars = 24;
constexpr const char* kHotColour = "#e8590c";
constexpr const char* kWarmColour = "#1c7ed6";
constexpr const char* kPartitionedColour = "#868e96";

// Length of the UTF-8 sequence starting at text[i], or 0 when it is not a valid one (overlong
// forms, surrogates and values above U+10FFFF included).
std::size_t utf8_sequence(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07u;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3Fu);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

// valid_utf8(text) cut to `max_chars` code points, with "…" when something was cut.
std::string truncated(std::string_view text, std::size_t max_chars) {
  std::string clean = valid_utf8(text);
  std::size_t chars = 0;
  for (std::size_t i = 0; i < clean.size(); i += utf8_sequence(clean, i)) {
    if (chars++ == max_chars) return clean.substr(0, i) + "\xE2\x80\xA6";
  }
  return clean;
}

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string human_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  return unit == 0 ? std::to_string(bytes) + " B" : fixed(v, 1) + " " + kUnits[unit];
}

std::string human_seconds(double s) {
  if (!std::isfinite(s)) return "?";
  if (s < 0) s = 0;
  if (s < 10) return fixed(s, 1) + " s";
  if (s < 120) return fixed(s, 0) + " s";
  if (s < 7200) return fixed(s / 60, 0) + " min";
  if (s < 172800) return fixed(s / 3600, 0) + " h";
  return fixed(s / 86400, 0) + " d";
}

std::string last_contact_text(const DaemonSnapshot& snap, const PeerSnapshot& p) {
  if (!p.last_contact_unix_ms) return "never";
  return human_seconds(static_cast<double>(snap.taken_unix_ms - *p.last_contact_unix_ms) / 1000.0) + " ago";
}

std::string lag_seconds_text(const PeerSnapshot& p) {
  return p.lag_seconds ? human_seconds(*p.lag_seconds) : std::string("none yet");
}

std::string utc_time(std::int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

constexpr const char* kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#212529;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.sub{color:#495057;margin:0 0 16px}
table{border-collapse:collapse;margin:0 0 8px}
th,td{border:1px solid #dee2e6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.up{color:#2b8a3e;font-weight:600}.part{color:#c92a2a;font-weight:600}
.hot{color:#e8590c}.warm{color:#1c7ed6}
code{font:12px ui-monospace,monospace;word-break:break-all}
svg{max-width:960px;width:100%;height:auto;border:1px solid #dee2e6;background:#fcfcfd}
)";

void add_heading(std::string& out, const DaemonSnapshot& snap) {
  std::size_t up = 0;
  for (const PeerSnapshot& p : snap.peers) up += p.up ? 1 : 0;
  out += "<h1>Shoal node <code>" + html_escape(snap.device) + "</code></h1>\n";
  out += "<p class=\"sub\">replica <code>" + html_escape(snap.replica) + "</code> &middot; snapshot " +
         utc_time(snap.taken_unix_ms) + " &middot; " + std::to_string(up) + " of " +
         std::to_string(snap.peers.size()) + " peers up</p>\n";
}

void add_summary(std::string& out, const DaemonSnapshot& snap) {
  out += "<h2>Node</h2>\n<table id=\"summary\"><tr><th>store</th><td class=\"n\">" + human_bytes(snap.store_bytes) +
         "</td></tr><tr><th>delta buffer</th><td class=\"n\">" + std::to_string(snap.delta_buffer_entries) +
         " entries</td></tr><tr><th>repair sessions</th><td class=\"n\">" +
         std::to_string(snap.repair_sessions_started) + " started, " +
         std::to_string(snap.repair_sessions_completed) + " completed, " +
         std::to_string(snap.repair_sessions_abandoned) + " abandoned</td></tr><tr><th>discovered devices</th>"
         "<td class=\"n\">" + std::to_string(snap.discovered_devices) + "</td></tr></table>\n";
}

// One peer's place in the picture.
struct Placed {
  const PeerSnapshot* peer;
  double x, y, cos, sin;
};

std::vector<Placed> place_peers(const DaemonSnapshot& snap) {
  std::vector<const PeerSnapshot*> rings[2];
  std::size_t drawn = 0;
  for (const PeerSnapshot& p : snap.peers) {
    if (drawn++ == kMaxDrawnPeers) break;
    rings[p.tier == PeerTier::kWarm ? 1 : 0].push_back(&p);
  }
  const double hot_step = rings[0].empty() ? 0 : 2 * std::numbers::pi / static_cast<double>(rings[0].size());
  const double warm_step = rings[1].empty() ? 0 : 2 * std::numbers::pi / static_cast<double>(rings[1].size());
  const auto hot_angle = [&](std::size_t i) { return -std::numbers::pi / 2 + hot_step * static_cast<double>(i); };
  // The warm ring is turned so that its spokes keep as far as possible from the hot ones (a warm
  // link drawn through a hot node would hide it): the best of 36 turns within one warm step.
  double turn = 0;
  if (!rings[1].empty() && !rings[0].empty()) {
    double best = -1;
    for (int k = 0; k < 36; ++k) {
      const double t = warm_step * k / 36.0;
      double nearest = 2 * std::numbers::pi;
      for (std::size_t w = 0; w < rings[1].size(); ++w) {
        for (std::size_t h = 0; h < rings[0].size(); ++h) {
          double d = std::fabs(std::remainder(hot_angle(0) + t + warm_step * static_cast<double>(w) - hot_angle(h),
                                              2 * std::numbers::pi));
          nearest = std::min(nearest, d);
        }
      }
      if (nearest > best + 1e-9) {
        best = nearest;
        turn = t;
      }
    }
  }
  std::vector<Placed> placed;
  for (int ring = 0; ring < 2; ++ring) {
    const double radius = ring == 0 ? kHotRing : kWarmRing;
    for (std::size_t i = 0; i < rings[ring].size(); ++i) {
      // Hot peers start at the top.
      const double angle = ring == 0 ? hot_angle(i) : -std::numbers::pi / 2 + turn + warm_step * static_cast<double>(i);
      const double c = std::cos(angle), s = std::sin(angle);
      placed.push_back({rings[ring][i], kCenterX + radius * c, kCenterY + radius * s, c, s});
    }
  }
  return placed;
}

void add_svg(std::string& out, const DaemonSnapshot& snap) {
  const std::vector<Placed> placed = place_peers(snap);
  out += "<svg id=\"mesh\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + fixed(kWidth, 0) + " " +
         fixed(kHeight, 0) + "\" role=\"img\" aria-label=\"mesh of this node and its peers\">\n";
  out += "<title>The mesh seen from this node</title>\n";
  // The rings, faintly, so that a lone peer still shows its tier by distance.
  for (double r : {kHotRing, kWarmRing}) {
    out += "<circle cx=\"" + fixed(kCenterX, 0) + "\" cy=\"" + fixed(kCenterY, 0) + "\" r=\"" + fixed(r, 0) +
           "\" fill=\"none\" stroke=\"#e9ecef\" stroke-width=\"1\"/>\n";
  }
  // Links first, so that the nodes are drawn over them.
  for (const Placed& pl : placed) {
    const PeerSnapshot& p = *pl.peer;
    const char* colour = p.up ? (p.tier == PeerTier::kWarm ? kWarmColour : kHotColour) : kPartitionedColour;
    out += "<line class=\"link " + std::string(p.up ? "up" : "partitioned") + "\" x1=\"" + fixed(kCenterX, 1) +
           "\" y1=\"" + fixed(kCenterY, 1) + "\" x2=\"" + fixed(pl.x, 1) + "\" y2=\"" + fixed(pl.y, 1) +
           "\" stroke=\"" + colour + "\" stroke-width=\"" + (p.up ? "3" : "2") + "\"" +
           (p.up ? "" : " stroke-dasharray=\"8 6\"") + "/>\n";
  }
  out += "<circle cx=\"" + fixed(kCenterX, 0) + "\" cy=\"" + fixed(kCenterY, 0) + "\" r=\"" +
         fixed(kSelfRadius, 0) + "\" fill=\"#212529\"/>\n";
  out += "<text x=\"" + fixed(kCenterX, 0) + "\" y=\"" + fixed(kCenterY + 5, 0) +
         "\" text-anchor=\"middle\" font-size=\"13\" fill=\"#fff\">this node</text>\n";
  out += "<text x=\"" + fixed(kCenterX, 0) + "\" y=\"" + fixed(kCenterY + kSelfRadius + 18, 0) +
         "\" text-anchor=\"middle\" font-size=\"12\" fill=\"#212529\">" + html_escape(truncated(snap.device, kMaxLabelChars)) +
         "</text>\n";
  for (const Placed& pl : placed) {
    const PeerSnapshot& p = *pl.peer;
    const char* colour = p.tier == PeerTier::kWarm ? kWarmColour : kHotColour;
    const std::string lag = "lag " + std::to_string(p.lag_entries) + " \xC2\xB7 " + lag_seconds_text(p);
    const std::string seen = "seen " + last_contact_text(snap, p);
    out += "<g class=\"peer " + std::string(tier_name(p.tier)) + (p.up ? " up" : " partitioned") + "\">\n";
    out += "<title>" + html_escape(p.device) + " (" + tier_name(p.tier) + ", " + (p.up ? "up" : "partitioned") +
           "; " + html_escape(lag) + "; " + html_escape(seen) + ")</title>\n";
    // Up: filled in the tier's colour; partitioned: hollow, the tier's colour as the outline.
    out += "<circle cx=\"" + fixed(pl.x, 1) + "\" cy=\"" + fixed(pl.y, 1) + "\" r=\"" + fixed(kPeerRadius, 0) +
           "\" fill=\"" + (p.up ? colour : "#ffffff") + "\" stroke=\"" + colour + "\" stroke-width=\"3\"" +
           (p.up ? "" : " stroke-dasharray=\"4 3\"") + "/>\n";
    // The label sits outside the node, away from the centre; above it in the upper half.
    const char* anchor = pl.cos > 0.3 ? "start" : (pl.cos < -0.3 ? "end" : "middle");
    const double lx = pl.x + pl.cos * (kPeerRadius + 6);
    double ly = pl.y + pl.sin * (kPeerRadius + 6) + 4;
    if (pl.sin < -0.3) ly -= 30;
    else if (std::fabs(pl.cos) <= 0.3) ly += 10;
    out += "<text x=\"" + fixed(lx, 1) + "\" y=\"" + fixed(ly, 1) + "\" text-anchor=\"" + anchor +
           "\" font-size=\"12\" fill=\"#212529\"><tspan font-weight=\"600\">" +
           html_escape(truncated(p.device, kMaxLabelChars)) + "</tspan><tspan x=\"" + fixed(lx, 1) +
           "\" dy=\"14\" fill=\"#495057\">" + html_escape(lag) + "</tspan><tspan x=\"" + fixed(lx, 1) +
           "\" dy=\"14\" fill=\"" + (p.up ? "#495057" : "#c92a2a") + "\">" + html_escape(seen) +
           (p.up ? "" : " \xC2\xB7 partitioned") + "</tspan></text>\n</g>\n";
  }
  // The legend.
  out += "<g font-size=\"12\" fill=\"#212529\">"
         "<circle cx=\"24\" cy=\"24\" r=\"7\" fill=\"" + std::string(kHotColour) + "\"/><text x=\"38\" y=\"28\">hot (inner ring)</text>"
         "<circle cx=\"24\" cy=\"46\" r=\"7\" fill=\"" + std::string(kWarmColour) + "\"/><text x=\"38\" y=\"50\">warm (outer ring)</text>"
         "<line x1=\"16\" y1=\"68\" x2=\"34\" y2=\"68\" stroke=\"#495057\" stroke-width=\"3\"/><text x=\"38\" y=\"72\">up</text>"
         "<line x1=\"16\" y1=\"90\" x2=\"34\" y2=\"90\" stroke=\"" + std::string(kPartitionedColour) +
         "\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/><text x=\"38\" y=\"94\">partitioned (hollow node)</text></g>\n";
  if (snap.peers.size() > placed.size()) {
    out += "<text x=\"" + fixed(kWidth - 16, 0) + "\" y=\"" + fixed(kHeight - 16, 0) +
           "\" text-anchor=\"end\" font-size=\"12\" fill=\"#495057\">+" +
           std::to_string(snap.peers.size() - placed.size()) + " more peers in the table</text>\n";
  }
  out += "</svg>\n";
}

void add_peer_table(std::string& out, const DaemonSnapshot& snap) {
  out += "<h2>Peers</h2>\n<table id=\"peers\"><thead><tr><th>peer</th><th>tier</th><th>state</th>"
         "<th>lag (entries)</th><th>lag (time)</th><th>last contact</th><th>bytes in / out</th>"
         "<th>messages in / out</th><th>replica</th><th>remote</th><th>role</th></tr></thead><tbody>\n";
  if (snap.peers.empty()) out += "<tr><td colspan=\"11\">no peers</td></tr>\n";
  for (const PeerSnapshot& p : snap.peers) {
    out += "<tr><td><code>" + html_escape(p.device) + "</code></td><td class=\"" + tier_name(p.tier) + "\">" +
           tier_name(p.tier) + "</td><td class=\"" + (p.up ? "up\">up" : "part\">partitioned") +
           "</td><td class=\"n\">" + std::to_string(p.lag_entries) + "</td><td class=\"n\">" +
           html_escape(lag_seconds_text(p)) + "</td><td class=\"n\">" + html_escape(last_contact_text(snap, p)) +
           "</td><td class=\"n\">" + human_bytes(p.bytes_in) + " / " + human_bytes(p.bytes_out) +
           "</td><td class=\"n\">" + std::to_string(p.messages_in) + " / " + std::to_string(p.messages_out) +
           "</td><td><code>" + html_escape(p.replica) + "</code></td><td><code>" + html_escape(p.remote) +
           "</code></td><td>" + html_escape(p.role) + "</td></tr>\n";
  }
  out += "</tbody></table>\n";
}

void add_other_tables(std::string& out, const DaemonSnapshot& snap) {
  out += "<h2>Collections</h2>\n<table id=\"collections\"><thead><tr><th>collection</th><th>records</th>"
         "<th>index</th></tr></thead><tbody>\n";
  if (snap.collections.empty()) out += "<tr><td colspan=\"3\">no collections</td></tr>\n";
  for (const CollectionSnapshot& c : snap.collections) {
    out += "<tr><td>" + html_escape(c.name) + "</td><td class=\"n\">" + std::to_string(c.records) +
           "</td><td class=\"n\">" + human_bytes(c.index_bytes) + "</td></tr>\n";
  }
  out += "</tbody></table>\n<h2>Handshake failures</h2>\n<table id=\"handshake-failures\"><thead><tr>"
         "<th>reason</th><th>count</th></tr></thead><tbody>\n";
  if (snap.handshake_failures.empty()) out += "<tr><td colspan=\"2\">none</td></tr>\n";
  for (const auto& [reason, n] : snap.handshake_failures) {
    out += "<tr><td>" + html_escape(reason) + "</td><td class=\"n\">" + std::to_string(n) + "</td></tr>\n";
  }
  out += "</tbody></table>\n";
}

// JSON string literal of valid_utf8(text).
std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char ch : valid_utf8(text)) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"') out += "\\\"";
    else if (ch == '\\') out += "\\\\";
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_sequence(text, i);
    const auto c = static_cast<unsigned char>(text[i]);
    if (n == 0 || (n == 1 && ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F))) {
      out += kReplacement;
      i += 1;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string html_escape(std::string_view text) {
  std::string out;
  for (char c : valid_utf8(text)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_status_page(const DaemonSnapshot& snapshot) {
  std::string out;
  out.reserve(16384 + snapshot.peers.size() * 1024);
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<meta http-equiv=\"refresh\" content=\"10\">"
         "<title>Shoal " + html_escape(truncated(snapshot.device, kMaxLabelChars)) + "</title><style>";
  out += kStyle;
  out += "</style></head><body>\n";
  add_heading(out, snapshot);
  add_svg(out, snapshot);
  add_peer_table(out, snapshot);
  add_summary(out, snapshot);
  add_other_tables(out, snapshot);
  out += "<p class=\"sub\">Metrics for Prometheus: <a href=\"/metrics\">/metrics</a> &middot; this page as JSON: "
         "<a href=\"/status.json\">/status.json</a></p>\n</body></html>\n";
  return out;
}

std::string render_status_json(const DaemonSnapshot& s) {
  std::string out = "{\"device\":" + json_string(s.device) + ",\"replica\":" + json_string(s.replica) +
                    ",\"taken_unix_ms\":" + std::to_string(s.taken_unix_ms) + ",\"peers\":[";
  for (std::size_t i = 0; i < s.peers.size(); ++i) {
    const PeerSnapshot& p = s.peers[i];
    out += (i ? "," : "") + std::string("{\"device\":") + json_string(p.device) +
           ",\"replica\":" + json_string(p.replica) + ",\"remote\":" + json_string(p.remote) +
           ",\"role\":" + json_string(p.role) + ",\"tier\":\"" + tier_name(p.tier) +
           "\",\"up\":" + (p.up ? "true" : "false") + ",\"partitioned\":" + (p.partitioned() ? "true" : "false") +
           ",\"lag_entries\":" + std::to_string(p.lag_entries) +
           ",\"lag_seconds\":" + (p.lag_seconds ? json_number(*p.lag_seconds) : "null") +
           ",\"bytes_in\":" + std::to_string(p.bytes_in) + ",\"bytes_out\":" + std::to_string(p.bytes_out) +
           ",\"messages_in\":" + std::to_string(p.messages_in) +
           ",\"messages_out\":" + std::to_string(p.messages_out) + ",\"last_contact_unix_ms\":" +
           (p.last_contact_unix_ms ? std::to_string(*p.last_contact_unix_ms) : "null") + "}";
  }
  out += "],\"handshake_failures\":{";
  bool first = true;
  for (const auto& [reason, n] : s.handshake_failures) {
    out += (first ? "" : ",") + json_string(reason) + ":" + std::to_string(n);
    first = false;
  }
  out += "},\"store_bytes\":" + std::to_string(s.store_bytes) + ",\"collections\":[";
  for (std::size_t i = 0; i < s.collections.size(); ++i) {
    const CollectionSnapshot& c = s.collections[i];
    out += (i ? "," : "") + std::string("{\"name\":") + json_string(c.name) +
           ",\"records\":" + std::to_string(c.records) + ",\"index_bytes\":" + std::to_string(c.index_bytes) + "}";
  }
  out += "],\"delta_buffer_entries\":" + std::to_string(s.delta_buffer_entries) +
         ",\"repair_sessions_started\":" + std::to_string(s.repair_sessions_started) +
         ",\"repair_sessions_completed\":" + std::to_string(s.repair_sessions_completed) +
         ",\"repair_sessions_abandoned\":" + std::to_string(s.repair_sessions_abandoned) +
         ",\"discovered_devices\":" + std::to_string(s.discovered_devices);
  if (s.sink) {
    const auto& k = *s.sink;
    out += ",\"sink\":{\"address\":" + json_string(k.address) + ",\"connected\":" + (k.connected ? "true" : "false") +
           ",\"uploaded_through\":" + std::to_string(k.uploaded_through) +
           ",\"backlog_entries\":" + std::to_string(k.backlog_entries) +
           ",\"quota_entries\":" + std::to_string(k.quota_entries) +
           ",\"full_state_pending\":" + (k.full_state_pending ? "true" : "false") +
           ",\"uploads\":" + std::to_string(k.uploads) + ",\"upload_failures\":" + std::to_string(k.upload_failures) +
           ",\"bytes\":" + std::to_string(k.bytes) + ",\"quota_refusals\":" + std::to_string(k.quota_refusals) +
           ",\"payload_budget_bytes\":" + std::to_string(k.payload_budget_bytes) +
           ",\"payload_held_bytes\":" + std::to_string(k.payload_held_bytes) +
           ",\"memory_budget_bytes\":" + std::to_string(k.memory_budget_bytes) +
           ",\"index_held_bytes\":" + std::to_string(k.index_held_bytes) +
           ",\"evicted_records\":" + std::to_string(k.evicted_records) +
           ",\"evicted_bytes\":" + std::to_string(k.evicted_bytes) +
           ",\"last_ack_unix_ms\":" + (k.last_ack_unix_ms ? std::to_string(*k.last_ack_unix_ms) : "null") +
           ",\"last_error\":" + json_string(k.last_error) + "}";
  }
  out += "}";
  return out;
}

}  // namespace shoal::daemon
