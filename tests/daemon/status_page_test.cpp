// tests/daemon/status_page_test.cpp: proves that the status page (node/daemon/status_page.hpp)
// cannot be turned into markup by what peers send, and that its picture and table show what the
// snapshot says. How: peers with hostile labels, addresses, roles and collection names (tags,
// attribute breakouts, entities, invalid UTF-8, control characters) are rendered, and every tag in
// the page must come from the fixed set the renderer writes, with exactly one <svg>; the escaped
// text must be there. The fixture's three peers are checked for ring, colour, line style, lag and
// last-contact labels, and /status.json for its fields and escaping (parsed with nlohmann/json).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <regex>
#include <set>
#include <string>

#include "node/daemon/status_page.hpp"
#include "snapshot_fixture.hpp"

using namespace shoal;
using daemon::DaemonSnapshot;
using daemon::html_escape;
using daemon::render_status_json;
using daemon::render_status_page;

namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Every tag name in `html` (opening and closing), lowercased.
std::set<std::string> tags(const std::string& html) {
  static const std::regex kTag(R"(<\s*/?\s*([!a-zA-Z][a-zA-Z0-9-]*))");
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), kTag); it != std::sregex_iterator(); ++it) {
    std::string t = (*it)[1];
    for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.insert(t);
  }
  return out;
}

const std::set<std::string> kRendererTags = {"!doctype", "html", "head", "meta", "title", "style", "body",
                                             "h1",       "h2",   "p",    "code", "table", "thead", "tbody",
                                             "tr",       "th",   "td",   "a",    "svg",   "circle", "line",
                                             "text",     "tspan", "g"};

}  // namespace

TEST_CASE("hostile peer names, addresses, roles and collection names cannot add markup to the status page",
          "[daemon][status]") {
  DaemonSnapshot s = daemon_test::three_peer_snapshot();
  s.device = "<script>alert('self')</script>";
  s.peers[0].device = "<script>alert(1)</script>";
  s.peers[1].device = "\"><img src=x onerror=alert(2)>";
  s.peers[2].device = "</text></svg><iframe src=//evil>";
  s.peers[0].remote = "' onmouseover='alert(3)";
  s.peers[1].role = "</td><object data=x>";
  s.peers[2].replica = "&lt;b&gt; already escaped";
  s.collections[0].name = "<style>*{display:none}</style>";
  s.handshake_failures["<link rel=stylesheet href=//evil>"] = 1;
  const std::string page = render_status_page(s);

  const std::set<std::string> found = tags(page);
  for (const std::string& t : found) {
    INFO("tag <" << t << "> in the page");
    CHECK(kRendererTags.count(t) == 1);
  }
  CHECK(count(page, "<svg") == 1);
  CHECK(count(page, "</svg>") == 1);
  CHECK(count(page, "<style>") == 1);
  // The text is there, escaped, in the table and in the picture.
  CHECK(count(page, "&lt;script&gt;alert(1)&lt;/script&gt;") >= 2);
  CHECK(page.find("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;") != std::string::npos);
  CHECK(page.find("&#39; onmouseover=&#39;alert(3)") != std::string::npos);
  CHECK(page.find("&amp;lt;b&amp;gt; already escaped") != std::string::npos);
  CHECK(page.find("onerror=alert(2)>") == std::string::npos);
}

TEST_CASE("escaping replaces invalid UTF-8 and control characters", "[daemon][status]") {
  CHECK(html_escape("a<b>&\"'") == "a&lt;b&gt;&amp;&quot;&#39;");
  CHECK(html_escape("caf\xC3\xA9") == "caf\xC3\xA9");                      // valid UTF-8 kept
  CHECK(html_escape("x\xFFy") == "x\xEF\xBF\xBDy");                          // a stray byte
  CHECK(html_escape("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");              // an overlong '/'
  CHECK(html_escape("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  CHECK(html_escape("\xE2\x82") == "\xEF\xBF\xBD\xEF\xBF\xBD");              // cut short
  CHECK(html_escape(std::string("a\0b\x1b[31m", 8)) == "a\xEF\xBF\xBD" "b\xEF\xBF\xBD[31m");
  CHECK(daemon::valid_utf8("tab\tand\nnewline") == "tab\tand\nnewline");
}

TEST_CASE("the picture puts hot peers on the inner ring and warm ones outside, partitioned ones dashed, "
          "with lag and last contact",
          "[daemon][status]") {
  const std::string page = render_status_page(daemon_test::three_peer_snapshot());
  CHECK(count(page, "<g class=\"peer hot up\">") == 1);
  CHECK(count(page, "<g class=\"peer warm up\">") == 1);
  CHECK(count(page, "<g class=\"peer hot partitioned\">") == 1);
  CHECK(count(page, "<line class=\"link up\"") == 2);
  CHECK(count(page, "<line class=\"link partitioned\"") == 1);
  // The partitioned link is dashed and grey; the up ones are solid in their tier's colour.
  const std::regex kPartitionedLine(R"re(<line class="link partitioned"[^>]*stroke="#868e96"[^>]*stroke-dasharray)re");
  CHECK(std::regex_search(page, kPartitionedLine));
  const std::regex kWarmLine(R"re(<line class="link up"[^>]*stroke="#1c7ed6" stroke-width="3"/>)re");
  CHECK(std::regex_search(page, kWarmLine));
  // Distance from the centre (480, 320): hot 150, warm 250.
  const std::regex kCircle(R"re(<g class="peer (hot|warm) [a-z]+">\n<title>[^<]*</title>\n<circle cx="([0-9.]+)" cy="([0-9.]+)")re");
  int circles = 0;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), kCircle); it != std::sregex_iterator(); ++it) {
    const double dx = std::stod((*it)[2]) - 480, dy = std::stod((*it)[3]) - 320;
    CHECK(std::sqrt(dx * dx + dy * dy) == Approx((*it)[1] == "hot" ? 150.0 : 250.0).margin(0.2));
    ++circles;
  }
  CHECK(circles == 3);
  // Labels: lag in entries and seconds, last contact relative to the snapshot's time.
  CHECK(page.find("lag 12 \xC2\xB7 42 s") != std::string::npos);
  CHECK(page.find("lag 0 \xC2\xB7 0.3 s") != std::string::npos);
  CHECK(page.find("lag 3071 \xC2\xB7 none yet") != std::string::npos);
  CHECK(page.find("seen 3.0 s ago") != std::string::npos);
  CHECK(page.find("seen 3 min ago \xC2\xB7 partitioned") != std::string::npos);
  // The table holds every peer with its state.
  for (const auto& p : daemon_test::three_peer_snapshot().peers) CHECK(count(page, p.device) >= 3);
  CHECK(count(page, "<td class=\"part\">partitioned</td>") == 1);
  CHECK(count(page, "<td class=\"up\">up</td>") == 2);
  CHECK(page.find("8.6 MiB") != std::string::npos);  // the warm peer's 9,000,000 bytes out
}

TEST_CASE("many peers: the picture draws the first 64 and says how many more the table lists", "[daemon][status]") {
  DaemonSnapshot s = daemon_test::three_peer_snapshot();
  for (int i = 0; s.peers.size() < 70; ++i) {
    daemon::PeerSnapshot p = s.peers[static_cast<std::size_t>(i % 3)];
    p.device = "peer-" + std::to_string(i);
    s.peers.push_back(p);
  }
  const std::string page = render_status_page(s);
  CHECK(count(page, "<g class=\"peer ") == 64);
  CHECK(page.find("+6 more peers in the table") != std::string::npos);
  CHECK(count(page, "<tr><td><code>") == 70);
}

TEST_CASE("status.json holds the snapshot, escaped, as valid JSON", "[daemon][status]") {
  DaemonSnapshot s = daemon_test::three_peer_snapshot();
  s.peers[0].device = "quote\" back\\slash \x01 bad\xFF";
  const nlohmann::json j = nlohmann::json::parse(render_status_json(s));
  CHECK(j.at("device") == "gw-centre-4f1a");
  CHECK(j.at("taken_unix_ms") == daemon_test::kTakenUnixMs);
  REQUIRE(j.at("peers").size() == 3);
  CHECK(j["peers"][0]["device"] == "quote\" back\\slash \xEF\xBF\xBD bad\xEF\xBF\xBD");
  CHECK(j["peers"][1]["tier"] == "warm");
  CHECK(j["peers"][1]["lag_seconds"] == 42.0);
  CHECK(j["peers"][2]["partitioned"] == true);
  CHECK(j["peers"][2]["lag_seconds"].is_null());
  CHECK(j["peers"][2]["last_contact_unix_ms"] == daemon_test::kTakenUnixMs - 185000);
  CHECK(j.at("handshake_failures").at("timeout") == 5);
  CHECK(j.at("collections")[0].at("index_bytes") == 9400000);
  CHECK(j.at("repair_sessions_abandoned") == 1);
  CHECK(j.at("discovered_devices") == 4);
}
