// node/core/vector_store.cpp: records with their winner's vector in the vectors table
// (node/core/vector_store.hpp; docs/node-format.md, "Vectors apart from their records").
#include "node/core/vector_store.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "common/log.hpp"

namespace shoal::node {

using store::Table;

namespace format {

namespace {

// A payload starts with u8 version and u32 (little-endian) dimension, then the floats.
constexpr std::size_t kDimOffset = 1;
constexpr std::size_t kVectorOffset = 5;

std::uint32_t payload_dimension(const crdt::Bytes& p) noexcept {
  std::uint32_t dim = 0;
  std::memcpy(&dim, p.data() + kDimOffset, sizeof(dim));
  return dim;
}

void set_payload_dimension(crdt::Bytes& p, std::uint32_t dim) noexcept {
  std::memcpy(p.data() + kDimOffset, &dim, sizeof(dim));
}

std::uint32_t cid_of_record_key(std::string_view key) noexcept {
  std::uint32_t cid = 0;
  for (std::size_t i = 0; i < 4 && i < key.size(); ++i) cid = (cid << 8) | static_cast<unsigned char>(key[i]);
  return cid;
}

// Slab layout constants (vector_store.hpp, "Vector slabs"): LMDB's page, the header of its
// first overflow page, the largest value it keeps in a leaf page (12-byte keys, 4 KiB pages:
// about 2,018 bytes; below this a slab's pages are not its own), the largest slab we choose.
constexpr std::uint64_t kPageBytes = 4096;
constexpr std::uint64_t kOverflowHeader = 16;
constexpr std::uint64_t kLeafValueMax = 2048;
constexpr std::uint64_t kSlabMaxBytes = 64 * 1024;
constexpr std::uint64_t kSlabTrailer = 8;  // u32 n, u32 dimension

std::uint64_t bitmap_bytes(std::uint64_t n) noexcept { return ((n + 7) / 8 + 3) / 4 * 4; }
// The bytes after the slots: the presence bitmap and the trailer.
std::uint64_t slab_tail(std::uint64_t n) noexcept { return bitmap_bytes(n) + kSlabTrailer; }
// A slab value holding its first k slots (k = n: every slot).
std::uint64_t slab_bytes(std::uint64_t k, std::uint64_t n, std::uint64_t dim) noexcept {
  return k * dim * sizeof(float) + slab_tail(n);
}
std::uint64_t slab_bytes(std::uint64_t n, std::uint64_t dim) noexcept { return slab_bytes(n, n, dim); }
// The fewest slots a slab is stored with: enough for a value of kLeafValueMax bytes or more, so
// that it lives on overflow pages of its own, 4-byte aligned (docs/node-format.md, "Vector slabs").
std::uint64_t min_stored_slots(std::uint64_t n, std::uint64_t dim) noexcept {
  const std::uint64_t vbytes = dim * sizeof(float);
  const std::uint64_t tail = slab_tail(n);
  const std::uint64_t k = tail >= kLeafValueMax ? 1 : (kLeafValueMax - tail + vbytes - 1) / vbytes;
  return std::clamp<std::uint64_t>(k, 1, n);
}

std::uint32_t load_u32(const char* p) noexcept {
  std::uint32_t v = 0;
  std::memcpy(&v, p, sizeof(v));
  return v;  // little-endian hosts only (as every on-disk integer here; docs/node-format.md)
}

bool bit_set(const char* bitmap, std::uint64_t i) noexcept {
  return ((static_cast<unsigned char>(bitmap[i / 8]) >> (i % 8)) & 1u) != 0;
}

// Slot i's floats in a slab value of this shape (n slots of `dim` floats, of which the value
// stores the first ones), or nullptr when the value has no such shape, does not store slot i, or
// slot i is empty.
const char* slab_slot(std::string_view v, std::uint32_t n, std::uint32_t dim, std::uint64_t i) noexcept {
  const std::uint64_t vbytes = std::uint64_t{dim} * sizeof(float);
  const std::uint64_t tail = slab_tail(n);
  if (i >= n || v.size() < tail + (i + 1) * vbytes || v.size() > slab_bytes(n, dim) ||
      (v.size() - tail) % vbytes != 0) {
    return nullptr;
  }
  if (!bit_set(v.data() + (v.size() - tail), i)) return nullptr;
  return v.data() + i * vbytes;
}

// Whether the meta table holds `key` (a migration's done mark).
Result<bool> meta_present(store::Store& st, std::string_view key) {
  SHOAL_ASSIGN_OR_RETURN(auto r, st.begin_read());
  auto got = r->get(Table::kMeta, key);
  if (got.ok()) return true;
  if (got.status().code() != Code::kNotFound) return got.status();
  return false;
}

// One parsed slab value.
struct Slab {
  std::uint64_t first = 0;
  std::uint32_t n = 0;
  std::uint32_t dim = 0;
  std::uint64_t stored = 0;  // the slots the value holds: the first `stored` of n
  std::string_view bytes;

  const char* slot(std::uint64_t label) const noexcept {
    return label >= first && label - first < n ? slab_slot(bytes, n, dim, label - first) : nullptr;
  }
  const char* bitmap() const noexcept { return bytes.data() + stored * dim * sizeof(float); }
};

Result<Slab> parse_slab(std::string_view key, std::string_view value) {
  Slab s;
  if (key.size() != 12) return Status(Code::kCorruption, str_cat("vector slab key of ", key.size(), " bytes"));
  SHOAL_ASSIGN_OR_RETURN(s.first, store::decode_u64_be(key.substr(4)));
  if (value.size() < kSlabTrailer) {
    return Status(Code::kCorruption, str_cat("vector slab of ", value.size(), " bytes"), str_cat("slab ", s.first));
  }
  s.n = load_u32(value.data() + value.size() - 8);
  s.dim = load_u32(value.data() + value.size() - 4);
  const auto bad = [&] {
    return Status(Code::kCorruption,
                  str_cat("vector slab of ", value.size(), " bytes says ", s.n, " vectors of dimension ", s.dim,
                          " from label ", s.first),
                  str_cat("slab ", s.first));
  };
  // The value stores its first `stored` slots (1..n), then the bitmap of all n, then the trailer.
  if (s.dim == 0 || s.n != slab_vectors(s.dim) || s.first % s.n != 0 || value.size() < slab_bytes(1, s.n, s.dim) ||
      value.size() > slab_bytes(s.n, s.dim) || (value.size() - slab_tail(s.n)) % (std::uint64_t{s.dim} * sizeof(float)) != 0) {
    return bad();
  }
  s.stored = (value.size() - slab_tail(s.n)) / (std::uint64_t{s.dim} * sizeof(float));
  s.bytes = value;
  for (std::uint64_t i = s.stored; i < s.n; ++i) {
    if (bit_set(s.bitmap(), i)) return bad();  // a vector said present in a slot the value lacks
  }
  return s;
}

// A slab being changed, with all n slots in memory; value() is the stored form: the slots up to
// the last present one (at least min_stored_slots), the bitmap, the trailer.
class SlabImage {
 public:
  SlabImage(std::uint32_t n, std::uint32_t dim)
      : n_(n), dim_(dim), slots_(std::uint64_t{n} * dim * sizeof(float), '\0'), bitmap_(bitmap_bytes(n), '\0') {}
  explicit SlabImage(const Slab& s) : SlabImage(s.n, s.dim) {
    std::memcpy(slots_.data(), s.bytes.data(), s.stored * s.dim * sizeof(float));
    std::memcpy(bitmap_.data(), s.bitmap(), bitmap_.size());
  }
  std::uint32_t dim() const noexcept { return dim_; }
  void set(std::uint64_t i, std::string_view floats) noexcept {
    std::memcpy(slots_.data() + i * floats.size(), floats.data(), floats.size());
    bitmap_[i / 8] = static_cast<char>(bitmap_[i / 8] | (1u << (i % 8)));
  }
  void clear(std::uint64_t i) noexcept {
    const std::size_t vbytes = std::size_t{dim_} * sizeof(float);
    std::memset(slots_.data() + i * vbytes, 0, vbytes);
    bitmap_[i / 8] = static_cast<char>(bitmap_[i / 8] & ~(1u << (i % 8)));
  }
  bool empty() const noexcept {
    return std::all_of(bitmap_.begin(), bitmap_.end(), [](char c) { return c == 0; });
  }
  // The stored form, into `out` (reused across calls).
  void value(std::string& out) const {
    std::uint64_t last = 0;  // one past the last present slot
    for (std::uint64_t i = n_; i > 0; --i) {
      if (bit_set(bitmap_.data(), i - 1)) {
        last = i;
        break;
      }
    }
    const std::uint64_t stored = std::max(last, min_stored_slots(n_, dim_));
    out.assign(slots_.data(), stored * dim_ * sizeof(float));
    out.append(bitmap_);
    out.append(reinterpret_cast<const char*>(&n_), sizeof(n_));
    out.append(reinterpret_cast<const char*>(&dim_), sizeof(dim_));
  }

 private:
  std::uint32_t n_;
  std::uint32_t dim_;
  std::string slots_;
  std::string bitmap_;
};

// The slab holding `label`'s slot, whatever the collection's dimension: the last slab key at or
// before vector_key(cid, label). `use` sees it during the scan (its view is valid then only).
// kNotFound when no slab covers the label.
Status with_slab_of(store::ReadView& view, std::uint32_t cid, std::uint64_t label,
                    store::FunctionRef<void(const Slab&)> use) {
  store::Range range;
  range.begin = u32_be(cid);
  range.end = vector_key(cid, label) + std::string(1, '\0');
  range.reverse = true;
  range.limit = 1;
  Status out(Code::kNotFound, str_cat("no vector slab holds label ", label));
  SHOAL_RETURN_IF_ERROR(view.scan(Table::kVectorSlabs, range, [&](std::string_view k, std::string_view v) {
    auto slab = parse_slab(k, v);
    if (!slab.ok()) {
      out = slab.status();
    } else if (label - slab->first < slab->n) {
      use(*slab);
      out = Status();
    }
    return false;
  }));
  return out;
}

// Rewrites slabs in one write transaction, keeping the last one in memory so that consecutive
// labels of one slab cost one put (the migration); flush() before the transaction commits.
class SlabWriter {
 public:
  explicit SlabWriter(store::WriteTxn& txn) noexcept : txn_(&txn) {}

  Status add(std::uint32_t cid, std::uint64_t label, std::string_view floats) {
    if (floats.empty() || floats.size() % sizeof(float) != 0) {
      return Status(Code::kInternal, str_cat("a vector of ", floats.size(), " bytes"), str_cat("label ", label));
    }
    const auto dim = static_cast<std::uint32_t>(floats.size() / sizeof(float));
    const std::uint32_t n = slab_vectors(dim);
    const std::uint64_t first = label - label % n;
    std::string key = vector_key(cid, first);
    if (!slab_ || key != key_) {
      SHOAL_RETURN_IF_ERROR(flush());
      auto got = txn_->get_view(Table::kVectorSlabs, key);
      if (got.ok()) {
        SHOAL_ASSIGN_OR_RETURN(Slab old, parse_slab(key, *got));
        if (old.dim != dim) {
          return Status(Code::kCorruption, str_cat("vector slab of dimension ", old.dim, " given a vector of ", dim),
                        str_cat("label ", label));
        }
        slab_.emplace(old);
      } else if (got.status().code() == Code::kNotFound) {
        slab_.emplace(n, dim);
      } else {
        return got.status();
      }
      key_ = std::move(key);
    }
    slab_->set(label - first, floats);
    dirty_ = true;
    return {};
  }

  Status flush() {
    if (!dirty_) return {};
    dirty_ = false;
    slab_->value(value_);
    return txn_->put(Table::kVectorSlabs, key_, value_);
  }

 private:
  store::WriteTxn* txn_;
  std::string key_;                 // the slab in slab_
  std::optional<SlabImage> slab_;   // none before the first
  std::string value_;               // its stored form, reused
  bool dirty_ = false;
};

}  // namespace

std::string vector_key(std::uint32_t cid, std::uint64_t label) {
  std::string k = u32_be(cid);
  k += store::encode_u64_be(label);
  return k;
}

std::uint32_t slab_vectors(std::uint32_t dimension) noexcept {
  if (dimension == 0) return 1;
  thread_local std::pair<std::uint32_t, std::uint32_t> memo{0, 0};  // dimension -> n
  if (memo.first == dimension) return memo.second;
  const std::uint64_t cap = std::max(kSlabMaxBytes, slab_bytes(1, dimension));
  std::uint64_t best = 1;
  double best_waste = 2.0;
  for (std::uint64_t n = 1; slab_bytes(n, dimension) <= cap; ++n) {
    const std::uint64_t bytes = slab_bytes(n, dimension);
    if (bytes < kLeafValueMax) continue;
    const std::uint64_t pages = (bytes + kOverflowHeader + kPageBytes - 1) / kPageBytes;
    const double waste = 1.0 - static_cast<double>(n * dimension * sizeof(float)) /
                                   static_cast<double>(pages * kPageBytes);
    if (waste <= 0.02) {
      best = n;
      break;
    }
    if (waste < best_waste) {
      best = n;
      best_waste = waste;
    }
  }
  memo = {dimension, static_cast<std::uint32_t>(best)};
  return memo.second;
}

Result<std::string_view> get_vector(store::ReadView& view, std::uint32_t cid, std::uint32_t dimension,
                                    std::uint64_t label) {
  const std::uint32_t n = slab_vectors(dimension);
  const std::string key = vector_key(cid, label - label % n);
  SHOAL_ASSIGN_OR_RETURN(std::string_view v, view.get_view(Table::kVectorSlabs, key));
  SHOAL_ASSIGN_OR_RETURN(Slab slab, parse_slab(key, v));
  if (slab.dim != dimension) {
    return Status(Code::kCorruption, str_cat("vector slab of dimension ", slab.dim, ", the collection's is ", dimension),
                  str_cat("label ", label));
  }
  const char* p = slab.slot(label);
  if (p == nullptr) return Status(Code::kNotFound, str_cat("label ", label, " has no vector"));
  return std::string_view(p, std::size_t{dimension} * sizeof(float));
}

Status put_vector(store::WriteTxn& txn, std::uint32_t cid, std::uint64_t label, std::string_view floats) {
  // One vector: the new value is built in one pass from the stored one (SlabWriter keeps a whole
  // slab in memory for the many vectors of a migration).
  if (floats.empty() || floats.size() % sizeof(float) != 0) {
    return Status(Code::kInternal, str_cat("a vector of ", floats.size(), " bytes"), str_cat("label ", label));
  }
  const auto dim = static_cast<std::uint32_t>(floats.size() / sizeof(float));
  const std::uint32_t n = slab_vectors(dim);
  const std::uint64_t first = label - label % n;
  const std::uint64_t i = label - first;
  const std::string key = vector_key(cid, first);
  std::string value;
  std::uint64_t stored = std::max<std::uint64_t>(i + 1, min_stored_slots(n, dim));
  auto got = txn.get_view(Table::kVectorSlabs, key);
  if (got.ok()) {
    SHOAL_ASSIGN_OR_RETURN(Slab old, parse_slab(key, *got));
    if (old.dim != dim) {
      return Status(Code::kCorruption, str_cat("vector slab of dimension ", old.dim, " given a vector of ", dim),
                    str_cat("label ", label));
    }
    // Up to the last present slot (a slab written before schema 7 stores all n).
    for (std::uint64_t j = old.stored; j > stored; --j) {
      if (bit_set(old.bitmap(), j - 1)) {
        stored = j;
        break;
      }
    }
    value.reserve(slab_bytes(stored, n, dim));
    value.append(old.bytes.data(), std::min(old.stored, stored) * floats.size());
    value.resize(stored * floats.size(), '\0');
    value.append(old.bitmap(), bitmap_bytes(n));
  } else if (got.status().code() == Code::kNotFound) {
    value.reserve(slab_bytes(stored, n, dim));
    value.resize(stored * floats.size() + bitmap_bytes(n), '\0');
  } else {
    return got.status();
  }
  std::memcpy(value.data() + i * floats.size(), floats.data(), floats.size());
  char& bits = value[stored * floats.size() + i / 8];
  bits = static_cast<char>(bits | (1u << (i % 8)));
  value.append(reinterpret_cast<const char*>(&n), sizeof(n));
  value.append(reinterpret_cast<const char*>(&dim), sizeof(dim));
  return txn.put(Table::kVectorSlabs, key, value);
}

Status del_vector(store::WriteTxn& txn, std::uint32_t cid, std::uint64_t label) {
  std::string key;
  std::optional<SlabImage> slab;
  Status s = with_slab_of(txn, cid, label, [&](const Slab& found) {
    if (found.slot(label) == nullptr) return;  // no vector in its slot
    key = vector_key(cid, found.first);
    slab.emplace(found);
    slab->clear(label - found.first);
  });
  if (s.code() == Code::kNotFound) return {};
  SHOAL_RETURN_IF_ERROR(s);
  if (!slab) return {};
  if (slab->empty()) return txn.del(Table::kVectorSlabs, key);
  std::string value;
  slab->value(value);
  return txn.put(Table::kVectorSlabs, key, value);
}

Status scan_vectors(store::ReadView& view, std::uint32_t cid, std::uint32_t dimension,
                    store::FunctionRef<bool(std::uint64_t label, std::string_view floats)> visit) {
  Status err;
  SHOAL_RETURN_IF_ERROR(
      view.scan(Table::kVectorSlabs, store::Range::prefix(u32_be(cid)), [&](std::string_view k, std::string_view v) {
        auto slab = parse_slab(k, v);
        if (!slab.ok() || slab->dim != dimension) {
          err = slab.ok() ? Status(Code::kCorruption, str_cat("vector slab of dimension ", slab->dim,
                                                              ", the collection's is ", dimension))
                          : slab.status();
          return false;
        }
        for (std::uint64_t i = 0; i < slab->stored; ++i) {
          const char* p = slab_slot(slab->bytes, slab->n, slab->dim, i);
          if (p != nullptr && !visit(slab->first + i, std::string_view(p, std::size_t{dimension} * sizeof(float)))) {
            return false;
          }
        }
        return true;
      }));
  return err;
}

bool payload_elided(const crdt::Bytes& payload) noexcept {
  return payload.size() >= kVectorOffset && payload_dimension(payload) == kElidedDimension;
}

Result<StoredRecord> read_record(store::ReadView& view, std::uint32_t cid, std::string_view key,
                                 std::string_view value) {
  SHOAL_ASSIGN_OR_RETURN(StoredRecord r, decode_record(value, key));
  const crdt::Entry* w = crdt::winner(r.entries);
  if (w == nullptr || !payload_elided(w->payload)) return r;
  // The record does not say its dimension: the slab holding its label does.
  std::string_view floats;
  Status s = with_slab_of(view, cid, r.label, [&](const Slab& slab) {
    if (const char* p = slab.slot(r.label)) floats = std::string_view(p, std::size_t{slab.dim} * sizeof(float));
  });
  if (!s.ok() && s.code() != Code::kNotFound) return s.with_context(std::string(key));
  if (floats.empty()) {
    return Status(Code::kCorruption, str_cat("the vector of label ", r.label, " is missing from the vector slabs"),
                  std::string(key));
  }
  SHOAL_RETURN_IF_ERROR(restore_winner_vector(r.entries, floats).with_context(std::string(key)));
  return r;
}

Result<std::string> elide_winner_vector(crdt::Entries& entries) {
  const crdt::Entry* w = crdt::winner(entries);
  if (w == nullptr || w->payload.size() < kVectorOffset || is_stub_payload(as_view(w->payload))) {
    // Nothing to move: an empty record at most (stored payloads are validated), or an evicted
    // record's stub, which holds no vector.
    return std::string();
  }
  const std::uint32_t dim = payload_dimension(w->payload);
  if (dim == kElidedDimension) return Status(Code::kInternal, "the winner's vector is elided already");
  const std::size_t vbytes = std::size_t{dim} * sizeof(float);
  if (w->payload.size() < kVectorOffset + vbytes) return Status(Code::kInternal, "a payload shorter than its vector");
  crdt::Bytes& p = entries[static_cast<std::size_t>(w - entries.data())].payload;
  std::string floats(reinterpret_cast<const char*>(p.data()) + kVectorOffset, vbytes);
  p.erase(p.begin() + kVectorOffset, p.begin() + static_cast<std::ptrdiff_t>(kVectorOffset + vbytes));
  set_payload_dimension(p, kElidedDimension);
  return floats;
}

Status restore_winner_vector(crdt::Entries& entries, std::string_view floats) {
  const crdt::Entry* w = crdt::winner(entries);
  if (w == nullptr || !payload_elided(w->payload)) return Status(Code::kInternal, "the winner's vector is not elided");
  if (floats.empty() || floats.size() % sizeof(float) != 0) {
    return Status(Code::kCorruption, str_cat("a vector of ", floats.size(), " bytes"));
  }
  crdt::Bytes& p = entries[static_cast<std::size_t>(w - entries.data())].payload;
  crdt::Bytes whole;
  whole.reserve(p.size() + floats.size());
  whole.insert(whole.end(), p.begin(), p.begin() + kVectorOffset);
  set_payload_dimension(whole, static_cast<std::uint32_t>(floats.size() / sizeof(float)));
  const auto* f = reinterpret_cast<const std::uint8_t*>(floats.data());
  whole.insert(whole.end(), f, f + floats.size());
  whole.insert(whole.end(), p.begin() + kVectorOffset, p.end());
  p = std::move(whole);
  return {};
}

Status put_record(store::WriteTxn& txn, std::uint32_t cid, std::string_view key, std::uint64_t label,
                  const crdt::Entries& entries) {
  crdt::Entries stored = entries;
  auto floats = elide_winner_vector(stored);
  if (!floats.ok()) return floats.status().with_context(std::string(key));
  // An empty record at most, or an evicted record's stub: its vector leaves the slabs.
  SHOAL_RETURN_IF_ERROR(floats->empty() ? del_vector(txn, cid, label) : put_vector(txn, cid, label, *floats));
  return txn.put(Table::kRecords, key, encode_record(label, stored));
}

Status del_record(store::WriteTxn& txn, std::uint32_t cid, std::string_view key, std::uint64_t label) {
  if (label != 0) SHOAL_RETURN_IF_ERROR(del_vector(txn, cid, label));
  return txn.del(Table::kRecords, key);
}

Result<RecordValue> decode_stored_payload(const crdt::Entry& e) {
  if (!payload_elided(e.payload)) return decode_entry_payload(e);
  crdt::Bytes p = e.payload;
  set_payload_dimension(p, 0);
  return decode_payload(as_view(p));
}

Result<std::uint64_t> migrate_vectors(store::Store& st, std::size_t batch) {
  SHOAL_ASSIGN_OR_RETURN(const bool done_before, meta_present(st, kVectorsApartKey));
  if (done_before) return std::uint64_t{0};
  std::uint64_t moved = 0;
  std::string after;  // the last key visited; the next batch starts past it
  bool first = true;
  while (true) {
    SHOAL_ASSIGN_OR_RETURN(auto txn, st.begin_write());
    store::Range range = store::Range::all();
    if (!first) range.begin = after + std::string(1, '\0');
    range.limit = batch;
    std::vector<std::pair<std::string, StoredRecord>> todo;
    std::size_t visited = 0;
    Status err;
    SHOAL_RETURN_IF_ERROR(txn->scan(Table::kRecords, range, [&](std::string_view k, std::string_view v) {
      ++visited;
      after = std::string(k);
      auto rec = decode_record(v, k);
      if (!rec.ok()) {
        err = rec.status();
        return false;
      }
      const crdt::Entry* w = crdt::winner(rec->entries);
      if (w != nullptr && w->payload.size() >= kVectorOffset && !payload_elided(w->payload)) {
        todo.emplace_back(std::string(k), std::move(rec).value());
      }
      return true;
    }));
    SHOAL_RETURN_IF_ERROR(err);
    first = false;
    for (const auto& [k, rec] : todo) {
      SHOAL_RETURN_IF_ERROR(put_record(*txn, cid_of_record_key(k), k, rec.label, rec.entries));
    }
    moved += todo.size();
    const bool done = visited < batch;
    if (done) SHOAL_RETURN_IF_ERROR(txn->put(Table::kMeta, kVectorsApartKey, std::string(1, '\1')));
    SHOAL_RETURN_IF_ERROR(txn->commit());
    if (done) return moved;
  }
}

Result<std::uint64_t> migrate_vector_slabs(store::Store& st, std::size_t batch) {
  SHOAL_ASSIGN_OR_RETURN(const bool done_before, meta_present(st, kVectorSlabsKey));
  if (done_before) return std::uint64_t{0};
  std::uint64_t moved = 0;
  while (true) {
    SHOAL_ASSIGN_OR_RETURN(auto txn, st.begin_write());
    // From the start each time: what an earlier batch moved has left the table.
    SHOAL_ASSIGN_OR_RETURN(auto todo, txn->collect(Table::kVectors, store::Range::all().limited(batch)));
    SlabWriter slabs(*txn);
    for (const auto& kv : todo) {
      if (kv.key.size() != 12) {
        return Status(Code::kCorruption, str_cat("vectors table key of ", kv.key.size(), " bytes"));
      }
      SHOAL_ASSIGN_OR_RETURN(std::uint64_t label, store::decode_u64_be(std::string_view(kv.key).substr(4)));
      SHOAL_RETURN_IF_ERROR(slabs.add(cid_of_record_key(kv.key), label, kv.value).with_context("vectors table"));
      SHOAL_RETURN_IF_ERROR(txn->del(Table::kVectors, kv.key));
    }
    SHOAL_RETURN_IF_ERROR(slabs.flush());
    moved += todo.size();
    const bool done = todo.size() < batch;
    if (done) SHOAL_RETURN_IF_ERROR(txn->put(Table::kMeta, kVectorSlabsKey, std::string(1, '\1')));
    SHOAL_RETURN_IF_ERROR(txn->commit());
    if (done) return moved;
  }
}

}  // namespace format

VectorPointerCache::~VectorPointerCache() {
  for (auto& c : chunks_) delete[] c.load(std::memory_order_relaxed);
}

const char* VectorPointerCache::find(std::uint64_t label) const noexcept {
  if (label >= kLabels) return nullptr;
  const Slot* chunk = chunks_[label / kChunkLabels].load(std::memory_order_acquire);
  return chunk == nullptr ? nullptr : chunk[label % kChunkLabels].load(std::memory_order_acquire);
}

void VectorPointerCache::remember(std::uint64_t label, const char* p) noexcept {
  if (label >= kLabels) return;
  std::atomic<Slot*>& dir = chunks_[label / kChunkLabels];
  Slot* chunk = dir.load(std::memory_order_acquire);
  if (chunk == nullptr) {
    Slot* fresh = new (std::nothrow) Slot[kChunkLabels]();  // every slot nullptr
    if (fresh == nullptr) return;
    if (dir.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) {
      chunk = fresh;
    } else {
      delete[] fresh;  // another reader installed one first: `chunk` is it
    }
  }
  chunk[label % kChunkLabels].store(p, std::memory_order_release);
}

namespace {

class StoreFloatReader final : public index::FloatReader {
 public:
  StoreFloatReader(std::unique_ptr<store::ReadTxn> txn, std::shared_ptr<VectorPointerCache> cache, std::uint32_t cid,
                   std::uint32_t dimension)
      : txn_(std::move(txn)),
        cache_(std::move(cache)),
        key_(format::vector_key(cid, 0)),
        dimension_(dimension),
        slab_n_(format::slab_vectors(dimension)) {}

  const float* get(std::uint64_t label) override {
    const char* p = lookup(label);
    if (p == nullptr || !unaligned(p)) return reinterpret_cast<const float*>(p);
    scratch_.resize(dimension_);
    std::memcpy(scratch_.data(), p, std::size_t{dimension_} * sizeof(float));
    return scratch_.data();
  }

  void get_many(std::span<const std::uint64_t> labels, const float** out) override {
    // Per thread (a reader belongs to one thread), so a warm search allocates nothing here.
    thread_local std::vector<std::uint32_t> misses;
    misses.clear();
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const char* p = cache_ != nullptr ? cache_->find(labels[i]) : nullptr;
      out[i] = reinterpret_cast<const float*>(p);  // remembered vectors are aligned and whole
      if (p == nullptr) misses.push_back(static_cast<std::uint32_t>(i));
    }
    // The rest looked up in key order, so consecutive lookups walk the B-tree's pages in order
    // (the branch pages they share stay in cache). Views into the map stay valid together for the
    // transaction's life; only an unaligned vector is copied, each to its own slot.
    std::sort(misses.begin(), misses.end(), [&](std::uint32_t a, std::uint32_t b) { return labels[a] < labels[b]; });
    for (const std::uint32_t i : misses) {
      const char* p = lookup(labels[i]);
      if (p != nullptr && unaligned(p)) {
        if (scratch_.size() < labels.size() * dimension_) scratch_.resize(labels.size() * dimension_);
        float* slot = scratch_.data() + std::size_t{i} * dimension_;
        std::memcpy(slot, p, std::size_t{dimension_} * sizeof(float));
        out[i] = slot;
      } else {
        out[i] = reinterpret_cast<const float*>(p);
      }
    }
  }

 private:
  // The vector's bytes in place, or nullptr when the label has none (or of another size): from
  // the snapshot's pointer cache, else from the vectors table (and then remembered there).
  const char* lookup(std::uint64_t label) {
    if (cache_ != nullptr) {
      if (const char* p = cache_->find(label)) return p;
    }
    const std::uint64_t first = label - label % slab_n_;
    if (slab_.data() == nullptr || first != slab_first_) {
      // The key's last 8 bytes are the slab's first label, big-endian: rewritten in place, no
      // allocation. Labels looked up in order share their slab's lookup.
      for (std::size_t i = 0; i < 8; ++i) key_[4 + i] = static_cast<char>((first >> (56 - 8 * i)) & 0xff);
      auto v = txn_->get_view(Table::kVectorSlabs, key_);
      if (!v.ok()) return nullptr;
      slab_ = *v;
      slab_first_ = first;
    }
    const char* p = format::slab_slot(slab_, slab_n_, dimension_, label - first);
    // Only aligned views are remembered, so get_many can hand a remembered one out as it is.
    if (p != nullptr && cache_ != nullptr && !unaligned(p)) cache_->remember(label, p);
    return p;
  }
  // In place, from the memory map, when aligned (docs/storage.md says why it always is in the
  // vectors table); a copy otherwise.
  static bool unaligned(const char* p) noexcept {
    return reinterpret_cast<std::uintptr_t>(p) % alignof(float) != 0;
  }

  std::unique_ptr<store::ReadTxn> txn_;
  // This snapshot's pointers (nullptr: the store gives no stamp, or a newer snapshot's cache
  // replaced this one's before this reader began). Declared after txn_, so released first.
  std::shared_ptr<VectorPointerCache> cache_;
  std::string key_;
  std::uint32_t dimension_;
  std::uint32_t slab_n_;     // vectors per slab (format::slab_vectors)
  std::string_view slab_;    // the last slab looked up, in the map (valid for txn_'s life)
  std::uint64_t slab_first_ = 0;
  std::vector<float> scratch_;
};

// Whether `a` is a later snapshot than `b` (the map's growth count first: a grown map is newer
// whatever the txnids).
bool newer(const store::ReadTxn::Stamp& a, const store::ReadTxn::Stamp& b) noexcept {
  return a.mapping != b.mapping ? a.mapping > b.mapping : a.snapshot > b.snapshot;
}

}  // namespace

StoreFloatSource::~StoreFloatSource() = default;

std::unique_ptr<index::FloatReader> StoreFloatSource::reader() const {
  auto txn = store_->begin_read();
  if (!txn.ok()) return nullptr;
  const store::ReadTxn::Stamp stamp = (*txn)->stamp();
  std::shared_ptr<VectorPointerCache> cache;
  if (stamp.snapshot != 0) {
    std::shared_ptr<VectorPointerCache> cur = std::atomic_load(&cache_);
    if (cur == nullptr || newer(stamp, cur->stamp())) {
      auto fresh = std::make_shared<VectorPointerCache>(stamp);
      // Installed unless another reader installed one at least as new meanwhile.
      while (!std::atomic_compare_exchange_weak(&cache_, &cur, fresh)) {
        if (cur != nullptr && !newer(stamp, cur->stamp())) break;
      }
      cur = std::atomic_load(&cache_);
    }
    // A reader of an older snapshot than the cache's (it began before a write that a newer
    // reader already saw) does without: the cache's pointers are not its snapshot's.
    if (cur != nullptr && cur->stamp() == stamp) cache = std::move(cur);
  }
  return std::make_unique<StoreFloatReader>(std::move(txn).value(), std::move(cache), cid_, dimension_);
}

}  // namespace shoal::node
