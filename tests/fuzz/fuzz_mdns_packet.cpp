// tests/fuzz/fuzz_mdns_packet.cpp: libFuzzer target for what a multicast datagram reaches in
// mDNS discovery: the packet gate (mdns::canonicalize), libmdnsd's parser and responder behind
// it (through the C glue, as transport/mdns_discovery.cpp drives them), TXT decoding and the
// peer table.
//
// Checks, besides ASan/UBSan: on every packet the gate accepts, libmdnsd's parse of the
// canonical bytes equals ours (names, types, TTLs, targets, ports, counts, QR bit), and the
// canonical form is a fixed point of the gate. Seeds: tests/fuzz/corpus/fuzz_mdns_packet/
// (an announcement, a query, a goodbye). Regressions (tests/fuzz/regressions/mdns_*.bin, also
// replayed by tests/transport/mdns_packet_test.cpp): a pointer loop; header counts that put
// libmdnsd 0.12's arrays past its parse scratch when given raw; a pointer past offset 128; and
// mdns_ptr_to_root.bin, found by this target: a PTR whose target is the root name, which the
// gate passed as an empty name (libmdnsd and we disagreed on it); the gate now drops it.
#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "transport/mdns_glue.h"
#include "transport/mdns_internal.hpp"

namespace mdns = shoal::transport::mdns;

namespace {

const std::string kSelf(64, 'a');

shoal_mdns* responder() {
  static shoal_mdns* glue = [] {
    shoal_mdns* g = shoal_mdns_new(1400);
    const auto txt = mdns::encode_txt({kSelf, 1, "0123456789abcdef"});
    if (g == nullptr ||
        shoal_mdns_publish(g, "_shoal._tcp.local.", (mdns::instance_name(kSelf) + ".").c_str(),
                           (mdns::host_name(kSelf) + ".").c_str(), 7000, txt.data(), txt.size(),
                           htonl(0x0a000001), 60) != 0) {
      std::abort();
    }
    return g;
  }();
  return glue;
}

struct Seen {
  std::vector<std::string> items;
  int is_response = 0;
};

void on_question(void* ctx, const char* name, std::uint16_t type, std::uint16_t) {
  static_cast<Seen*>(ctx)->items.push_back(std::string("q ") + name + " " + std::to_string(type));
}
void on_record(void* ctx, const shoal_mdns_parsed_record* r) {
  static_cast<Seen*>(ctx)->items.push_back(
      std::string("r ") + r->name + " " + std::to_string(r->type) + " " +
      std::to_string(r->ttl_s) + " " + (r->target != nullptr ? r->target : "-") + " " +
      std::to_string(r->port));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto packet = mdns::canonicalize(std::span<const std::uint8_t>(data, size));
  if (!packet.ok()) return 0;

  Seen ours;
  ours.is_response = packet->is_response ? 1 : 0;
  for (const auto& q : packet->questions) {
    ours.items.push_back("q " + q.name + ". " + std::to_string(q.type));
  }
  for (const auto& r : packet->answers) {
    ours.items.push_back("r " + r.name + ". " + std::to_string(r.type) + " " +
                         std::to_string(r.ttl_s) + " " + (r.target.empty() ? "-" : r.target + ".") +
                         " " + std::to_string(r.port));
  }
  Seen theirs;
  if (shoal_mdns_parse_for_testing(packet->canonical.data(), packet->canonical.size(),
                                   on_question, on_record, &theirs, &theirs.is_response) != 0 ||
      theirs.items != ours.items || theirs.is_response != ours.is_response) {
    __builtin_trap();  // libmdnsd would see something other than what we checked
  }
  auto again = mdns::canonicalize(packet->canonical);
  if (!again.ok() || again->canonical != packet->canonical) __builtin_trap();

  if (!packet->is_response) {
    // As discovery does: questions go to libmdnsd, which may queue answers.
    shoal_mdns* glue = responder();
    (void)shoal_mdns_input(glue, packet->canonical.data(), packet->canonical.size(), 0);
    static std::array<std::uint8_t, 9000> out;
    for (int i = 0; i < 8 && shoal_mdns_output(glue, out.data(), out.size()) != 0; ++i) {
    }
  } else {
    static mdns::PeerTable table(kSelf, 64);
    static std::int64_t now_ns = 0;
    now_ns += 1'000'000'000;
    std::vector<mdns::PeerEvent> events;
    table.apply(*packet, 0x0a000002, shoal::MonoTime::from_ns(now_ns), events);
    table.expire(shoal::MonoTime::from_ns(now_ns), events);
    for (const auto& r : packet->answers) {
      if (r.type == mdns::kTypeTxt) (void)mdns::decode_txt(r.txt);
    }
  }
  return 0;
}
