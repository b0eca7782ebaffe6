// transport/mdns_packet.cpp: the packet gate in front of libmdnsd's parser, and the TXT record
// (transport/mdns_internal.hpp).
#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>

#include "transport/mdns_glue.h"
#include "transport/mdns_internal.hpp"

namespace shoal::transport::mdns {
namespace {

// libmdnsd writes a parsed name with a dot after every label, then a NUL; it refuses a name
// whose dotted form passes 255 bytes. Our limit is on the same measure.
constexpr std::size_t kMaxDottedNameBytes = 255;

std::uint16_t read16(std::span<const std::uint8_t> d, std::size_t p) {
  return static_cast<std::uint16_t>((d[p] << 8) | d[p + 1]);
}
std::uint32_t read32(std::span<const std::uint8_t> d, std::size_t p) {
  return (std::uint32_t{d[p]} << 24) | (std::uint32_t{d[p + 1]} << 16) |
         (std::uint32_t{d[p + 2]} << 8) | std::uint32_t{d[p + 3]};
}
void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}
void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v));
}

Status truncated(std::string what, std::size_t at, std::size_t size) {
  return Status(Detail::kTruncated, what + " at offset " + std::to_string(at) +
                                        " runs past the end of the " + std::to_string(size) +
                                        "-byte packet");
}

struct Name {
  std::string text;            // lowercase, labels joined by '.', no trailing dot
  bool representable = true;   // no '.' or NUL inside a label
  std::size_t end = 0;         // offset just after the name's bytes at its position
  std::size_t dotted_bytes = 0;  // libmdnsd's measure: each label plus its dot
};

// Reads the name at `pos` within `d`. Each compression pointer must point strictly before the
// start of the labels it continues, so the walk ends (the offsets decrease).
Result<Name> read_name(std::span<const std::uint8_t> d, std::size_t pos) {
  Name name;
  std::size_t p = pos;
  std::size_t segment_start = pos;
  bool jumped = false;
  while (true) {
    if (p >= d.size()) return truncated("a name", pos, d.size());
    const std::uint8_t b = d[p];
    if (b == 0) {
      if (!jumped) name.end = p + 1;
      return name;
    }
    if ((b & 0xc0) == 0xc0) {
      if (p + 1 >= d.size()) return truncated("a compression pointer", p, d.size());
      const std::size_t target = (std::size_t{b & 0x3fu} << 8) | d[p + 1];
      if (target >= segment_start) {
        return Status(Detail::kMalformed, "compression pointer at offset " + std::to_string(p) +
                                              " to offset " + std::to_string(target) +
                                              ", not before " + std::to_string(segment_start));
      }
      if (!jumped) name.end = p + 2;
      jumped = true;
      segment_start = target;
      p = target;
      continue;
    }
    if ((b & 0xc0) != 0) {
      return Status(Detail::kMalformed, "reserved label type 0x" +
                                            std::to_string(b >> 6) + " at offset " +
                                            std::to_string(p));
    }
    const std::size_t len = b;
    if (p + 1 + len > d.size()) return truncated("a label", p, d.size());
    name.dotted_bytes += len + 1;
    if (name.dotted_bytes > kMaxDottedNameBytes) {
      return Status(Detail::kMalformed, "name at offset " + std::to_string(pos) +
                                            " longer than " +
                                            std::to_string(kMaxDottedNameBytes) + " bytes");
    }
    if (!name.text.empty()) name.text.push_back('.');
    for (std::size_t i = 0; i < len; ++i) {
      char c = static_cast<char>(d[p + 1 + i]);
      if (c == '.' || c == '\0') name.representable = false;
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      name.text.push_back(c);
    }
    p += 1 + len;
  }
}

// Writes a representable name in full (labels split on '.').
void put_name(std::vector<std::uint8_t>& out, std::string_view text) {
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t dot = text.find('.', start);
    if (dot == std::string_view::npos) dot = text.size();
    out.push_back(static_cast<std::uint8_t>(dot - start));
    out.insert(out.end(), text.begin() + static_cast<std::ptrdiff_t>(start),
               text.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  out.push_back(0);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Shoal's namespace: the service, one label under it (an instance), or "shoal-*.local".
bool in_namespace(std::string_view name) {
  if (name == kServiceName) return true;
  if (ends_with(name, kServiceName) && name.size() > kServiceName.size() + 1 &&
      name[name.size() - kServiceName.size() - 1] == '.') {
    const std::string_view label = name.substr(0, name.size() - kServiceName.size() - 1);
    return label.find('.') == std::string_view::npos;
  }
  const std::size_t dot = name.find('.');
  return dot != std::string_view::npos && name.substr(dot + 1) == kDomain &&
         name.substr(0, kHostLabelPrefix.size()) == kHostLabelPrefix;
}

std::size_t align8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

}  // namespace

bool Packet::asks_for_service() const {
  return std::any_of(questions.begin(), questions.end(), [](const Question& q) {
    return q.name == kServiceName && (q.type == kTypePtr || q.type == kTypeAny);
  });
}

Result<Packet> canonicalize(std::span<const std::uint8_t> d, const PacketLimits& limits) {
  if (d.size() > limits.max_packet_bytes) {
    return Status(Detail::kTooLarge, "packet of " + std::to_string(d.size()) +
                                         " bytes above max_packet_bytes " +
                                         std::to_string(limits.max_packet_bytes));
  }
  if (d.size() < kHeaderBytes) {
    return Status(Detail::kTruncated, "packet of " + std::to_string(d.size()) +
                                          " bytes shorter than the 12-byte header");
  }
  const std::uint16_t flags = read16(d, 2);
  const unsigned opcode = (flags >> 11) & 0xfu;
  const unsigned rcode = flags & 0xfu;
  if (opcode != 0 || rcode != 0) {
    return Status(Detail::kMalformed, "opcode " + std::to_string(opcode) + " rcode " +
                                          std::to_string(rcode) + " (mDNS uses 0 and 0)");
  }
  const std::size_t qdcount = read16(d, 4);
  const std::size_t ancount = read16(d, 6);
  if (qdcount > limits.max_questions_in) {
    return Status(Detail::kTooLarge, "question count " + std::to_string(qdcount) +
                                         " above max_questions_in " +
                                         std::to_string(limits.max_questions_in));
  }
  if (ancount > limits.max_answers_in) {
    return Status(Detail::kTooLarge, "answer count " + std::to_string(ancount) +
                                         " above max_answers_in " +
                                         std::to_string(limits.max_answers_in));
  }

  Packet packet;
  packet.is_response = (flags & 0x8000u) != 0;
  // libmdnsd's scratch: names and rdata (the arrays are added once the counts are known).
  std::size_t scratch = 0;
  std::size_t p = kHeaderBytes;

  for (std::size_t i = 0; i < qdcount; ++i) {
    SHOAL_ASSIGN_OR_RETURN(Name name, read_name(d, p));
    p = name.end;
    if (p + 4 > d.size()) return truncated("a question", p, d.size());
    const std::uint16_t type = read16(d, p);
    const std::uint16_t qclass = read16(d, p + 2) & 0x7fffu;  // without the unicast-response bit
    p += 4;
    if (!name.representable || qclass != kClassIn || !in_namespace(name.text)) {
      ++packet.skipped;
      continue;
    }
    if (packet.questions.size() == limits.max_questions_kept) {
      return Status(Detail::kTooLarge, "more than max_questions_kept " +
                                           std::to_string(limits.max_questions_kept) +
                                           " questions in Shoal's namespace");
    }
    scratch += name.dotted_bytes + 1;
    packet.questions.push_back(Question{std::move(name.text), type});
  }

  for (std::size_t i = 0; i < ancount; ++i) {
    SHOAL_ASSIGN_OR_RETURN(Name name, read_name(d, p));
    p = name.end;
    if (p + 10 > d.size()) return truncated("a record header", p, d.size());
    const std::uint16_t type = read16(d, p);
    const std::uint16_t rclass = read16(d, p + 2) & 0x7fffu;  // without the cache-flush bit
    const std::uint32_t ttl = read32(d, p + 4);
    const std::size_t rdlen = read16(d, p + 8);
    p += 10;
    if (p + rdlen > d.size()) return truncated("rdata", p, d.size());
    const std::size_t rdata = p;
    p += rdlen;
    const bool known_type =
        type == kTypeA || type == kTypePtr || type == kTypeSrv || type == kTypeTxt;
    if (!known_type || rclass != kClassIn || !name.representable || !in_namespace(name.text)) {
      ++packet.skipped;
      continue;
    }
    if (packet.answers.size() == limits.max_answers_kept) {
      return Status(Detail::kTooLarge, "more than max_answers_kept " +
                                           std::to_string(limits.max_answers_kept) +
                                           " answers in Shoal's namespace");
    }
    Record rec;
    rec.type = type;
    rec.ttl_s = ttl;
    scratch += name.dotted_bytes + 1;
    const auto rd = d.subspan(0, rdata + rdlen);  // names in rdata may point back, not past it
    switch (type) {
      case kTypeA:
        if (rdlen != 4) {
          return Status(Detail::kMalformed, "A record of " + std::to_string(rdlen) +
                                                " bytes (4 expected)");
        }
        rec.ipv4 = read32(d, rdata);
        scratch += 4 + 16;  // libmdnsd copies the rdata and prints the address
        break;
      case kTypePtr:
      case kTypeSrv: {
        std::size_t at = rdata;
        if (type == kTypeSrv) {
          if (rdlen < 7) {
            return Status(Detail::kMalformed, "SRV rdata of " + std::to_string(rdlen) +
                                                  " bytes (at least 7 expected)");
          }
          rec.port = read16(d, rdata + 4);
          at += 6;
        }
        SHOAL_ASSIGN_OR_RETURN(Name target, read_name(rd, at));
        if (target.end != rdata + rdlen) {
          return Status(Detail::kMalformed, "name in rdata ends at offset " +
                                                std::to_string(target.end) + ", rdata at " +
                                                std::to_string(rdata + rdlen));
        }
        if (!target.representable || target.text.empty()) {  // the root name points nowhere
          ++packet.skipped;
          continue;
        }
        scratch += target.dotted_bytes + 1;
        rec.target = std::move(target.text);
        break;
      }
      case kTypeTxt:
        if (rdlen > limits.max_txt_bytes) {
          return Status(Detail::kTooLarge, "TXT of " + std::to_string(rdlen) +
                                               " bytes above max_txt_bytes " +
                                               std::to_string(limits.max_txt_bytes));
        }
        rec.txt.assign(d.begin() + static_cast<std::ptrdiff_t>(rdata),
                       d.begin() + static_cast<std::ptrdiff_t>(rdata + rdlen));
        scratch += rdlen;
        break;
      default:
        SHOAL_ASSERT(false);
    }
    rec.name = std::move(name.text);
    packet.answers.push_back(std::move(rec));
  }

  // libmdnsd's parser lays out the question array, then the answer array (each aligned to 8).
  scratch += align8(shoal_mdns_question_scratch_bytes() * packet.questions.size()) +
             align8(shoal_mdns_record_scratch_bytes() * packet.answers.size()) + 8;
  if (scratch > limits.max_parse_scratch_bytes) {
    return Status(Detail::kTooLarge, "libmdnsd parse scratch of " + std::to_string(scratch) +
                                         " bytes above max_parse_scratch_bytes " +
                                         std::to_string(limits.max_parse_scratch_bytes));
  }

  // The canonical packet: the header with the kept counts, names in full, classes plain IN.
  std::vector<std::uint8_t>& out = packet.canonical;
  out.reserve(512);
  put16(out, read16(d, 0));
  put16(out, static_cast<std::uint16_t>(flags & 0x8400u));  // QR and AA only
  put16(out, static_cast<std::uint16_t>(packet.questions.size()));
  put16(out, static_cast<std::uint16_t>(packet.answers.size()));
  put16(out, 0);
  put16(out, 0);
  for (const Question& q : packet.questions) {
    put_name(out, q.name);
    put16(out, q.type);
    put16(out, kClassIn);
  }
  for (const Record& r : packet.answers) {
    put_name(out, r.name);
    put16(out, r.type);
    put16(out, kClassIn);
    put32(out, r.ttl_s);
    const std::size_t len_at = out.size();
    put16(out, 0);
    switch (r.type) {
      case kTypeA: put32(out, r.ipv4); break;
      case kTypePtr: put_name(out, r.target); break;
      case kTypeSrv:
        put16(out, 0);  // priority and weight: Shoal does not use them
        put16(out, 0);
        put16(out, r.port);
        put_name(out, r.target);
        break;
      case kTypeTxt: out.insert(out.end(), r.txt.begin(), r.txt.end()); break;
      default: SHOAL_ASSERT(false);
    }
    const std::size_t rdlen = out.size() - len_at - 2;
    out[len_at] = static_cast<std::uint8_t>(rdlen >> 8);
    out[len_at + 1] = static_cast<std::uint8_t>(rdlen);
  }
  return packet;
}

// --- TXT ---

bool is_lower_hex(std::string_view s, std::size_t digits) {
  return s.size() == digits && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string name_label(std::string_view device_id) {
  return std::string(kHostLabelPrefix) + std::string(device_id.substr(0, kNameIdHexDigits));
}
std::string instance_name(std::string_view device_id) {
  return name_label(device_id) + "." + std::string(kServiceName);
}
std::string host_name(std::string_view device_id) {
  return name_label(device_id) + "." + std::string(kDomain);
}

std::vector<std::uint8_t> encode_txt(const TxtFields& fields) {
  std::vector<std::uint8_t> out;
  for (const std::string& s : {"id=" + fields.device_id,
                               "v=" + std::to_string(fields.protocol_version),
                               "mesh=" + fields.mesh_hash}) {
    SHOAL_ASSERT(s.size() <= 255);
    out.push_back(static_cast<std::uint8_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }
  return out;
}

Result<TxtFields> decode_txt(std::span<const std::uint8_t> rdata, std::size_t max_bytes) {
  if (rdata.size() > max_bytes) {
    return Status(Detail::kTooLarge, "TXT of " + std::to_string(rdata.size()) +
                                         " bytes above " + std::to_string(max_bytes));
  }
  std::optional<std::string> id, version, mesh;
  std::size_t p = 0;
  while (p < rdata.size()) {
    const std::size_t len = rdata[p];
    if (p + 1 + len > rdata.size()) {
      return Status(Detail::kTruncated, "TXT string of " + std::to_string(len) +
                                            " bytes at offset " + std::to_string(p) +
                                            " runs past the " + std::to_string(rdata.size()) +
                                            "-byte record");
    }
    const std::string s(rdata.begin() + static_cast<std::ptrdiff_t>(p + 1),
                        rdata.begin() + static_cast<std::ptrdiff_t>(p + 1 + len));
    p += 1 + len;
    const std::size_t eq = s.find('=');
    std::string key = s.substr(0, eq);
    std::transform(key.begin(), key.end(), key.begin(),
                   [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; });
    const std::string value = eq == std::string::npos ? std::string() : s.substr(eq + 1);
    // Only the first occurrence of a key counts (RFC 6763, 6.4).
    std::optional<std::string>* slot = key == "id" ? &id : key == "v" ? &version
                                     : key == "mesh" ? &mesh : nullptr;
    if (slot != nullptr && !slot->has_value()) *slot = value;
  }
  if (!id || !version || !mesh) {
    return Status(Detail::kMalformed, std::string("TXT without the ") +
                                          (!id ? "id" : !version ? "v" : "mesh") + " key");
  }
  if (!is_lower_hex(*id, kDeviceIdHexDigits)) {
    return Status(Detail::kMalformed, "TXT id of " + std::to_string(id->size()) +
                                          " characters, not " +
                                          std::to_string(kDeviceIdHexDigits) +
                                          " lowercase hex digits");
  }
  if (!is_lower_hex(*mesh, kMeshHashHexDigits)) {
    return Status(Detail::kMalformed, "TXT mesh of " + std::to_string(mesh->size()) +
                                          " characters, not " +
                                          std::to_string(kMeshHashHexDigits) +
                                          " lowercase hex digits");
  }
  std::uint32_t v = 0;
  const char* first = version->data();
  const char* last = first + version->size();
  const auto [ptr, ec] = std::from_chars(first, last, v);
  const bool digits_only = std::all_of(first, last, [](char c) { return c >= '0' && c <= '9'; });
  if (version->empty() || !digits_only || ec != std::errc() || ptr != last ||
      (version->size() > 1 && (*version)[0] == '0')) {
    return Status(Detail::kMalformed, "TXT v \"" + version->substr(0, 16) +
                                          "\" is not a decimal u32 without leading zeros");
  }
  return TxtFields{*id, v, *mesh};
}

}  // namespace shoal::transport::mdns
