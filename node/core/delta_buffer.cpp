#include "node/core/delta_buffer.hpp"

#include <algorithm>

#include "common/assert.hpp"
#include "common/log.hpp"

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

Status DeltaBuffer::append(store::WriteTxn& txn, Cursor& cursor, std::uint32_t cid, const Origin* origin,
                           const crdt::Delta& delta) const {
  const std::string entry =
      format::encode_buffer_entry(cid, origin == nullptr ? nullptr : &origin->peer, origin != nullptr && origin->hot, delta);
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

}  // namespace shoal::node
