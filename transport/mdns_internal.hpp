// transport/mdns_internal.hpp: the pure parts of mDNS discovery (no sockets, no clocks, no
// libmdnsd): the packet gate in front of libmdnsd's parser, the TXT record, and the table of
// peers seen. Internal to shoal_transport_discovery and its tests and fuzzer; users include
// transport/discovery.hpp.
//
// Role: everything that turns hostile multicast bytes into a Sighting is here and is
// bounds-checked C++. canonicalize() reads a received packet with explicit lengths and, when it
// is acceptable, re-encodes the part Shoal cares about in the one form libmdnsd 0.12's parser
// handles safely (docs/protocol.md, "Discovery"; docs/decisions.md, D31):
//   - at most PacketLimits::max_packet_bytes, and at least the 12-byte header;
//   - questions and answers only (authority and additional records dropped), and of those only
//     the ones in Shoal's namespace: `_shoal._tcp.local`, `<instance>._shoal._tcp.local`,
//     `shoal-<...>.local`; answers only of type A, PTR, SRV or TXT, class IN;
//   - names written out in full, so that none of libmdnsd's compression-pointer handling runs
//     (it has no packet length to check a pointer against), each at most 255 bytes, labels
//     without '.' or NUL;
//   - counts bounded so that libmdnsd's fixed scratch area always has room: its parser lays out
//     the question and record arrays, names and rdata in one 64 KiB buffer, checking each header
//     count alone, so counts that pass each check put the arrays past its end (valgrind shows it
//     on tests/fuzz/regressions/mdns_count_overflow.bin), and it refuses names past 4096 bytes.
// The parse that canonicalize() returns (Packet) is the one the discovery code uses; libmdnsd
// parses the canonical bytes only to run its responder and query logic. The fuzzer checks that
// both parses agree on every canonical packet.
//
// Thread rules: pure functions and a value type (PeerTable), no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "common/time.hpp"
#include "transport/discovery.hpp"

namespace shoal::transport::mdns {

// Names, without the trailing dot (libmdnsd's parsed names carry one; ours do not).
inline constexpr std::string_view kServiceName = "_shoal._tcp.local";
inline constexpr std::string_view kHostLabelPrefix = "shoal-";
inline constexpr std::string_view kDomain = "local";
// Hex digits of the device id in the instance and host labels: "shoal-<16 hex>".
inline constexpr std::size_t kNameIdHexDigits = 16;

inline constexpr std::size_t kHeaderBytes = 12;
inline constexpr std::uint16_t kTypeA = 1;
inline constexpr std::uint16_t kTypePtr = 12;
inline constexpr std::uint16_t kTypeTxt = 16;
inline constexpr std::uint16_t kTypeSrv = 33;
inline constexpr std::uint16_t kTypeAny = 255;
inline constexpr std::uint16_t kClassIn = 1;

// The bounds canonicalize() enforces. The defaults are the ones discovery uses.
struct PacketLimits {
  // Datagrams above this are dropped unread (DiscoveryOptions::max_packet_bytes).
  std::size_t max_packet_bytes = 9000;
  // Header counts above these are refused before any name is read.
  std::size_t max_questions_in = 64;
  std::size_t max_answers_in = 256;
  // Questions and answers kept (those in Shoal's namespace); more is refused.
  std::size_t max_questions_kept = 16;
  std::size_t max_answers_kept = 32;
  // A TXT record's rdata.
  std::size_t max_txt_bytes = 1024;
  // What libmdnsd's parser may use of the 4096 bytes it allows (arrays, names, rdata).
  std::size_t max_parse_scratch_bytes = 3584;
};

struct Question {
  std::string name;  // lowercase, no trailing dot
  std::uint16_t type = 0;
};

struct Record {
  std::string name;  // lowercase, no trailing dot
  std::uint16_t type = 0;
  std::uint32_t ttl_s = 0;
  std::string target;              // PTR, SRV: lowercase, no trailing dot
  std::uint16_t port = 0;          // SRV
  std::uint32_t ipv4 = 0;          // A, host byte order
  std::vector<std::uint8_t> txt;   // TXT: the raw rdata
};

// A packet as canonicalize() read it: only what it kept.
struct Packet {
  bool is_response = false;
  std::vector<Question> questions;
  std::vector<Record> answers;
  // Questions and answers seen but outside the namespace or of other types (not an error).
  std::size_t skipped = 0;
  // The bytes handed to libmdnsd: header, kept questions, kept answers, names in full.
  std::vector<std::uint8_t> canonical;
  // True when a question asks for the service's PTR (or ANY): a browser that wants to hear us.
  bool asks_for_service() const;
};

// Reads `datagram` within its length and re-encodes it. Statuses:
//   kTooLarge (invalid argument)  the datagram is above limits.max_packet_bytes, a header count
//                                 above max_questions_in / max_answers_in, more kept questions or
//                                 answers than max_*_kept, a TXT above max_txt_bytes, or libmdnsd's
//                                 scratch would pass max_parse_scratch_bytes; the message names
//                                 the limit and the value seen;
//   kTruncated (corruption)       shorter than the header, or a name, question, record or rdata
//                                 running past the end;
//   kMalformed (invalid argument) a compression pointer that does not point strictly backwards,
//                                 a reserved label type, a name above 255 bytes, a kept name with
//                                 '.' or NUL inside a label, an A record that is not 4 bytes, SRV
//                                 or PTR rdata whose name does not end where the rdata ends, an
//                                 opcode other than 0.
[[nodiscard]] Result<Packet> canonicalize(std::span<const std::uint8_t> datagram,
                                          const PacketLimits& limits = {});

// The TXT record: "id=<64 lowercase hex>", "v=<decimal u32>", "mesh=<16 lowercase hex>", each a
// length-prefixed string (RFC 6763, section 6). Unknown keys are ignored (newer versions may add
// keys); a repeated key counts only once, the first time (RFC 6763, section 6.4).
struct TxtFields {
  std::string device_id;
  std::uint32_t protocol_version = 0;
  std::string mesh_hash;
  friend bool operator==(const TxtFields&, const TxtFields&) = default;
};
inline constexpr std::size_t kDeviceIdHexDigits = 64;
inline constexpr std::size_t kMeshHashHexDigits = 16;

[[nodiscard]] std::vector<std::uint8_t> encode_txt(const TxtFields& fields);
// Statuses: kTruncated (a string runs past the end), kMalformed (a key missing, a value with the
// wrong length or a non-hex or uppercase digit, a version that is not a decimal u32 without
// leading zeros), kTooLarge (more than max_bytes). The message names the key and what was seen.
[[nodiscard]] Result<TxtFields> decode_txt(std::span<const std::uint8_t> rdata,
                                           std::size_t max_bytes = 1024);

// True for exactly `digits` characters of [0-9a-f].
bool is_lower_hex(std::string_view s, std::size_t digits);
// "shoal-<first 16 hex of device_id>", the instance and host label.
std::string name_label(std::string_view device_id);
std::string instance_name(std::string_view device_id);  // "<label>._shoal._tcp.local"
std::string host_name(std::string_view device_id);      // "<label>.local"

// A found or lost peer, in the order they happened.
struct PeerEvent {
  bool found = false;  // false: lost
  Sighting sighting;   // lost: only device_id is set
};

// The peers heard from, keyed by instance name (std::map: deterministic order). A peer is found
// once both its SRV and a valid TXT are known and unexpired, found again when what it announces
// changes, and lost on a goodbye (TTL 0 on its PTR, SRV or TXT) or when its SRV or TXT expires.
// Its address is the A record of its SRV target in the same packet, else the packet's source.
// Thread rules: a value; one thread at a time.
class PeerTable {
 public:
  // `self_device_id`'s records are ignored (our own packets come back: multicast loopback).
  PeerTable(std::string self_device_id, std::size_t max_peers);

  // Applies a response's answers heard from `source_ipv4` (host byte order) at `now`.
  void apply(const Packet& packet, std::uint32_t source_ipv4, MonoTime now,
             std::vector<PeerEvent>& events);
  // Reports and forgets the peers whose SRV or TXT expired at or before `now`.
  void expire(MonoTime now, std::vector<PeerEvent>& events);
  // The next expiry, if any peer is tracked.
  std::optional<MonoTime> next_deadline() const;

  std::size_t size() const { return peers_.size(); }
  // TXT records refused by decode_txt() or naming a device other than the instance's name.
  std::uint64_t invalid_txt() const { return invalid_txt_; }
  // New instances ignored because max_peers were tracked.
  std::uint64_t over_limit() const { return over_limit_; }

  // TTLs above this are taken as this (RFC 6762's longest recommended TTL, 75 minutes), so a
  // peer cannot pin an entry for days.
  static constexpr std::uint32_t kMaxTtlSeconds = 4500;

 private:
  struct Srv {
    std::uint16_t port = 0;
    std::string target;
    MonoTime deadline;
  };
  struct Txt {
    TxtFields fields;
    MonoTime deadline;
  };
  struct Peer {
    std::optional<Srv> srv;
    std::optional<Txt> txt;
    std::string address;
    std::optional<Sighting> reported;
  };

  void goodbye(const std::string& instance, std::vector<PeerEvent>& events);
  Peer* find_or_add(const std::string& instance);

  std::string self_device_id_;
  std::string self_instance_;
  std::size_t max_peers_;
  std::map<std::string, Peer> peers_;
  std::uint64_t invalid_txt_ = 0;
  std::uint64_t over_limit_ = 0;
};

}  // namespace shoal::transport::mdns
