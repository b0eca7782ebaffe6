#include "node/core/delta_buffer.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "common/assert.hpp"
#include "common/log.hpp"
#include "crdt/codec.hpp"
#include "node/core/vector_store.hpp"

namespace shoal::node {

DeltaBuffer::DeltaBuffer(std::uint64_t max_entries) : max_entries_(std::max<std::uint64_t>(1, max_entries)) {}

void DeltaBuffer::check() const { SHOAL_ASSERT(oldest_ >= 1 && oldest_ <= last_ + 1); }

Status DeltaBuffer::load(store::ReadView& txn) {
  last_ = 0;
  oldest_ = 1;
  Status err;
  SHOAL_RETURN_IF_ERROR(txn.scan(store::Table::kDeltas, store::Range::all().limited(1), [&](std::string_view k, std::string_view) {
    auto seq = store::decode_u64_be(k);
    if (!seq.ok()) err = seq.status();
    oldest_ = seq.value_or(1);
    return false;
  }));
  SHOAL_RETURN_IF_ERROR(txn.scan(store::Table::kDeltas, store::Range::all().reversed().limited(1),
                                 [&](std::string_view k, std::string_view) {
                                   auto seq = store::decode_u64_be(k);
                                   if (!seq.ok()) err = seq.status();
                                   last_ = seq.value_or(0);
                                   return false;
                                 }));
  SHOAL_RETURN_IF_ERROR(err);
  // What was trimmed: without it, a buffer trimmed empty would restart its sequence at 1 and
  // reuse numbers that peers' stored positions already cover (shoal-sim --seed 5225 --no-repair
  // lost those entries on the delta path).
  std::uint64_t trimmed = 0;
  if (auto t = txn.get(store::Table::kMeta, format::kDeltaTrimmedKey); t.ok()) {
    auto v = store::decode_u64_be(*t);
    if (!v.ok()) return Status(Code::kCorruption, "undecodable " + std::string(format::kDeltaTrimmedKey), "meta");
    trimmed = *v;
  } else if (t.status().code() != Code::kNotFound) {
    return t.status();
  }
  if (last_ == 0) {
    last_ = trimmed;
    oldest_ = trimmed + 1;
  } else if (oldest_ <= trimmed) {
    return Status(Code::kCorruption,
                  str_cat("delta buffer entry ", oldest_, " at or below the trimmed sequence ", trimmed), "deltas");
  }
  if (oldest_ == 0 || oldest_ > last_ + 1) {
    return Status(Code::kCorruption, str_cat("delta buffer extent ", oldest_, "..", last_), "deltas");
  }
  return {};
}

Result<std::uint64_t> DeltaBuffer::migrate(store::Store& st, std::size_t batch) {
  {
    SHOAL_ASSIGN_OR_RETURN(auto r, st.begin_read());
    auto got = r->get(store::Table::kMeta, format::kBufferSkeletonsKey);
    if (got.ok()) return std::uint64_t{0};
    if (got.status().code() != Code::kNotFound) return got.status();
  }
  std::uint64_t rewritten = 0;
  std::uint64_t after = 0;  // the last sequence visited; the next batch starts past it
  while (true) {
    SHOAL_ASSIGN_OR_RETURN(auto txn, st.begin_write());
    std::vector<std::pair<std::string, std::string>> todo;
    std::size_t visited = 0;
    Status err;
    const store::Range range{store::encode_u64_be(after + 1), std::nullopt, false, batch};
    SHOAL_RETURN_IF_ERROR(txn->scan(store::Table::kDeltas, range, [&](std::string_view k, std::string_view v) {
      ++visited;
      auto seq = store::decode_u64_be(k);
      auto entry = format::decode_buffer_entry(v);
      if (!seq.ok() || !entry.ok()) {
        err = Status(Code::kCorruption, "bad delta buffer entry", "deltas");
        return false;
      }
      after = *seq;
      if (entry->skeleton || entry->cid == format::kCatalogueCid) return true;
      auto delta = crdt::decode_delta(format::as_bytes(entry->stored));
      if (!delta.ok()) {
        err = delta.status().with_context(str_cat("delta buffer entry ", *seq));
        return false;
      }
      todo.emplace_back(std::string(k), format::encode_buffer_entry(entry->cid, entry->has_origin ? &entry->origin : nullptr,
                                                                   entry->origin_hot, *delta, /*skeleton=*/true));
      return true;
    }));
    SHOAL_RETURN_IF_ERROR(err);
    for (const auto& [k, v] : todo) SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kDeltas, k, v));
    rewritten += todo.size();
    const bool done = visited < batch;
    if (done) SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kMeta, format::kBufferSkeletonsKey, std::string(1, '\1')));
    SHOAL_RETURN_IF_ERROR(txn->commit());
    if (done) return rewritten;
  }
}

Status DeltaBuffer::append(store::WriteTxn& txn, Cursor& cursor, std::uint32_t cid, const Origin* origin,
                           const crdt::Delta& delta) const {
  // A collection's payloads are in its records (put in this transaction): the entry keeps the
  // dots (D51). The catalogue's state is a meta value, not records: its entries stay whole.
  const std::string entry = format::encode_buffer_entry(cid, origin == nullptr ? nullptr : &origin->peer,
                                                        origin != nullptr && origin->hot, delta,
                                                        /*skeleton=*/cid != format::kCatalogueCid);
  SHOAL_RETURN_IF_ERROR(txn.put(store::Table::kDeltas, store::encode_u64_be(++cursor.last), entry));
  // Bounded: peers that fall further behind than this are repaired by digest.
  while (cursor.last - cursor.oldest + 1 > max_entries_) {
    SHOAL_RETURN_IF_ERROR(txn.del(store::Table::kDeltas, store::encode_u64_be(cursor.oldest++)));
  }
  return {};
}

bool DeltaBuffer::commit(const Cursor& cursor) {
  SHOAL_ASSERT(cursor.last >= last_ && cursor.oldest >= oldest_);
  const bool grew = cursor.last > last_;
  last_ = cursor.last;
  oldest_ = cursor.oldest;
  check();
  return grew;
}

Status DeltaBuffer::trim_through(store::Store& store, std::uint64_t seq) {
  if (seq < oldest_) return {};
  SHOAL_ASSERT(seq <= last_);
  SHOAL_ASSIGN_OR_RETURN(auto txn, store.begin_write());
  for (std::uint64_t s = oldest_; s <= seq; ++s) {
    SHOAL_RETURN_IF_ERROR(txn->del(store::Table::kDeltas, store::encode_u64_be(s)));
  }
  SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kMeta, format::kDeltaTrimmedKey, store::encode_u64_be(seq)));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  oldest_ = seq + 1;
  check();
  return {};
}

void DeltaBuffer::drop_for_testing(store::Store& store, std::uint64_t first, std::uint64_t last) {
  auto w = store.begin_write();
  if (!w.ok()) return;
  bool ok = true;
  for (std::uint64_t s = std::max(first + 1, oldest_); s <= last && ok; ++s) {
    ok = (*w)->del(store::Table::kDeltas, store::encode_u64_be(s)).ok();
  }
  if (ok && (*w)->commit().ok() && first + 1 <= oldest_) oldest_ = std::max(oldest_, last + 1);
}

Status DeltaBuffer::scan(store::ReadView& txn, std::uint64_t after, std::size_t max, EntryVisitor visit) const {
  Status err;
  SHOAL_RETURN_IF_ERROR(txn.scan(store::Table::kDeltas, store::Range{store::encode_u64_be(after + 1), std::nullopt, false, max},
                                 [&](std::string_view k, std::string_view v) {
                                   auto seq = store::decode_u64_be(k);
                                   auto entry = format::decode_buffer_entry(v);
                                   if (!seq.ok() || !entry.ok()) {
                                     err = Status(Code::kCorruption, "bad delta buffer entry", "deltas");
                                     return false;
                                   }
                                   return visit(*seq, *entry);
                                 }));
  return err;
}

Result<crdt::Delta> DeltaBuffer::delta_of(store::ReadView& txn, const format::BufferEntry& entry) {
  auto decoded = crdt::decode_delta(format::as_bytes(entry.stored));
  if (!decoded.ok()) return decoded.status().with_context("delta buffer entry");
  crdt::Delta delta = std::move(decoded).value();
  if (!entry.skeleton) return delta;
  for (auto& [id, entries] : delta.records) {
    if (entries.empty()) continue;  // a delete names no entries: nothing to fill
    const std::string key = format::record_key(entry.cid, id);
    auto got = txn.get(store::Table::kRecords, key);
    if (!got.ok()) {
      if (got.status().code() != Code::kNotFound) return got.status();
      entries.clear();  // every dot of it was removed here since: context only
      continue;
    }
    SHOAL_ASSIGN_OR_RETURN(auto rec, format::read_record(txn, entry.cid, key, *got));
    // Both lists are sorted by dot: keep the skeleton's dots still live, with their stored entry.
    crdt::Entries live;
    auto cur = rec.entries.begin();
    for (const auto& bone : entries) {
      while (cur != rec.entries.end() && cur->dot < bone.dot) ++cur;
      if (cur != rec.entries.end() && cur->dot == bone.dot) live.push_back(std::move(*cur));
    }
    entries = std::move(live);
  }
  return delta;
}

Result<std::string_view> DeltaBuffer::delta_bytes(store::ReadView& txn, const format::BufferEntry& entry,
                                                  std::string& scratch) {
  if (!entry.skeleton) return entry.stored;
  SHOAL_ASSIGN_OR_RETURN(auto delta, delta_of(txn, entry));
  crdt::Bytes out;
  crdt::encode_delta(delta, out);
  scratch.assign(format::as_view(out));
  return std::string_view(scratch);
}

}  // namespace shoal::node
