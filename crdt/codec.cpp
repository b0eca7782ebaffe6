#include "crdt/codec.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "common/log.hpp"

namespace shoal::crdt {
namespace {

Status truncated(const char* what) {
  return Status(Detail::kTruncated, str_cat("input ends inside ", what));
}
Status corrupt(std::string message) { return Status(Code::kCorruption, std::move(message)); }

// A bounds-checked reader over bytes from disk or a peer.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) noexcept : bytes_(bytes) {}

  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

  Status byte(std::uint8_t& out, const char* what) {
    if (remaining() < 1) return truncated(what);
    out = bytes_[pos_++];
    return ok_status();
  }

  Status varint(std::uint64_t& out, const char* what) {
    std::uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (remaining() < 1) return truncated(what);
      const std::uint8_t b = bytes_[pos_++];
      if (shift == 63 && (b & 0xfe) != 0) return corrupt(str_cat("varint overflow in ", what));
      value |= std::uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) {
        // Canonical form only: no trailing zero groups, so each value has one encoding.
        if (b == 0 && shift > 0) return corrupt(str_cat("overlong varint in ", what));
        out = value;
        return ok_status();
      }
    }
  }

  Status fixed64(std::uint64_t& out, const char* what) {
    if (remaining() < 8) return truncated(what);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= std::uint64_t{bytes_[pos_ + static_cast<std::size_t>(i)]} << (8 * i);
    pos_ += 8;
    out = v;
    return ok_status();
  }

  Status raw(std::span<const std::uint8_t>& out, std::size_t n, const char* what) {
    if (remaining() < n) return truncated(what);
    out = bytes_.subspan(pos_, n);
    pos_ += n;
    return ok_status();
  }

  // A count of items each at least `min_item_bytes` long: refuses counts that cannot fit, so a
  // corrupt count never drives a huge allocation.
  Status count(std::uint64_t& out, std::size_t min_item_bytes, const char* what) {
    SHOAL_RETURN_IF_ERROR(varint(out, what));
    if (out > remaining() / min_item_bytes) return truncated(what);
    return ok_status();
  }

  Status version() {
    std::uint8_t v = 0;
    SHOAL_RETURN_IF_ERROR(byte(v, "format version"));
    if (v != kFormatVersion) {
      return Status(Detail::kVersionMismatch,
                    str_cat("crdt format version ", int{v}, ", expected ", int{kFormatVersion}));
    }
    return ok_status();
  }

  Status finish() const {
    if (remaining() != 0) return corrupt(str_cat(remaining(), " trailing bytes"));
    return ok_status();
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
};

void put_fixed64(std::uint64_t v, Bytes& out) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void put_replica(const ReplicaId& r, Bytes& out) {
  out.insert(out.end(), r.identity.begin(), r.identity.end());
  put_varint(r.incarnation, out);
}

void put_dot(const Dot& d, Bytes& out) {
  put_replica(d.replica, out);
  put_varint(d.counter, out);
}

void put_context(const CausalContext& ctx, Bytes& out) {
  put_varint(ctx.rows().size(), out);
  for (const auto& [replica, row] : ctx.rows()) {
    put_replica(replica, out);
    put_varint(row.contiguous, out);
    put_varint(row.cloud.size(), out);
    // Gaps: each cloud counter minus the previous one (the first minus contiguous + 1), minus 1;
    // canonical clouds make every gap non-negative.
    std::uint64_t prev = row.contiguous + 1;
    for (std::uint64_t c : row.cloud) {
      put_varint(c - prev - 1, out);
      prev = c;
    }
  }
}

void put_entries(std::span<const Entry> entries, Bytes& out) {
  put_varint(entries.size(), out);
  for (const Entry& e : entries) {
    put_dot(e.dot, out);
    put_fixed64(e.clock.raw(), out);
    put_varint(e.payload.size(), out);
    out.insert(out.end(), e.payload.begin(), e.payload.end());
  }
}

Status read_replica(Reader& r, ReplicaId& out) {
  std::span<const std::uint8_t> id;
  SHOAL_RETURN_IF_ERROR(r.raw(id, ReplicaId::kIdentityBytes, "replica identity"));
  std::memcpy(out.identity.data(), id.data(), ReplicaId::kIdentityBytes);
  std::uint64_t inc = 0;
  SHOAL_RETURN_IF_ERROR(r.varint(inc, "replica incarnation"));
  if (inc > 0xffffffffu) return corrupt(str_cat("incarnation ", inc, " above 2^32-1"));
  out.incarnation = static_cast<std::uint32_t>(inc);
  return ok_status();
}

Status read_counter(Reader& r, std::uint64_t& out, const char* what) {
  SHOAL_RETURN_IF_ERROR(r.varint(out, what));
  if (out >= kMaxCounter) return corrupt(str_cat(what, " ", out, " at or above 2^62"));
  return ok_status();
}

Status read_dot(Reader& r, Dot& out) {
  SHOAL_RETURN_IF_ERROR(read_replica(r, out.replica));
  SHOAL_RETURN_IF_ERROR(read_counter(r, out.counter, "dot counter"));
  if (out.counter == 0) return corrupt("dot counter 0");
  return ok_status();
}

Status read_context(Reader& r, CausalContext& out) {
  std::uint64_t rows = 0;
  // A row takes at least 16 + 1 + 1 + 1 bytes.
  SHOAL_RETURN_IF_ERROR(r.count(rows, 19, "context row count"));
  bool have_prev = false;
  ReplicaId prev;
  for (std::uint64_t i = 0; i < rows; ++i) {
    ReplicaId replica;
    SHOAL_RETURN_IF_ERROR(read_replica(r, replica));
    if (have_prev && !(prev < replica)) return corrupt("context rows out of order");
    have_prev = true;
    prev = replica;
    CausalContext::Row row;
    SHOAL_RETURN_IF_ERROR(read_counter(r, row.contiguous, "context prefix"));
    std::uint64_t n = 0;
    SHOAL_RETURN_IF_ERROR(r.count(n, 1, "context cloud size"));
    row.cloud.reserve(static_cast<std::size_t>(n));
    std::uint64_t last = row.contiguous + 1;
    for (std::uint64_t k = 0; k < n; ++k) {
      std::uint64_t gap = 0;
      SHOAL_RETURN_IF_ERROR(r.varint(gap, "context cloud gap"));
      if (last >= kMaxCounter || gap >= kMaxCounter - last - 1)
        return corrupt("context cloud counter at or above 2^62");
      last = last + gap + 1;
      row.cloud.push_back(last);
    }
    if (!out.set_row_for_decoder(replica, std::move(row))) return corrupt("empty context row");
  }
  return ok_status();
}

Status read_entries(Reader& r, Entries& out) {
  std::uint64_t n = 0;
  // An entry takes at least 16 + 1 + 1 + 8 + 1 bytes.
  SHOAL_RETURN_IF_ERROR(r.count(n, 27, "entry count"));
  out.clear();
  out.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) {
    Entry e;
    SHOAL_RETURN_IF_ERROR(read_dot(r, e.dot));
    if (!out.empty() && !(out.back().dot < e.dot)) return corrupt("entries out of dot order");
    std::uint64_t clock = 0;
    SHOAL_RETURN_IF_ERROR(r.fixed64(clock, "entry clock"));
    e.clock = Hlc::from_raw(clock);
    std::uint64_t len = 0;
    SHOAL_RETURN_IF_ERROR(r.varint(len, "payload length"));
    if (len > kMaxPayloadBytes) {
      return Status(Detail::kTooLarge,
                    str_cat("payload of ", len, " bytes, limit ", kMaxPayloadBytes));
    }
    std::span<const std::uint8_t> payload;
    SHOAL_RETURN_IF_ERROR(r.raw(payload, static_cast<std::size_t>(len), "payload"));
    e.payload.assign(payload.begin(), payload.end());
    out.push_back(std::move(e));
  }
  return ok_status();
}

}  // namespace

void put_varint(std::uint64_t value, Bytes& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(value));
}

void encode_dot(const Dot& dot, Bytes& out) {
  out.push_back(kFormatVersion);
  put_dot(dot, out);
}

void encode_context(const CausalContext& ctx, Bytes& out) {
  out.push_back(kFormatVersion);
  put_context(ctx, out);
}

void encode_entries(std::span<const Entry> entries, Bytes& out) {
  out.push_back(kFormatVersion);
  put_entries(entries, out);
}

void encode_delta(const Delta& delta, Bytes& out) {
  out.push_back(kFormatVersion);
  put_context(delta.context, out);
  put_varint(delta.records.size(), out);
  for (const auto& [id, entries] : delta.records) {
    put_varint(id.size(), out);
    out.insert(out.end(), id.begin(), id.end());
    put_entries(entries, out);
  }
}

Result<Dot> decode_dot(std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  SHOAL_RETURN_IF_ERROR(r.version());
  Dot d;
  SHOAL_RETURN_IF_ERROR(read_dot(r, d));
  SHOAL_RETURN_IF_ERROR(r.finish());
  return d;
}

Result<CausalContext> decode_context(std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  SHOAL_RETURN_IF_ERROR(r.version());
  CausalContext ctx;
  SHOAL_RETURN_IF_ERROR(read_context(r, ctx));
  SHOAL_RETURN_IF_ERROR(r.finish());
  return ctx;
}

Result<Entries> decode_entries(std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  SHOAL_RETURN_IF_ERROR(r.version());
  Entries entries;
  SHOAL_RETURN_IF_ERROR(read_entries(r, entries));
  SHOAL_RETURN_IF_ERROR(r.finish());
  return entries;
}

Result<Delta> decode_delta(std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  SHOAL_RETURN_IF_ERROR(r.version());
  Delta delta;
  SHOAL_RETURN_IF_ERROR(read_context(r, delta.context));
  std::uint64_t n = 0;
  // A record takes at least 1 (id length) + 1 (id) + 1 (entry count) bytes.
  SHOAL_RETURN_IF_ERROR(r.count(n, 3, "record count"));
  const std::string* prev_id = nullptr;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::uint64_t len = 0;
    SHOAL_RETURN_IF_ERROR(r.varint(len, "record id length"));
    if (len == 0 || len > kMaxRecordIdBytes) {
      return Status(Detail::kTooLarge,
                    str_cat("record id of ", len, " bytes, allowed 1..", kMaxRecordIdBytes));
    }
    std::span<const std::uint8_t> raw;
    SHOAL_RETURN_IF_ERROR(r.raw(raw, static_cast<std::size_t>(len), "record id"));
    std::string id(reinterpret_cast<const char*>(raw.data()), raw.size());
    if (prev_id != nullptr && !(*prev_id < id)) return corrupt("record ids out of order");
    Entries entries;
    SHOAL_RETURN_IF_ERROR(read_entries(r, entries));
    for (const Entry& e : entries) {
      if (!delta.context.contains(e.dot)) {
        return corrupt(str_cat("entry ", e.dot.to_string(), " of a delta not in its context"));
      }
    }
    auto it = delta.records.emplace_hint(delta.records.end(), std::move(id), std::move(entries));
    prev_id = &it->first;
  }
  SHOAL_RETURN_IF_ERROR(r.finish());
  return delta;
}

void encode_dot_ranges(std::span<const DotRange> ranges, Bytes& out) {
  out.push_back(kFormatVersion);
  put_varint(ranges.size(), out);
  for (const DotRange& r : ranges) {
    put_replica(r.replica, out);
    put_varint(r.first, out);
    put_varint(r.last - r.first, out);
  }
}

Result<std::vector<DotRange>> decode_dot_ranges(std::span<const std::uint8_t> bytes, std::size_t max_ranges) {
  Reader r(bytes);
  SHOAL_RETURN_IF_ERROR(r.version());
  std::uint64_t n = 0;
  // A range takes at least 16 + 1 + 1 + 1 bytes.
  SHOAL_RETURN_IF_ERROR(r.count(n, 19, "dot range count"));
  if (n > max_ranges) {
    return Status(Detail::kTooLarge, str_cat(n, " removed-dot ranges in one message, limit ", max_ranges));
  }
  std::vector<DotRange> out;
  out.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) {
    DotRange d;
    SHOAL_RETURN_IF_ERROR(read_replica(r, d.replica));
    std::uint64_t span = 0;
    SHOAL_RETURN_IF_ERROR(read_counter(r, d.first, "dot range start"));
    SHOAL_RETURN_IF_ERROR(r.varint(span, "dot range length"));
    if (d.first == 0) return corrupt("dot range starting at counter 0");
    if (span >= kMaxCounter - d.first) return corrupt(str_cat("dot range ", d.first, "+", span, " reaches 2^62"));
    d.last = d.first + span;
    if (!out.empty()) {
      const DotRange& p = out.back();
      if (d.replica < p.replica || (d.replica == p.replica && d.first <= p.last + 1)) {
        return corrupt("dot ranges out of order, overlapping or touching");
      }
    }
    out.push_back(d);
  }
  SHOAL_RETURN_IF_ERROR(r.finish());
  return out;
}

bool ranges_contain(std::span<const DotRange> ranges, const Dot& dot) noexcept {
  // The first range after `dot`'s position; the one before it holds the dot if any does.
  auto it = std::upper_bound(ranges.begin(), ranges.end(), dot, [](const Dot& d, const DotRange& r) {
    return d.replica != r.replica ? d.replica < r.replica : d.counter < r.first;
  });
  if (it == ranges.begin()) return false;
  --it;
  return it->replica == dot.replica && it->first <= dot.counter && dot.counter <= it->last;
}

}  // namespace shoal::crdt
