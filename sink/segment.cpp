// sink/segment.cpp: encoding and strict decoding of segments (docs/sink-format.md).
#include "sink/segment.hpp"

#include <sodium.h>
#include <xxhash.h>

#include <cstring>

namespace shoal::sink {

namespace {

// Fixed sizes (docs/sink-format.md).
constexpr std::size_t kHeaderFixed = 8 + 2 + 2 + 2;  // magic, version, flags, collection length
constexpr std::size_t kTrailerBytes = 8;
constexpr std::size_t kEntryFixed = kReplicaBytes + 8 + 8 + 4;  // dot, hlc, payload length

Status too_large(std::string_view what, std::size_t value, std::size_t limit) {
  return Status(Detail::kTooLarge, std::string(what) + " is " + std::to_string(value) +
                                       ", above the limit of " + std::to_string(limit));
}

template <typename T>
void put_le(std::string& out, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    out += static_cast<char>(static_cast<std::uint8_t>(v >> (8 * i)));
  }
}

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool has(std::size_t n) const { return bytes_.size() - pos_ >= n; }
  std::size_t remaining() const { return bytes_.size() - pos_; }
  std::size_t pos() const { return pos_; }
  template <typename T>
  Result<T> le(std::string_view what) {
    if (!has(sizeof(T))) return truncated(what);
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      v = static_cast<T>(v | static_cast<T>(static_cast<T>(static_cast<std::uint8_t>(bytes_[pos_ + i])) << (8 * i)));
    }
    pos_ += sizeof(T);
    return v;
  }
  Result<std::string_view> take(std::size_t n, std::string_view what) {
    if (!has(n)) return truncated(what);
    std::string_view s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  Status truncated(std::string_view what) const {
    return Status(Detail::kTruncated, "segment ends inside " + std::string(what) + " at byte " +
                                          std::to_string(pos_));
  }
  std::string_view bytes_;
  std::size_t pos_ = 0;
};

// `bad` is kCorruption when decoding, kInvalidArgument/kOutOfRange when encoding.
template <typename Bad>
Status check_record_order(const SegmentRecord* prev, const SegmentRecord& r, Bad bad) {
  if (prev != nullptr && !(prev->id < r.id)) {
    return Status(bad, "segment record ids are not strictly ascending", r.id);
  }
  return ok_status();
}

}  // namespace

PayloadDigest payload_digest(std::string_view payload) {
  // Picks libsodium's fastest BLAKE2b once (a thread-safe static); the hash works without it.
  [[maybe_unused]] static const int sodium = sodium_init();
  PayloadDigest d{};
  crypto_generichash(d.data(), d.size(), reinterpret_cast<const unsigned char*>(payload.data()),
                     payload.size(), nullptr, 0);
  return d;
}

Result<std::string> encode_segment(const Segment& segment, const SegmentLimits& limits) {
  if (segment.collection.size() > limits.max_collection_bytes) {
    return too_large("segment collection name length", segment.collection.size(),
                     limits.max_collection_bytes);
  }
  if (segment.collection.empty()) {
    return Status(Detail::kOutOfRange, "segment collection name is empty");
  }
  if (segment.records.size() > limits.max_records) {
    return too_large("segment record count", segment.records.size(), limits.max_records);
  }
  std::string out;
  out.append(kSegmentMagic);
  put_le<std::uint16_t>(out, kSegmentVersion);
  put_le<std::uint16_t>(out, 0);
  put_le<std::uint16_t>(out, static_cast<std::uint16_t>(segment.collection.size()));
  out.append(segment.collection);
  put_le<std::uint32_t>(out, static_cast<std::uint32_t>(segment.records.size()));
  const SegmentRecord* prev = nullptr;
  for (const SegmentRecord& r : segment.records) {
    if (r.id.empty()) return Status(Detail::kOutOfRange, "segment record id is empty");
    if (r.id.size() > limits.max_id_bytes) {
      return too_large("segment record id length", r.id.size(), limits.max_id_bytes);
    }
    SHOAL_RETURN_IF_ERROR(check_record_order(prev, r, Detail::kOutOfRange));
    prev = &r;
    if (r.entries.empty()) {
      return Status(Detail::kOutOfRange, "segment record has no entries", r.id);
    }
    if (r.entries.size() > limits.max_entries_per_record) {
      return too_large("segment record entry count", r.entries.size(),
                       limits.max_entries_per_record);
    }
    put_le<std::uint16_t>(out, static_cast<std::uint16_t>(r.id.size()));
    out.append(r.id);
    put_le<std::uint32_t>(out, static_cast<std::uint32_t>(r.entries.size()));
    for (std::size_t i = 0; i < r.entries.size(); ++i) {
      const SegmentEntry& e = r.entries[i];
      if (e.dot.counter == 0) return Status(Detail::kOutOfRange, "segment dot counter is 0", r.id);
      if (i > 0 && !(r.entries[i - 1].dot < e.dot)) {
        return Status(Detail::kOutOfRange, "segment record dots are not strictly ascending", r.id);
      }
      if (e.payload.size() > limits.max_payload_bytes) {
        return too_large("segment payload length", e.payload.size(), limits.max_payload_bytes);
      }
      out.append(reinterpret_cast<const char*>(e.dot.replica.data()), kReplicaBytes);
      put_le<std::uint64_t>(out, e.dot.counter);
      put_le<std::uint64_t>(out, e.hlc);
      put_le<std::uint32_t>(out, static_cast<std::uint32_t>(e.payload.size()));
      out.append(e.payload);
      const PayloadDigest d = payload_digest(e.payload);
      out.append(reinterpret_cast<const char*>(d.data()), d.size());
    }
    if (out.size() + kTrailerBytes > limits.max_segment_bytes) {
      return too_large("segment size in bytes", out.size() + kTrailerBytes,
                       limits.max_segment_bytes);
    }
  }
  put_le<std::uint64_t>(out, XXH64(out.data(), out.size(), 0));
  return out;
}

Result<Segment> decode_segment(std::string_view bytes, const SegmentLimits& limits) {
  if (bytes.size() > limits.max_segment_bytes) {
    return too_large("segment size in bytes", bytes.size(), limits.max_segment_bytes);
  }
  if (bytes.size() < kSegmentMagic.size() ||
      bytes.substr(0, kSegmentMagic.size()) != kSegmentMagic) {
    return Status(Detail::kBadMagic, "not a Shoal segment (bad magic)");
  }
  Reader in(bytes);
  (void)in.take(kSegmentMagic.size(), "magic");
  SHOAL_ASSIGN_OR_RETURN(const std::uint16_t version, in.le<std::uint16_t>("version"));
  if (version != kSegmentVersion) {
    return Status(Detail::kVersionMismatch, "segment version " + std::to_string(version) +
                                                " is not supported (this build reads " +
                                                std::to_string(kSegmentVersion) + ")");
  }
  if (bytes.size() < kHeaderFixed + 4 + kTrailerBytes) {
    return Status(Detail::kTruncated, "segment is " + std::to_string(bytes.size()) +
                                          " bytes, shorter than an empty segment");
  }
  const std::string_view body = bytes.substr(0, bytes.size() - kTrailerBytes);
  Reader trailer(bytes.substr(body.size()));
  SHOAL_ASSIGN_OR_RETURN(const std::uint64_t want, trailer.le<std::uint64_t>("trailer"));
  if (XXH64(body.data(), body.size(), 0) != want) {
    return Status(Detail::kChecksumMismatch, "segment trailer checksum does not match");
  }
  in = Reader(body);
  (void)in.take(kSegmentMagic.size() + 2, "magic");
  SHOAL_ASSIGN_OR_RETURN(const std::uint16_t flags, in.le<std::uint16_t>("flags"));
  if (flags != 0) {
    return Status(Code::kCorruption, "segment flags " + std::to_string(flags) + " are not 0");
  }
  SHOAL_ASSIGN_OR_RETURN(const std::uint16_t coll_len, in.le<std::uint16_t>("collection length"));
  if (coll_len == 0) return Status(Code::kCorruption, "segment collection name is empty");
  if (coll_len > limits.max_collection_bytes) {
    return too_large("segment collection name length", coll_len, limits.max_collection_bytes);
  }
  Segment seg;
  SHOAL_ASSIGN_OR_RETURN(const std::string_view coll, in.take(coll_len, "collection name"));
  seg.collection.assign(coll);
  SHOAL_ASSIGN_OR_RETURN(const std::uint32_t count, in.le<std::uint32_t>("record count"));
  if (count > limits.max_records) return too_large("segment record count", count, limits.max_records);
  // Each record takes at least 2 + 1 + 4 + one entry; refuse counts the bytes cannot hold.
  if (count > in.remaining() / (2 + 1 + 4 + kEntryFixed + kPayloadDigestBytes)) {
    return Status(Detail::kTruncated, "segment record count " + std::to_string(count) +
                                          " does not fit in its bytes");
  }
  seg.records.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    SHOAL_ASSIGN_OR_RETURN(const std::uint16_t id_len, in.le<std::uint16_t>("record id length"));
    if (id_len == 0) return Status(Code::kCorruption, "segment record id is empty");
    if (id_len > limits.max_id_bytes) return too_large("segment record id length", id_len, limits.max_id_bytes);
    SHOAL_ASSIGN_OR_RETURN(const std::string_view id, in.take(id_len, "record id"));
    SegmentRecord r;
    r.id.assign(id);
    SHOAL_RETURN_IF_ERROR(
        check_record_order(seg.records.empty() ? nullptr : &seg.records.back(), r, Code::kCorruption));
    SHOAL_ASSIGN_OR_RETURN(const std::uint32_t n, in.le<std::uint32_t>("entry count"));
    if (n == 0) return Status(Code::kCorruption, "segment record has no entries", r.id);
    if (n > limits.max_entries_per_record) {
      return too_large("segment record entry count", n, limits.max_entries_per_record);
    }
    if (n > in.remaining() / (kEntryFixed + kPayloadDigestBytes)) {
      return Status(Detail::kTruncated, "segment entry count " + std::to_string(n) +
                                            " does not fit in its bytes", r.id);
    }
    r.entries.reserve(n);
    for (std::uint32_t j = 0; j < n; ++j) {
      SegmentEntry e;
      SHOAL_ASSIGN_OR_RETURN(const std::string_view replica, in.take(kReplicaBytes, "dot replica"));
      std::memcpy(e.dot.replica.data(), replica.data(), kReplicaBytes);
      SHOAL_ASSIGN_OR_RETURN(e.dot.counter, in.le<std::uint64_t>("dot counter"));
      if (e.dot.counter == 0) return Status(Code::kCorruption, "segment dot counter is 0", r.id);
      if (!r.entries.empty() && !(r.entries.back().dot < e.dot)) {
        return Status(Code::kCorruption, "segment record dots are not strictly ascending", r.id);
      }
      SHOAL_ASSIGN_OR_RETURN(e.hlc, in.le<std::uint64_t>("clock"));
      SHOAL_ASSIGN_OR_RETURN(const std::uint32_t plen, in.le<std::uint32_t>("payload length"));
      if (plen > limits.max_payload_bytes) {
        return too_large("segment payload length", plen, limits.max_payload_bytes);
      }
      SHOAL_ASSIGN_OR_RETURN(const std::string_view payload, in.take(plen, "payload"));
      SHOAL_ASSIGN_OR_RETURN(const std::string_view digest,
                             in.take(kPayloadDigestBytes, "payload digest"));
      const PayloadDigest d = payload_digest(payload);
      if (std::memcmp(d.data(), digest.data(), d.size()) != 0) {
        return Status(Detail::kChecksumMismatch, "segment payload digest does not match", r.id);
      }
      e.payload.assign(payload);
      r.entries.push_back(std::move(e));
    }
    seg.records.push_back(std::move(r));
  }
  if (in.remaining() != 0) {
    return Status(Code::kCorruption, std::to_string(in.remaining()) +
                                         " bytes follow the last record before the trailer");
  }
  return seg;
}

Result<std::string> segment_collection(std::string_view b) {
  // magic 8 | version u16 | flags u16 | coll_len u16 | collection (docs/sink-format.md)
  constexpr std::size_t kHeader = 14;
  if (b.size() < kHeader) {
    return Status(Detail::kTruncated, "segment of " + std::to_string(b.size()) + " bytes has no header");
  }
  if (b.substr(0, kSegmentMagic.size()) != kSegmentMagic) return Status(Detail::kBadMagic, "not a segment (bad magic)");
  const std::size_t len = static_cast<std::uint8_t>(b[12]) | (std::size_t{static_cast<std::uint8_t>(b[13])} << 8);
  if (b.size() < kHeader + len) return Status(Detail::kTruncated, "segment header ends inside the collection name");
  return std::string(b.substr(kHeader, len));
}

}  // namespace shoal::sink
