#include "node/store/store.hpp"

#include "common/hash.hpp"

namespace shoal::store {

std::string_view table_name(Table table) noexcept {
  switch (table) {
    case Table::kRecords: return "records";
    case Table::kContexts: return "contexts";
    case Table::kDeltas: return "deltas";
    case Table::kCatalogue: return "catalogue";
    case Table::kPeers: return "peers";
    case Table::kMeta: return "meta";
    case Table::kVectors: return "vectors";
    case Table::kIndexDirty: return "index_dirty";
    case Table::kVectorSlabs: return "vector_slabs";
  }
  return "unknown";
}

std::string encode_u64_be(std::uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xffu);
    v >>= 8;
  }
  return out;
}

Result<std::uint64_t> decode_u64_be(std::string_view bytes) {
  if (bytes.size() != 8) {
    return Status(Detail::kTruncated,
                  "expected an 8-byte big-endian u64, got " + std::to_string(bytes.size()) +
                      " bytes");
  }
  std::uint64_t v = 0;
  for (char c : bytes) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

Range Range::prefix(std::string_view p) {
  Range r;
  r.begin = std::string(p);
  // The successor of the prefix: drop trailing 0xff bytes, then increment the last byte.
  std::string succ(p);
  while (!succ.empty() && static_cast<unsigned char>(succ.back()) == 0xffu) succ.pop_back();
  if (!succ.empty()) {
    succ.back() = static_cast<char>(static_cast<unsigned char>(succ.back()) + 1u);
    r.end = std::move(succ);
  }
  return r;
}

Result<std::vector<KeyValue>> ReadView::collect(Table table, const Range& range) {
  std::vector<KeyValue> out;
  Status s = scan(table, range, [&](std::string_view k, std::string_view v) {
    out.push_back(KeyValue{std::string(k), std::string(v)});
    return true;
  });
  if (!s.ok()) return s;
  return out;
}

Status Store::check_key(Table table, std::string_view key) const {
  if (key.empty()) {
    return Status(Detail::kOutOfRange, "empty key", std::string(table_name(table)));
  }
  const std::size_t limit = limits().max_key_bytes;
  if (key.size() > limit) {
    return Status(Detail::kTooLarge,
                  "key of " + std::to_string(key.size()) + " bytes exceeds the limit of " +
                      std::to_string(limit) + " bytes",
                  std::string(table_name(table)));
  }
  return ok_status();
}

Status Store::check_value(Table table, std::string_view key, std::string_view value) const {
  SHOAL_RETURN_IF_ERROR(check_key(table, key));
  const std::size_t limit = limits().max_value_bytes;
  if (value.size() > limit) {
    return Status(Detail::kTooLarge,
                  "value of " + std::to_string(value.size()) + " bytes exceeds the limit of " +
                      std::to_string(limit) + " bytes",
                  std::string(table_name(table)));
  }
  return ok_status();
}

namespace {
void hash_u64(Hasher64& h, std::uint64_t v) {
  const std::string b = encode_u64_be(v);
  h.update(b.data(), b.size());
}
}  // namespace

Result<std::uint64_t> state_hash(ReadView& view) {
  Hasher64 h(0x53686f616c53u);  // "ShoalS": fixed seed, part of no on-disk format
  for (Table t : kAllTables) {
    hash_u64(h, static_cast<std::uint64_t>(t));
    std::uint64_t n = 0;
    Status s = view.scan(t, Range::all(), [&](std::string_view k, std::string_view v) {
      hash_u64(h, k.size());
      h.update(k.data(), k.size());
      hash_u64(h, v.size());
      h.update(v.data(), v.size());
      ++n;
      return true;
    });
    if (!s.ok()) return s;
    hash_u64(h, n);
  }
  return h.digest();
}

Result<std::uint64_t> state_hash(Store& store) {
  SHOAL_ASSIGN_OR_RETURN(auto txn, store.begin_read());
  return state_hash(*txn);
}

}  // namespace shoal::store
