// tests/transport/mdns_packet_test.cpp: the pure parts of mDNS discovery, without a network.
//
// Proves that (1) the packet gate refuses what libmdnsd 0.12's parser cannot take (oversized
// and short datagrams, pointer loops, header counts that overflow its scratch, too many records)
// and names the limit and the value seen; (2) what it lets through is re-encoded without
// compression pointers and parses in libmdnsd exactly as in our parse; (3) a real announcement built by libmdnsd passes
// and gives the announced values; (4) TXT validation (hex lengths, numeric version, first key
// wins); (5) the peer table: found once SRV and TXT are in, self ignored, goodbye and expiry
// report lost, a TXT for another device's instance is refused, the peer bound holds. The
// committed fuzz regressions (tests/fuzz/regressions/mdns_*.bin) are replayed through the gate
// and libmdnsd.
#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "transport/mdns_glue.h"
#include "transport/mdns_internal.hpp"

namespace mdns = shoal::transport::mdns;
using Bytes = std::vector<std::uint8_t>;

namespace {

const std::string kIdA(64, 'a');
const std::string kIdB = std::string(16, 'b') + std::string(48, 'c');
const std::string kMesh = "0123456789abcdef";

// A small DNS packet builder for hand-made (and hostile) packets.
struct Builder {
  Bytes b = Bytes(12, 0);
  Builder& header(std::uint16_t flags, std::uint16_t qd, std::uint16_t an, std::uint16_t ns = 0,
                  std::uint16_t ar = 0) {
    const std::array<std::uint16_t, 5> v{flags, qd, an, ns, ar};
    for (std::size_t i = 0; i < v.size(); ++i) {
      b[2 + 2 * i] = static_cast<std::uint8_t>(v[i] >> 8);
      b[3 + 2 * i] = static_cast<std::uint8_t>(v[i]);
    }
    return *this;
  }
  Builder& u16(std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
    return *this;
  }
  Builder& u32(std::uint32_t v) { return u16(static_cast<std::uint16_t>(v >> 16)).u16(static_cast<std::uint16_t>(v)); }
  Builder& name(const std::string& dotted) {
    std::size_t start = 0;
    while (start < dotted.size()) {
      std::size_t dot = dotted.find('.', start);
      if (dot == std::string::npos) dot = dotted.size();
      b.push_back(static_cast<std::uint8_t>(dot - start));
      b.insert(b.end(), dotted.begin() + static_cast<std::ptrdiff_t>(start),
               dotted.begin() + static_cast<std::ptrdiff_t>(dot));
      start = dot + 1;
    }
    b.push_back(0);
    return *this;
  }
  Builder& label(const std::string& l) {
    b.push_back(static_cast<std::uint8_t>(l.size()));
    b.insert(b.end(), l.begin(), l.end());
    return *this;
  }
  Builder& pointer(std::uint16_t offset) { return u16(static_cast<std::uint16_t>(0xc000u | offset)); }
  Builder& raw(const Bytes& bytes) {
    b.insert(b.end(), bytes.begin(), bytes.end());
    return *this;
  }
  // A record header after its name; rdata follows with raw().
  Builder& rr(std::uint16_t type, std::uint32_t ttl, std::uint16_t rdlen) {
    return u16(type).u16(1).u32(ttl).u16(rdlen);
  }
};

Bytes srv_rdata(std::uint16_t port, const std::string& target) {
  Builder t;
  t.b.clear();
  t.u16(0).u16(0).u16(port).name(target);
  return t.b;
}
Bytes name_rdata(const std::string& target) {
  Builder t;
  t.b.clear();
  t.name(target);
  return t.b;
}

// A response announcing `id` (SRV, TXT, optionally A) with `ttl`.
Bytes announcement(const std::string& id, std::uint16_t port, std::uint32_t ttl,
                   std::uint32_t version = 3, bool with_a = false) {
  const Bytes txt = mdns::encode_txt({id, version, kMesh});
  const Bytes srv = srv_rdata(port, mdns::host_name(id));
  const Bytes ptr = name_rdata(mdns::instance_name(id));
  Builder p;
  p.header(0x8400, 0, with_a ? 4 : 3);
  p.name(std::string(mdns::kServiceName)).rr(mdns::kTypePtr, ttl, static_cast<std::uint16_t>(ptr.size())).raw(ptr);
  p.name(mdns::instance_name(id)).rr(mdns::kTypeSrv, ttl, static_cast<std::uint16_t>(srv.size())).raw(srv);
  p.name(mdns::instance_name(id)).rr(mdns::kTypeTxt, ttl, static_cast<std::uint16_t>(txt.size())).raw(txt);
  if (with_a) p.name(mdns::host_name(id)).rr(mdns::kTypeA, ttl, 4).u32(0x0a000063);
  return p.b;
}

// What libmdnsd's parser makes of a packet.
struct Seen {
  std::vector<std::string> questions;
  std::vector<std::string> records;  // "name type ttl target port"
  int is_response = 0;
};
Seen libmdnsd_parse(const Bytes& packet) {
  Seen seen;
  auto on_q = [](void* ctx, const char* name, std::uint16_t type, std::uint16_t) {
    static_cast<Seen*>(ctx)->questions.push_back(std::string(name) + " " + std::to_string(type));
  };
  auto on_r = [](void* ctx, const shoal_mdns_parsed_record* r) {
    static_cast<Seen*>(ctx)->records.push_back(
        std::string(r->name) + " " + std::to_string(r->type) + " " + std::to_string(r->ttl_s) +
        " " + (r->target ? r->target : "-") + " " + std::to_string(r->port));
  };
  REQUIRE(shoal_mdns_parse_for_testing(packet.data(), packet.size(), on_q, on_r, &seen,
                                       &seen.is_response) == 0);
  return seen;
}
Seen our_parse(const mdns::Packet& p) {
  Seen seen;
  seen.is_response = p.is_response ? 1 : 0;
  for (const auto& q : p.questions) seen.questions.push_back(q.name + ". " + std::to_string(q.type));
  for (const auto& r : p.answers) {
    seen.records.push_back(r.name + ". " + std::to_string(r.type) + " " + std::to_string(r.ttl_s) +
                           " " + (r.target.empty() ? "-" : r.target + ".") + " " +
                           std::to_string(r.port));
  }
  return seen;
}

bool has_pointer(const Bytes& canonical) {
  // Canonical names never use 0xC0 label bytes; TXT rdata could, so only check short packets'
  // name-bearing parts via a re-parse: a canonical packet is its own canonical form.
  auto again = mdns::canonicalize(canonical);
  return !again.ok() || again->canonical != canonical;
}

}  // namespace

TEST_CASE("datagrams above max_packet_bytes or below the header are refused unread", "[transport][mdns]") {
  mdns::PacketLimits limits;
  Bytes big(limits.max_packet_bytes + 1, 0);
  auto r = mdns::canonicalize(big, limits);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().detail() == shoal::Detail::kTooLarge);
  CHECK(r.status().message().find("9001") != std::string::npos);
  CHECK(r.status().message().find("9000") != std::string::npos);

  auto s = mdns::canonicalize(Bytes(11, 0), limits);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().detail() == shoal::Detail::kTruncated);

  auto empty = mdns::canonicalize(Bytes(12, 0), limits);
  REQUIRE(empty.ok());
  CHECK(empty->questions.empty());
  CHECK(empty->canonical.size() == 12);
}

TEST_CASE("header counts that would overflow libmdnsd's scratch are refused before parsing", "[transport][mdns]") {
  // 4000 questions and 1000 answers: libmdnsd 0.12 checks each count alone and lays out
  // 4000 * 16 + 1000 * 64 bytes in its 64 KiB scratch, writing past it.
  Builder p;
  p.header(0, 4000, 1000);
  auto r = mdns::canonicalize(p.b);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().detail() == shoal::Detail::kTooLarge);
  CHECK(r.status().message().find("4000") != std::string::npos);

  Builder q;
  q.header(0x8400, 0, 300);
  auto r2 = mdns::canonicalize(q.b);
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.status().message().find("300") != std::string::npos);
}

TEST_CASE("compression pointer loops and forward pointers are refused", "[transport][mdns]") {
  Builder self;  // a question whose name points at itself
  self.header(0, 1, 0).pointer(12).u16(12).u16(1);
  auto r = mdns::canonicalize(self.b);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().detail() == shoal::Detail::kMalformed);
  CHECK(r.status().message().find("to offset 12") != std::string::npos);

  Builder forward;
  forward.header(0, 1, 0).pointer(40).u16(12).u16(1);
  forward.b.resize(64, 1);
  CHECK(mdns::canonicalize(forward.b).status().detail() == shoal::Detail::kMalformed);

  Builder two;  // a -> b -> a through two names
  two.header(0, 2, 0).label("x").pointer(20).u16(12).u16(1);  // name 1 at 12: "x" then -> 20
  two.pointer(12).u16(12).u16(1);                               // name 2 at 20: -> 12
  CHECK_FALSE(mdns::canonicalize(two.b).ok());
}

TEST_CASE("truncated names, records and rdata are refused", "[transport][mdns]") {
  Builder p;
  p.header(0x8400, 0, 1).name(mdns::instance_name(kIdA)).rr(mdns::kTypeTxt, 10, 50);
  p.b.resize(p.b.size() + 10, 0);
  auto r = mdns::canonicalize(p.b);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().detail() == shoal::Detail::kTruncated);

  Builder l;
  l.header(0, 1, 0);
  l.b.push_back(40);
  l.b.push_back('a');
  CHECK(mdns::canonicalize(l.b).status().detail() == shoal::Detail::kTruncated);
}

TEST_CASE("compressed names reach libmdnsd in full and parse the same as ours", "[transport][mdns]") {
  // The service name sits past offset 128 and a later answer's name is only a pointer to it.
  Builder p;
  p.header(0x8400, 0, 2);
  const Bytes filler(120, 'z');
  p.name("other.example").rr(16, 10, static_cast<std::uint16_t>(filler.size())).raw(filler);
  const std::size_t service_at = p.b.size();
  REQUIRE(service_at >= 128);
  const Bytes ptr = name_rdata(mdns::instance_name(kIdB));
  p.name(std::string(mdns::kServiceName)).rr(mdns::kTypePtr, 20, static_cast<std::uint16_t>(ptr.size())).raw(ptr);
  // A second answer whose name is only a pointer to the service name.
  const Bytes ptr2 = name_rdata(mdns::instance_name(kIdA));
  p.header(0x8400, 0, 3);
  p.pointer(static_cast<std::uint16_t>(service_at)).rr(mdns::kTypePtr, 30, static_cast<std::uint16_t>(ptr2.size())).raw(ptr2);


  auto r = mdns::canonicalize(p.b);
  REQUIRE(r.ok());
  CHECK(r->skipped == 1);  // the TXT of other.example
  REQUIRE(r->answers.size() == 2);
  CHECK(r->answers[1].name == mdns::kServiceName);
  CHECK(r->answers[1].target == mdns::instance_name(kIdA));
  CHECK_FALSE(has_pointer(r->canonical));
  const Seen ours = our_parse(*r);
  const Seen theirs = libmdnsd_parse(r->canonical);
  CHECK(theirs.records == ours.records);
  CHECK(theirs.is_response == 1);
}

TEST_CASE("only Shoal's names, IN class, and the answer section are kept", "[transport][mdns]") {
  Builder p;
  p.header(0x8400, 2, 3, 1, 1);
  p.name("_http._tcp.local").u16(12).u16(1);
  p.name(std::string(mdns::kServiceName)).u16(12).u16(0x8001);  // QU bit: kept, plain IN
  p.name("printer.local").rr(mdns::kTypeA, 10, 4).u32(1);
  p.name("a.b._shoal._tcp.local").rr(mdns::kTypeA, 10, 4).u32(1);  // two labels under the service
  p.name(mdns::host_name(kIdA)).rr(mdns::kTypeA, 10, 4).u32(0x0a000001);
  p.name(mdns::host_name(kIdA)).rr(mdns::kTypeA, 10, 4).u32(2);  // authority: ignored
  auto r = mdns::canonicalize(p.b);
  REQUIRE(r.ok());
  CHECK(r->questions.size() == 1);
  CHECK(r->asks_for_service());
  CHECK(r->answers.size() == 1);
  CHECK(r->answers[0].ipv4 == 0x0a000001u);
  CHECK(r->skipped == 3);
  CHECK(r->canonical[9] == 0);   // no authority
  CHECK(r->canonical[11] == 0);  // no additional
  CHECK(libmdnsd_parse(r->canonical).records == our_parse(*r).records);

  Builder dot;  // a label with a '.' inside: would alias another name in libmdnsd's strings
  dot.header(0x8400, 0, 1).label("shoal-x.local").label("local").b.push_back(0);
  dot.rr(mdns::kTypeA, 10, 4).u32(1);
  auto d = mdns::canonicalize(dot.b);
  REQUIRE(d.ok());
  CHECK(d->answers.empty());
}

TEST_CASE("kept records above the bounds are refused with the limit named", "[transport][mdns]") {
  mdns::PacketLimits limits;
  Builder p;
  p.header(0x8400, 0, static_cast<std::uint16_t>(limits.max_answers_kept + 1));
  for (std::size_t i = 0; i <= limits.max_answers_kept; ++i) {
    p.name(mdns::host_name(kIdA)).rr(mdns::kTypeA, 10, 4).u32(1);
  }
  auto r = mdns::canonicalize(p.b, limits);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("max_answers_kept 32") != std::string::npos);

  // Twelve large TXT records fit the kept count but not libmdnsd's scratch.
  Builder t;
  t.header(0x8400, 0, 12);
  const Bytes txt(400, 'x');
  for (int i = 0; i < 12; ++i) t.name(mdns::instance_name(kIdA)).rr(mdns::kTypeTxt, 10, 400).raw(txt);
  auto s = mdns::canonicalize(t.b, limits);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().message().find("max_parse_scratch_bytes") != std::string::npos);

  Builder a;  // an A record that is not 4 bytes
  a.header(0x8400, 0, 1).name(mdns::host_name(kIdA)).rr(mdns::kTypeA, 10, 5).u32(1);
  a.b.push_back(0);
  CHECK(mdns::canonicalize(a.b).status().detail() == shoal::Detail::kMalformed);
}

TEST_CASE("an announcement built by libmdnsd passes the gate with the announced values", "[transport][mdns]") {
  shoal_mdns* glue = shoal_mdns_new(1400);
  REQUIRE(glue != nullptr);
  const Bytes txt = mdns::encode_txt({kIdA, 7, kMesh});
  REQUIRE(shoal_mdns_publish(glue, "_shoal._tcp.local.", (mdns::instance_name(kIdA) + ".").c_str(),
                             (mdns::host_name(kIdA) + ".").c_str(), 7001, txt.data(), txt.size(),
                             htonl(0x0a4d0001), 75) == 0);
  std::array<std::uint8_t, 9000> out{};
  const int n = shoal_mdns_output(glue, out.data(), out.size());
  REQUIRE(n > 0);
  const Bytes packet(out.begin(), out.begin() + n);
  auto r = mdns::canonicalize(packet);
  REQUIRE(r.ok());
  CHECK(r->is_response);
  CHECK(r->answers.size() == 4);
  CHECK(libmdnsd_parse(r->canonical).records == our_parse(*r).records);

  mdns::PeerTable table(kIdB, 8);
  std::vector<mdns::PeerEvent> events;
  table.apply(*r, 0x0a4d0009, shoal::MonoTime::from_ns(0), events);
  REQUIRE(events.size() == 1);
  CHECK(events[0].found);
  CHECK(events[0].sighting == shoal::transport::Sighting{kIdA, 7, kMesh, "10.77.0.1", 7001});

  // Our own query packet asks for the service.
  const int q = shoal_mdns_query_packet(glue, out.data(), out.size());
  REQUIRE(q > 0);
  auto query = mdns::canonicalize(Bytes(out.begin(), out.begin() + q));
  REQUIRE(query.ok());
  CHECK(query->asks_for_service());

  // The goodbye: every record with TTL 0.
  shoal_mdns_shutdown(glue);
  const int g = shoal_mdns_output(glue, out.data(), out.size());
  REQUIRE(g > 0);
  auto bye = mdns::canonicalize(Bytes(out.begin(), out.begin() + g));
  REQUIRE(bye.ok());
  REQUIRE_FALSE(bye->answers.empty());
  for (const auto& rec : bye->answers) CHECK(rec.ttl_s == 0);
  table.apply(*bye, 0x0a4d0009, shoal::MonoTime::from_ns(1), events);
  REQUIRE(events.size() == 2);
  CHECK_FALSE(events[1].found);
  CHECK(events[1].sighting.device_id == kIdA);
  shoal_mdns_free(glue);
}

TEST_CASE("TXT values are validated: hex lengths, numeric version, first key wins", "[transport][mdns]") {
  auto txt = [](std::vector<std::string> strings) {
    Bytes b;
    for (const auto& s : strings) {
      b.push_back(static_cast<std::uint8_t>(s.size()));
      b.insert(b.end(), s.begin(), s.end());
    }
    return b;
  };
  const std::string id = "id=" + kIdA;
  const std::string mesh = "mesh=" + kMesh;
  auto ok = mdns::decode_txt(mdns::encode_txt({kIdA, 4294967295u, kMesh}));
  REQUIRE(ok.ok());
  CHECK(ok->protocol_version == 4294967295u);

  auto first = mdns::decode_txt(txt({"V=2", "future=x", id, "v=9", mesh, "flag"}));
  REQUIRE(first.ok());
  CHECK(first->protocol_version == 2);

  for (const char* bad_v : {"v=", "v=01", "v=4294967296", "v=-1", "v=1a", "v= 1", "v"}) {
    INFO(bad_v);
    auto r = mdns::decode_txt(txt({id, bad_v, mesh}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().detail() == shoal::Detail::kMalformed);
  }
  const std::string upper = "id=" + std::string(64, 'A');
  const std::string short_id = "id=" + std::string(63, 'a');
  for (const auto& bad : {txt({short_id, "v=1", mesh}), txt({upper, "v=1", mesh}),
                          txt({id, "v=1", "mesh=0123456789abcdeg"}), txt({id, "v=1", "mesh=0123"}),
                          txt({id, "v=1"}), txt({"v=1", mesh})}) {
    auto r = mdns::decode_txt(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().detail() == shoal::Detail::kMalformed);
  }
  Bytes cut = txt({id, "v=1", mesh});
  cut.resize(cut.size() - 3);
  CHECK(mdns::decode_txt(cut).status().detail() == shoal::Detail::kTruncated);
  CHECK(mdns::decode_txt(Bytes(2000, 0)).status().detail() == shoal::Detail::kTooLarge);
}

TEST_CASE("the peer table reports found, updates, goodbye and expiry, and ignores itself", "[transport][mdns]") {
  using shoal::Duration;
  using shoal::MonoTime;
  mdns::PeerTable table(kIdA, 2);
  std::vector<mdns::PeerEvent> events;
  const MonoTime t0 = MonoTime::from_ns(0);
  auto apply = [&](const Bytes& b, MonoTime at) {
    auto p = mdns::canonicalize(b);
    REQUIRE(p.ok());
    table.apply(*p, 0x0a000002, at, events);
  };

  apply(announcement(kIdA, 7000, 60), t0);  // ourselves, looped back
  CHECK(events.empty());
  CHECK(table.size() == 0);

  apply(announcement(kIdB, 7001, 10, 3, true), t0);
  REQUIRE(events.size() == 1);
  CHECK(events[0].sighting == shoal::transport::Sighting{kIdB, 3, kMesh, "10.0.0.99", 7001});
  apply(announcement(kIdB, 7001, 10, 3, true), t0 + Duration::seconds(5));  // a refresh: no news
  CHECK(events.size() == 1);
  apply(announcement(kIdB, 7002, 10, 3, true), t0 + Duration::seconds(6));  // moved: found again
  REQUIRE(events.size() == 2);
  CHECK(events[1].sighting.port == 7002);

  // Expiry: nothing heard for the TTL.
  table.expire(t0 + Duration::seconds(15), events);
  CHECK(events.size() == 2);
  table.expire(t0 + Duration::seconds(16), events);
  REQUIRE(events.size() == 3);
  CHECK_FALSE(events[2].found);
  CHECK(events[2].sighting.device_id == kIdB);
  CHECK(table.size() == 0);

  // Goodbye: TTL 0.
  apply(announcement(kIdB, 7001, 10), t0 + Duration::seconds(20));
  apply(announcement(kIdB, 7001, 0), t0 + Duration::seconds(21));
  REQUIRE(events.size() == 5);
  CHECK_FALSE(events[4].found);

  // A TXT whose id is not the instance's: refused, never reported.
  Builder forged;
  const Bytes txt = mdns::encode_txt({std::string(64, 'd'), 1, kMesh});
  const Bytes srv = srv_rdata(1, "x.local");
  forged.header(0x8400, 0, 2);
  forged.name(mdns::instance_name(kIdB)).rr(mdns::kTypeSrv, 10, static_cast<std::uint16_t>(srv.size())).raw(srv);
  forged.name(mdns::instance_name(kIdB)).rr(mdns::kTypeTxt, 10, static_cast<std::uint16_t>(txt.size())).raw(txt);
  apply(forged.b, t0 + Duration::seconds(22));
  CHECK(events.size() == 5);
  CHECK(table.invalid_txt() == 1);

  // A query's known answers are not news.
  Bytes as_query = announcement(std::string(64, 'e'), 1, 10);
  as_query[2] = 0;
  apply(as_query, t0 + Duration::seconds(23));
  CHECK(events.size() == 5);

  // The bound: two peers tracked (kIdB's SRV is still there), the third is ignored.
  apply(announcement(std::string(64, 'e'), 1, 10), t0 + Duration::seconds(24));
  apply(announcement(std::string(64, 'f'), 1, 10), t0 + Duration::seconds(24));
  CHECK(table.size() == 2);
  CHECK(table.over_limit() >= 1);
}

TEST_CASE("the committed fuzz regressions pass through the gate and libmdnsd safely", "[transport][mdns]") {
  const std::filesystem::path dir = SHOAL_FUZZ_REGRESSIONS_DIR;
  int replayed = 0;
  shoal_mdns* glue = shoal_mdns_new(1400);
  REQUIRE(glue != nullptr);
  const Bytes txt = mdns::encode_txt({kIdA, 1, kMesh});
  REQUIRE(shoal_mdns_publish(glue, "_shoal._tcp.local.", (mdns::instance_name(kIdA) + ".").c_str(),
                             (mdns::host_name(kIdA) + ".").c_str(), 1, txt.data(), txt.size(), 0,
                             10) == 0);
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind("mdns_", 0) != 0) continue;
    INFO(file);
    std::ifstream in(entry.path(), std::ios::binary);
    const Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto r = mdns::canonicalize(bytes);
    if (r.ok()) {
      CHECK(libmdnsd_parse(r->canonical).records == our_parse(*r).records);
      CHECK(shoal_mdns_input(glue, r->canonical.data(), r->canonical.size(), 0) == 0);
    }
    ++replayed;
  }
  std::array<std::uint8_t, 9000> out{};
  for (int i = 0; i < 8 && shoal_mdns_output(glue, out.data(), out.size()) != 0; ++i) {
  }
  shoal_mdns_free(glue);
  CHECK(replayed >= 3);
}
