// node/core/vector_store.cpp: records with their winner's vector in the vectors table
// (node/core/vector_store.hpp; docs/node-format.md, "Vectors apart from their records").
#include "node/core/vector_store.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
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

}  // namespace

std::string vector_key(std::uint32_t cid, std::uint64_t label) {
  std::string k = u32_be(cid);
  k += store::encode_u64_be(label);
  return k;
}

bool payload_elided(const crdt::Bytes& payload) noexcept {
  return payload.size() >= kVectorOffset && payload_dimension(payload) == kElidedDimension;
}

Result<StoredRecord> read_record(store::ReadView& view, std::uint32_t cid, std::string_view key,
                                 std::string_view value) {
  SHOAL_ASSIGN_OR_RETURN(StoredRecord r, decode_record(value, key));
  const crdt::Entry* w = crdt::winner(r.entries);
  if (w == nullptr || !payload_elided(w->payload)) return r;
  auto v = view.get_view(Table::kVectors, vector_key(cid, r.label));
  if (!v.ok()) {
    if (v.status().code() != Code::kNotFound) return v.status();
    return Status(Code::kCorruption, str_cat("the vector of label ", r.label, " is missing from the vectors table"),
                  std::string(key));
  }
  if (v->size() % sizeof(float) != 0) {
    return Status(Code::kCorruption, str_cat("the vector of label ", r.label, " has ", v->size(), " bytes"),
                  std::string(key));
  }
  crdt::Entry& e = r.entries[static_cast<std::size_t>(w - r.entries.data())];
  crdt::Bytes whole;
  whole.reserve(e.payload.size() + v->size());
  whole.insert(whole.end(), e.payload.begin(), e.payload.begin() + kVectorOffset);
  set_payload_dimension(whole, static_cast<std::uint32_t>(v->size() / sizeof(float)));
  whole.insert(whole.end(), v->begin(), v->end());
  whole.insert(whole.end(), e.payload.begin() + kVectorOffset, e.payload.end());
  e.payload = std::move(whole);
  return r;
}

Status put_record(store::WriteTxn& txn, std::uint32_t cid, std::string_view key, std::uint64_t label,
                  const crdt::Entries& entries) {
  const crdt::Entry* w = crdt::winner(entries);
  const std::string vkey = vector_key(cid, label);
  if (w == nullptr || w->payload.size() < kVectorOffset || is_stub_payload(as_view(w->payload))) {
    // Nothing to move: an empty record at most (stored payloads are validated), or an evicted
    // record's stub, which holds no vector (its vector leaves the vectors table).
    SHOAL_RETURN_IF_ERROR(txn.del(Table::kVectors, vkey));
    return txn.put(Table::kRecords, key, encode_record(label, entries));
  }
  const std::uint32_t dim = payload_dimension(w->payload);
  if (dim == kElidedDimension) {
    return Status(Code::kInternal, "put_record was given a record whose vector is elided", std::string(key));
  }
  const std::size_t vbytes = std::size_t{dim} * sizeof(float);
  if (w->payload.size() < kVectorOffset + vbytes) {
    return Status(Code::kInternal, "put_record was given a payload shorter than its vector", std::string(key));
  }
  const auto* vp = reinterpret_cast<const char*>(w->payload.data()) + kVectorOffset;
  SHOAL_RETURN_IF_ERROR(txn.put(Table::kVectors, vkey, std::string_view(vp, vbytes)));
  crdt::Entries stored = entries;
  crdt::Entry& e = stored[static_cast<std::size_t>(w - entries.data())];
  e.payload.erase(e.payload.begin() + kVectorOffset,
                  e.payload.begin() + static_cast<std::ptrdiff_t>(kVectorOffset + vbytes));
  set_payload_dimension(e.payload, kElidedDimension);
  return txn.put(Table::kRecords, key, encode_record(label, stored));
}

Status del_record(store::WriteTxn& txn, std::uint32_t cid, std::string_view key, std::uint64_t label) {
  if (label != 0) SHOAL_RETURN_IF_ERROR(txn.del(Table::kVectors, vector_key(cid, label)));
  return txn.del(Table::kRecords, key);
}

Result<RecordValue> decode_stored_payload(const crdt::Entry& e) {
  if (!payload_elided(e.payload)) return decode_entry_payload(e);
  crdt::Bytes p = e.payload;
  set_payload_dimension(p, 0);
  return decode_payload(as_view(p));
}

Result<std::uint64_t> migrate_vectors(store::Store& st, std::size_t batch) {
  {
    SHOAL_ASSIGN_OR_RETURN(auto r, st.begin_read());
    auto got = r->get(Table::kMeta, kVectorsApartKey);
    if (got.ok()) return std::uint64_t{0};
    if (got.status().code() != Code::kNotFound) return got.status();
  }
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
      : txn_(std::move(txn)), cache_(std::move(cache)), key_(format::vector_key(cid, 0)), dimension_(dimension) {}

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
    // The key's last 8 bytes are the label, big-endian: rewritten in place, no allocation.
    for (std::size_t i = 0; i < 8; ++i) key_[4 + i] = static_cast<char>((label >> (56 - 8 * i)) & 0xff);
    auto v = txn_->get_view(Table::kVectors, key_);
    if (!v.ok() || v->size() != std::size_t{dimension_} * sizeof(float)) return nullptr;
    // Only aligned views are remembered, so get_many can hand a remembered one out as it is.
    if (cache_ != nullptr && !unaligned(v->data())) cache_->remember(label, v->data());
    return v->data();
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
    std::shared_ptr<VectorPointerCache> cur = cache_.load();
    if (cur == nullptr || newer(stamp, cur->stamp())) {
      auto fresh = std::make_shared<VectorPointerCache>(stamp);
      // Installed unless another reader installed one at least as new meanwhile.
      while (!cache_.compare_exchange_weak(cur, fresh)) {
        if (cur != nullptr && !newer(stamp, cur->stamp())) break;
      }
      cur = cache_.load();
    }
    // A reader of an older snapshot than the cache's (it began before a write that a newer
    // reader already saw) does without: the cache's pointers are not its snapshot's.
    if (cur != nullptr && cur->stamp() == stamp) cache = std::move(cur);
  }
  return std::make_unique<StoreFloatReader>(std::move(txn).value(), std::move(cache), cid_, dimension_);
}

}  // namespace shoal::node
