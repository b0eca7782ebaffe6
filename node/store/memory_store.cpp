#include "node/store/memory_store.hpp"

#include <iterator>
#include <optional>

namespace shoal::store {

namespace {

std::size_t index_of(Table t) { return static_cast<std::size_t>(t); }

Status crashed_status() {
  return Status(Code::kUnavailable, "the store crashed; this transaction is gone");
}

// Visits `base` overlaid by `overlay` (nullopt values are deletions) within `range`.
// Works forward and backward over any pair of std::map-like containers.
using Overlay = std::map<std::string, std::optional<std::string>, std::less<>>;

template <typename BaseIt, typename OverIt, typename Before>
void merge_visit(BaseIt b, BaseIt b_end, OverIt o, OverIt o_end, Before before,
                 const std::function<bool(const std::string&)>& in_range, std::uint64_t limit,
                 Visitor visit) {
  std::uint64_t n = 0;
  while (true) {
    const bool b_ok = b != b_end && in_range(b->first);
    const bool o_ok = o != o_end && in_range(o->first);
    if (!b_ok && !o_ok) return;
    std::string_view key;
    std::optional<std::string_view> value;
    if (b_ok && (!o_ok || before(b->first, o->first))) {
      key = b->first;
      value = b->second;
      ++b;
    } else {
      if (b_ok && b->first == o->first) ++b;  // the overlay shadows the base entry
      key = o->first;
      if (o->second) value = *o->second;
      ++o;
    }
    if (!value) continue;
    if (!visit(key, *value)) return;
    if (limit != 0 && ++n >= limit) return;
  }
}

void scan_maps(const MemoryStore::Map& base, const Overlay* overlay, const Range& range,
               Visitor visit) {
  static const Overlay kEmpty;
  const Overlay& over = overlay ? *overlay : kEmpty;
  if (!range.reverse) {
    auto in_range = [&](const std::string& k) { return !range.end || k < *range.end; };
    merge_visit(base.lower_bound(range.begin), base.end(), over.lower_bound(range.begin),
                over.end(), [](const std::string& a, const std::string& b) { return a < b; },
                in_range, range.limit, visit);
  } else {
    auto b_start = range.end ? base.lower_bound(*range.end) : base.end();
    auto o_start = range.end ? over.lower_bound(*range.end) : over.end();
    auto in_range = [&](const std::string& k) { return k >= range.begin; };
    merge_visit(std::make_reverse_iterator(b_start), base.rend(),
                std::make_reverse_iterator(o_start), over.rend(),
                [](const std::string& a, const std::string& b) { return a > b; }, in_range,
                range.limit, visit);
  }
}

}  // namespace

// A snapshot: shares the table versions current at begin.
class MemoryStore::Read final : public ReadTxn {
 public:
  explicit Read(MemoryStore* store) : store_(store), generation_(store->generation_) {
    tables_ = store->tables_;
    ++store_->open_txns_;
  }
  ~Read() override { --store_->open_txns_; }

  Result<std::string> get(Table table, std::string_view key) override {
    SHOAL_ASSIGN_OR_RETURN(std::string_view v, get_view(table, key));
    return std::string(v);
  }
  // The shared map this snapshot holds is never changed while shared (commit copies it first).
  Result<std::string_view> get_view(Table table, std::string_view key) override {
    SHOAL_RETURN_IF_ERROR(check());
    const Map& m = *tables_[index_of(table)];
    auto it = m.find(key);
    if (it == m.end()) return Status(Code::kNotFound, "no such key", std::string(table_name(table)));
    return std::string_view(it->second);
  }
  Status scan(Table table, const Range& range, Visitor visit) override {
    SHOAL_RETURN_IF_ERROR(check());
    scan_maps(*tables_[index_of(table)], nullptr, range, visit);
    return ok_status();
  }
  Result<std::uint64_t> count(Table table) override {
    SHOAL_RETURN_IF_ERROR(check());
    return static_cast<std::uint64_t>(tables_[index_of(table)]->size());
  }

 private:
  Status check() {
    if (generation_ != store_->generation_) return crashed_status();
    return store_->take_read_fault();
  }

  MemoryStore* store_;
  std::uint64_t generation_;
  std::array<std::shared_ptr<Map>, kTableCount> tables_;
};

// Writes go to per-table overlays; commit applies them to the store's tables.
class MemoryStore::Write final : public WriteTxn {
 public:
  explicit Write(MemoryStore* store) : store_(store), generation_(store->generation_) {
    store_->writer_open_ = true;
    ++store_->open_txns_;
  }
  ~Write() override {
    finish();
    --store_->open_txns_;
  }

  Result<std::string> get(Table table, std::string_view key) override {
    SHOAL_ASSIGN_OR_RETURN(std::string_view v, get_view(table, key));
    return std::string(v);
  }
  Result<std::string_view> get_view(Table table, std::string_view key) override {
    SHOAL_RETURN_IF_ERROR(check_read());
    const Overlay& over = overlay_[index_of(table)];
    auto o = over.find(key);
    if (o != over.end()) {
      if (o->second) return std::string_view(*o->second);
      return Status(Code::kNotFound, "no such key", std::string(table_name(table)));
    }
    const Map& m = *store_->tables_[index_of(table)];
    auto it = m.find(key);
    if (it == m.end()) return Status(Code::kNotFound, "no such key", std::string(table_name(table)));
    return std::string_view(it->second);
  }
  Status scan(Table table, const Range& range, Visitor visit) override {
    SHOAL_RETURN_IF_ERROR(check_read());
    scan_maps(*store_->tables_[index_of(table)], &overlay_[index_of(table)], range, visit);
    return ok_status();
  }
  Result<std::uint64_t> count(Table table) override {
    SHOAL_RETURN_IF_ERROR(check_read());
    const Map& m = *store_->tables_[index_of(table)];
    std::uint64_t n = m.size();
    for (const auto& [k, v] : overlay_[index_of(table)]) {
      const bool in_base = m.find(k) != m.end();
      if (v && !in_base) ++n;
      if (!v && in_base) --n;
    }
    return n;
  }

  Status put(Table table, std::string_view key, std::string_view value) override {
    SHOAL_RETURN_IF_ERROR(check_live());
    SHOAL_RETURN_IF_ERROR(store_->check_value(table, key, value));
    auto& over = overlay_[index_of(table)];
    auto it = over.find(key);
    if (it == over.end()) {
      over.emplace(std::string(key), std::string(value));
    } else {
      it->second = std::string(value);
    }
    return ok_status();
  }
  Status del(Table table, std::string_view key) override {
    SHOAL_RETURN_IF_ERROR(check_live());
    SHOAL_RETURN_IF_ERROR(store_->check_key(table, key));
    auto& over = overlay_[index_of(table)];
    auto it = over.find(key);
    if (it == over.end()) {
      over.emplace(std::string(key), std::nullopt);
    } else {
      it->second.reset();
    }
    return ok_status();
  }

  Status commit() override {
    SHOAL_RETURN_IF_ERROR(check_live());
    if (store_->fail_writes_ > 0) {
      --store_->fail_writes_;
      return fail(Status(Code::kIo, "injected write failure"));
    }
    // The byte delta decides whether the commit fits the capacity.
    std::int64_t delta = 0;
    for (std::size_t t = 0; t < kTableCount; ++t) {
      const Map& m = *store_->tables_[t];
      for (const auto& [k, v] : overlay_[t]) {
        auto it = m.find(k);
        if (it != m.end()) delta -= static_cast<std::int64_t>(k.size() + it->second.size());
        if (v) delta += static_cast<std::int64_t>(k.size() + v->size());
      }
    }
    const std::uint64_t after = static_cast<std::uint64_t>(
        static_cast<std::int64_t>(store_->used_bytes_) + delta);
    if (delta > 0 && after > store_->options_.capacity_bytes) {
      return fail(Status(Detail::kDiskFull,
                         "commit needs " + std::to_string(after) + " bytes, capacity is " +
                             std::to_string(store_->options_.capacity_bytes) + " bytes"));
    }
    for (std::size_t t = 0; t < kTableCount; ++t) {
      if (overlay_[t].empty()) continue;
      auto& table = store_->tables_[t];
      // Copy-on-write: a reader still holds this version.
      if (table.use_count() > 1) table = std::make_shared<Map>(*table);
      for (auto& [k, v] : overlay_[t]) {
        if (v) {
          table->insert_or_assign(k, std::move(*v));
        } else {
          auto it = table->find(k);
          if (it != table->end()) table->erase(it);
        }
      }
    }
    store_->used_bytes_ = after;
    finish();
    return ok_status();
  }

  void abort() noexcept override { finish(); }

 private:
  Status check_live() {
    SHOAL_ASSERT(!finished_);  // using a committed or aborted transaction is a bug
    if (generation_ != store_->generation_) return crashed_status();
    return failed_;
  }
  Status check_read() {
    SHOAL_RETURN_IF_ERROR(check_live());
    return store_->take_read_fault();
  }
  Status fail(Status s) {
    failed_ = s;
    for (auto& o : overlay_) o.clear();
    return s;
  }
  void finish() noexcept {
    if (finished_) return;
    finished_ = true;
    for (auto& o : overlay_) o.clear();
    // A transaction from before a crash no longer owns the writer slot.
    if (generation_ == store_->generation_) store_->writer_open_ = false;
  }

  MemoryStore* store_;
  std::uint64_t generation_;
  std::array<Overlay, kTableCount> overlay_;
  Status failed_;
  bool finished_ = false;
};

MemoryStore::MemoryStore(MemoryStoreOptions options) : options_(options) {
  for (auto& t : tables_) t = std::make_shared<Map>();
  const std::string version = encode_u64_be(kSchemaVersion).substr(4);
  tables_[index_of(Table::kMeta)]->emplace(std::string(kSchemaVersionKey), version);
  used_bytes_ = kSchemaVersionKey.size() + version.size();
}

MemoryStore::~MemoryStore() {
  SHOAL_ASSERT(open_txns_ == 0);  // transactions must die before their store
}

Result<std::unique_ptr<ReadTxn>> MemoryStore::begin_read() {
  return std::unique_ptr<ReadTxn>(std::make_unique<Read>(this));
}

Result<std::unique_ptr<WriteTxn>> MemoryStore::begin_write() {
  // Single-threaded: a second writer could only come from the same thread, which would deadlock
  // LMDB. It is a bug.
  SHOAL_ASSERT(!writer_open_);
  return std::unique_ptr<WriteTxn>(std::make_unique<Write>(this));
}

void MemoryStore::crash() noexcept {
  ++generation_;
  writer_open_ = false;
  fail_reads_ = 0;
  fail_writes_ = 0;
}

Status MemoryStore::take_read_fault() {
  if (fail_reads_ > 0) {
    --fail_reads_;
    return Status(Code::kIo, "injected read failure");
  }
  return ok_status();
}

}  // namespace shoal::store
