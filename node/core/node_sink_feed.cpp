// node/core/node_sink_feed.cpp: the cold tier's upload feed (docs/tiers.md, "The sink feed";
// docs/decisions.md, D41). Sans-I/O: the driver (node/mesh/sink_uploader.cpp) asks for the next
// upload, sends it to the sink, and reports the sink's durable acknowledgement.
//
// What goes: the delta buffer's entries of every collection whose tier policy has `sink`, in
// buffer order, consecutive entries of one collection joined into one delta (the sink joins
// deltas exactly as a peer does: sink/sink_service.hpp). Every entry goes, whatever its origin:
// each device that has a sink uploads what it holds, so a change reaches the sink from whichever
// device reaches it first; the sink's join is idempotent, so the copies cost bytes, not
// correctness (D41).
//
// Why a full-state upload exists: the first time the feed runs on a data directory, the buffer
// may no longer hold the writes made before (peers' acknowledgements trimmed them), and a
// buffer that dropped entries at its bound (peers' deltas can push it while the sink is away)
// has the same hole. The feed then sends each sink collection whole, one chunk of records at a
// time, each chunk a delta whose context is only the dots of the entries it carries: it never
// deletes at the sink. (A chunk carrying the collection's whole context would be wrong: the sink
// would merge dots of records in later chunks and then drop them when they arrive, the same rule
// as a repair slice, crdt/digest.hpp.) The delta path resumes after the sequence the full state
// covers.
//
// The last chunk of each collection also carries the dots its context covers that no entry held
// here carries (D74): entries removed here, overwritten or deleted, which the chunks cannot
// remove at the sink, since their contexts cover only their own entries. The sink removes every
// entry it holds of the collection whose dot is in that set, whichever record holds it; so a
// delete or an overwrite made before a hole reaches the sink too. Sound whenever it is computed:
// a dot in the context that no entry carries was removed, and a removal is permanent.
//
// Invariants: the buffer is never trimmed past the acknowledged cursor (nor, during a full-state
// upload, past the sequence it covers): SyncEngine::set_trim_cap. The cursor only moves forward
// and is persisted before an acknowledgement is reported done.
#include <algorithm>
#include <map>
#include <vector>

#include "common/assert.hpp"
#include "crdt/codec.hpp"
#include "node/core/node.hpp"
#include "node/core/node_state.hpp"

namespace shoal::node {

using namespace format;
using store::Table;

namespace {

constexpr std::string_view kSinkFeedKey = "node.sink_feed";
constexpr std::uint8_t kSinkFeedVersion = 1;

void put_u64(std::string& out, std::uint64_t v) { out += store::encode_u64_be(v); }
void put_text(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}

struct Reader {
  std::string_view in;
  bool ok = true;
  std::uint64_t u64() {
    if (in.size() < 8) {
      ok = false;
      return 0;
    }
    auto v = store::decode_u64_be(in.substr(0, 8));
    in.remove_prefix(8);
    return v.ok() ? *v : (ok = false, 0);
  }
  std::string text() {
    const std::uint64_t n = u64();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};

// Leaves the evicted entries (stubs) out of an upload: the sink accepts only whole payloads, and
// with one sink per mesh it has the entry a stub stands for (a stub is made only of entries a
// sink acknowledged: node_evict.cpp). A stub's dot leaves the context with it: the sink judges its
// records against an upload's context, so a covered dot it holds would be removed (D57). The
// record's whole entries still go: they may be concurrent entries this device holds that no
// other device will send, since every device that took the stub leaves it out alike (D69; the
// simulator's seed 829 lost such an entry when the whole record went). A record left with no
// whole entry leaves the upload. Returns how many records had a stub left out.
std::uint64_t drop_stub_entries(crdt::Delta& delta) {
  std::uint64_t n = 0;
  for (auto it = delta.records.begin(); it != delta.records.end();) {
    auto& entries = it->second;
    const auto is_stub = [](const crdt::Entry& e) { return is_stub_payload(as_view(e.payload)); };
    if (std::none_of(entries.begin(), entries.end(), is_stub)) {
      ++it;
      continue;
    }
    ++n;
    for (const crdt::Entry& e : entries) {
      if (is_stub(e)) delta.context.erase(e.dot);
    }
    std::erase_if(entries, is_stub);
    if (entries.empty()) {
      it = delta.records.erase(it);
    } else {
      ++it;
    }
  }
  return n;
}

// D74: the dots of `ctx` that no entry of the collection's records carries, as canonical ranges,
// encoded in pieces of at most `per_piece` ranges. A stub's entry counts as carried: it stands
// for an entry the sink holds whole (node_evict.cpp), which is live.
template <typename Txn>
Result<std::vector<std::string>> removed_dot_pieces(Txn& txn, std::uint32_t cid, const crdt::CausalContext& ctx,
                                                    std::size_t per_piece) {
  std::map<crdt::ReplicaId, std::vector<std::uint64_t>> live;
  Status err;
  SHOAL_RETURN_IF_ERROR(txn.scan(Table::kRecords, store::Range::prefix(collection_prefix(cid)),
                                 [&](std::string_view k, std::string_view v) {
                                   auto rec = format::decode_record(v, k);
                                   if (!rec.ok()) {
                                     err = rec.status();
                                     return false;
                                   }
                                   for (const crdt::Entry& e : rec->entries) live[e.dot.replica].push_back(e.dot.counter);
                                   return true;
                                 }));
  SHOAL_RETURN_IF_ERROR(err);
  std::vector<crdt::DotRange> ranges;
  const auto add = [&ranges](const crdt::ReplicaId& r, std::uint64_t first, std::uint64_t last) {
    if (first > last) return;
    if (!ranges.empty() && ranges.back().replica == r && ranges.back().last + 1 >= first) {
      ranges.back().last = std::max(ranges.back().last, last);
      return;
    }
    ranges.push_back(crdt::DotRange{r, first, last});
  };
  for (const auto& [replica, row] : ctx.rows()) {
    std::vector<std::uint64_t>& held = live[replica];
    std::sort(held.begin(), held.end());
    // The context's counters of this replica as runs: the prefix, then the cloud's runs.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> runs;
    if (row.contiguous > 0) runs.emplace_back(1, row.contiguous);
    for (const std::uint64_t c : row.cloud) {
      if (!runs.empty() && runs.back().second + 1 == c) {
        runs.back().second = c;
      } else {
        runs.emplace_back(c, c);
      }
    }
    auto h = held.begin();
    for (const auto& [first, last] : runs) {
      std::uint64_t from = first;
      h = std::lower_bound(h, held.end(), first);
      for (; h != held.end() && *h <= last; ++h) {
        if (*h > from) add(replica, from, *h - 1);
        from = *h + 1;
      }
      if (from <= last) add(replica, from, last);
    }
  }
  std::vector<std::string> pieces;
  for (std::size_t i = 0; i < ranges.size(); i += per_piece) {
    const std::size_t n = std::min(per_piece, ranges.size() - i);
    crdt::Bytes out;
    crdt::encode_dot_ranges(std::span(ranges).subspan(i, n), out);
    pieces.emplace_back(reinterpret_cast<const char*>(out.data()), out.size());
  }
  return pieces;
}

// The pre-D57 single acknowledged-dot set (every collection's dots in one set, which cannot be
// attributed to a collection): read as acknowledging nothing, and deleted.
constexpr std::string_view kOldSinkAckedKey = "node.sink_acked";
// One per collection: kSinkAckedPrefix + the collection id as 8 big-endian bytes.
constexpr std::string_view kSinkAckedPrefix = "node.sink_acked.";
std::string sink_acked_key(std::uint32_t cid) { return str_cat(kSinkAckedPrefix, store::encode_u64_be(cid)); }

}  // namespace

Status Node::enable_sink_feed(const SinkFeedOptions& options) {
  if (options.quota_entries < 1 || options.quota_entries > options_.delta_buffer_max) {
    return Status(Detail::kOutOfRange, str_cat("sink quota_entries ", options.quota_entries, " outside 1..",
                                               options_.delta_buffer_max, " (the delta buffer's bound)"));
  }
  if (options.max_upload_bytes < 1024 || options.max_upload_entries < 1) {
    return Status(Detail::kOutOfRange, str_cat("sink upload limits ", options.max_upload_bytes, " bytes, ",
                                               options.max_upload_entries, " entries: at least 1024 and 1"));
  }
  const bool was_enabled = sink_.enabled;
  sink_.options = options;
  if (was_enabled) return {};
  sink_.enabled = true;
  // A start that fails (a store fault) leaves the feed off, so the next try runs it whole: one
  // that returned at once would skip the catch-up decided below.
  Status st = load_sink_feed();
  if (!st.ok()) sink_.enabled = false;
  return st;
}

Status Node::load_sink_feed() {
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  auto got = txn->get(Table::kMeta, kSinkFeedKey);
  if (got.ok()) {
    Reader r{*got};
    const std::string version = r.text();
    sink_.cursor = r.u64();
    sink_.full_state = r.u64() != 0;
    sink_.full_through = r.u64();
    sink_.full_collection = r.text();
    sink_.full_key = r.text();
    if (!r.ok || version.size() != 1 || static_cast<std::uint8_t>(version[0]) != kSinkFeedVersion ||
        !r.in.empty()) {
      return Status(Code::kCorruption, "meta/node.sink_feed does not decode", std::string(kSinkFeedKey));
    }
  } else if (got.status().code() == Code::kNotFound) {
    // The first run on this data directory: send every sink collection whole, then the deltas
    // after the sequence that snapshot covers.
    sink_.full_state = true;
    sink_.full_through = buffer_.last();
    sink_.full_collection.clear();
    sink_.full_key.clear();
    sink_.cursor = 0;
  } else {
    return got.status();
  }
  // The dots the sink acknowledged, per collection (D57). A data directory from before D57 has
  // one set for every collection, which cannot say whose dot D:5 was: it counts for nothing
  // (never evict on doubt) and goes; the catch-up below re-uploads, and so re-acknowledges,
  // each sink collection.
  sink_acked_.clear();
  Status err;
  SHOAL_RETURN_IF_ERROR(txn->scan(Table::kMeta, store::Range::prefix(kSinkAckedPrefix), [&](std::string_view k,
                                                                                              std::string_view v) {
    k.remove_prefix(kSinkAckedPrefix.size());
    auto cid = store::decode_u64_be(k);
    auto ctx = crdt::decode_context(std::span(reinterpret_cast<const std::uint8_t*>(v.data()), v.size()));
    if (!cid.ok() || k.size() != 8 || *cid > UINT32_MAX || !ctx.ok()) {
      err = Status(Code::kCorruption, "a meta/node.sink_acked.<collection> entry does not decode");
      return false;
    }
    sink_acked_[static_cast<std::uint32_t>(*cid)] = std::move(*ctx);
    return true;
  }));
  SHOAL_RETURN_IF_ERROR(err);
  auto old = txn->get(Table::kMeta, kOldSinkAckedKey);
  if (!old.ok() && old.status().code() != Code::kNotFound) return old.status();
  txn.reset();
  if (old.ok()) {
    SHOAL_ASSIGN_OR_RETURN(auto w, store_->begin_write());
    SHOAL_RETURN_IF_ERROR(w->del(Table::kMeta, kOldSinkAckedKey));
    SHOAL_RETURN_IF_ERROR(w->commit());
  }
  const TierPolicies& policies = sync_.tier_policies();
  SHOAL_RETURN_IF_ERROR(forget_sink_acked(policies));
  // A sink collection holding records of which the sink acknowledged none was never uploaded, or
  // not since it last stopped going to the sink (its policy turned `sink` while this process was
  // down, or the acknowledgements predate D57): it is sent whole, after a full-state upload under
  // way if that one has passed its name (collections go in name order; the writes are behind the
  // cursor it ends at). A collection merely waiting in the backlog is sent twice, at no cost to
  // correctness.
  for (const auto& [name, c] : collections_) {
    if (!live(name) || !policies.of(name).sink || c->live == 0 || sink_acked_.contains(c->id)) continue;
    if (sink_.full_state && (sink_.full_collection.empty() || name >= sink_.full_collection)) continue;
    start_sink_catch_up();
    break;
  }
  sync_.set_trim_cap(sink_.full_state ? sink_.full_through : sink_.cursor);
  return persist_sink_feed();
}

// While a collection does not go to the sink, the feed moves its cursor past its writes; when it
// goes to the sink again, only a whole upload brings the sink what it missed. Its acknowledged
// dots are dropped, so that a collection turned `sink` again, here or at a restart (when this
// process never saw it stop), is found with none and sent whole (enable_sink_feed,
// set_tier_policies). Dropping acknowledgements only delays eviction.
Status Node::forget_sink_acked(const TierPolicies& policies) {
  std::vector<std::uint32_t> gone;
  for (const auto& [name, c] : collections_) {
    if (!policies.of(name).sink && sink_acked_.contains(c->id)) gone.push_back(c->id);
  }
  if (gone.empty()) return {};
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  for (const std::uint32_t cid : gone) SHOAL_RETURN_IF_ERROR(txn->del(Table::kMeta, sink_acked_key(cid)));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  for (const std::uint32_t cid : gone) sink_acked_.erase(cid);
  return {};
}

Status Node::set_tier_policies(TierPolicies policies) {
  bool turned = false;
  if (sink_.enabled) {
    for (const auto& [name, c] : collections_) {
      if (live(name) && policies.of(name).sink && !sync_.tier_policies().of(name).sink) turned = true;
    }
    SHOAL_RETURN_IF_ERROR(forget_sink_acked(policies));
  }
  SHOAL_RETURN_IF_ERROR(sync_.set_tier_policies(std::move(policies)));
  if (!turned) return {};
  start_sink_catch_up();
  sync_.set_trim_cap(sink_.full_state ? sink_.full_through : sink_.cursor);
  return persist_sink_feed();
}

void Node::start_sink_catch_up() {
  if (sink_.full_state) {
    // The one under way may have passed the collection's name; an acknowledgement in flight
    // would move a restarted one past it too: another follows this one.
    sink_full_again_ = true;
    return;
  }
  // Sends every sink collection whole, each chunk's context its own dots (it removes nothing at
  // the sink), and then resumes the delta path where it stood: full_through is the cursor, so
  // nothing buffered is skipped (a gap's full state skips; this one has no hole to cover).
  sink_.full_state = true;
  sink_.full_through = sink_.cursor;
  sink_.full_collection.clear();
  sink_.full_key.clear();
}

Status Node::persist_sink_feed() {
  std::string v;
  put_text(v, std::string(1, static_cast<char>(kSinkFeedVersion)));
  put_u64(v, sink_.cursor);
  put_u64(v, sink_.full_state ? 1 : 0);
  put_u64(v, sink_.full_through);
  put_text(v, sink_.full_collection);
  put_text(v, sink_.full_key);
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  SHOAL_RETURN_IF_ERROR(txn->put(Table::kMeta, kSinkFeedKey, v));
  return txn->commit();
}

Status Node::note_sink_acked(const SinkUpload& upload, store::WriteTxn& txn) {
  if (upload.collection.empty()) return {};  // only other collections' entries, skipped
  const Collection* c = find(upload.collection);
  if (c == nullptr) return {};  // dropped since: nothing of it is evicted
  // No longer going to the sink (a SIGHUP while the upload was on its way): it keeps no set, so
  // that turning it back on sends it whole (forget_sink_acked).
  if (!sync_.tier_policies().of(c->spec.name).sink) return {};
  if (upload.delta.empty()) {
    // An acknowledged upload of this collection that carried nothing: every record it named was
    // left out for a stub (a collection held only as stubs, evicted here or received so from a
    // peer), or a full-state chunk found none. The sink holds what a stub stands for (one sink
    // per mesh), so the collection counts as uploaded: it gets its set, empty. Without one, the
    // feed's start took it as never uploaded and sent every sink collection whole again at each
    // restart (issue 15 review; D68).
    if (sink_acked_.contains(c->id)) return {};
    crdt::Bytes none;
    crdt::encode_context(sink_acked_[c->id], none);
    return txn.put(Table::kMeta, sink_acked_key(c->id), as_view(none));
  }
  auto delta = crdt::decode_delta(std::span(reinterpret_cast<const std::uint8_t*>(upload.delta.data()), upload.delta.size()));
  if (!delta.ok()) return delta.status().with_context("acknowledged sink upload");
  crdt::CausalContext& acked = sink_acked_[c->id];
  if (upload.left_out == 0) {
    // The whole context: beyond the carried entries' dots it covers only entries removed here
    // (overwritten or deleted), which are no record's, so never eviction candidates; merged,
    // they fill the holes the dots of entries overwritten before any upload would leave, and
    // the set stays a prefix per replica instead of a growing cloud (issue 15 review, item 4).
    acked.merge(delta->context);
  } else {
    // Records were left out (their dots are off the context): their other entries' removed
    // dots stay off too; only the carried entries count.
    for (const auto& [id, entries] : delta->records) crdt::add_entry_dots(acked, entries);
  }
  crdt::Bytes out;
  crdt::encode_context(acked, out);
  return txn.put(Table::kMeta, sink_acked_key(c->id), as_view(out));
}

Status Node::check_sink_quota(const Collection& c) {
  if (!sink_.enabled || !sync_.tier_policies().of(c.spec.name).sink) return {};
  const std::uint64_t backlog = buffer_.last() - std::min(buffer_.last(), sink_.cursor);
  if (backlog < sink_.options.quota_entries) return {};
  ++sink_.quota_refusals;
  return Status(Detail::kQuotaExceeded,
                str_cat("collection '", c.spec.name, "' goes to the sink, and ", backlog,
                        " delta buffer entries wait for its acknowledgement (quota ", sink_.options.quota_entries,
                        "): writes resume when the sink is reachable and has taken them"));
}

Result<std::optional<SinkUpload>> Node::next_sink_upload() const {
  using Kind = SinkUpload::Kind;
  if (!sink_.enabled) return std::optional<SinkUpload>();
  const TierPolicies& policies = sync_.tier_policies();
  if (sink_.full_state) {
    // The next chunk of the collection being sent whole (collections in name order).
    auto it = sink_.full_collection.empty() ? collections_.begin() : collections_.lower_bound(sink_.full_collection);
    for (; it != collections_.end(); ++it) {
      if (!live(it->first) || !policies.of(it->first).sink) continue;
      const Collection& c = *it->second;
      const std::string key = it->first == sink_.full_collection ? sink_.full_key : std::string();
      SinkUpload up;
      up.kind = Kind::kFullChunk;
      up.collection = c.spec.name;
      up.first_seq = up.last_seq = sink_.full_through;
      crdt::Delta delta;
      std::size_t bytes = 0;
      store::Range range = store::Range::prefix(collection_prefix(c.id));
      if (!key.empty()) range.begin = key + std::string(1, '\0');
      SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
      Status err;
      bool more = false;
      SHOAL_RETURN_IF_ERROR(txn->scan(Table::kRecords, range, [&](std::string_view k, std::string_view v) {
        if (bytes >= sink_.options.max_upload_bytes) {
          more = true;
          return false;
        }
        auto rec = format::read_record(*txn, c.id, k, v);
        if (!rec.ok()) {
          err = rec.status();
          return false;
        }
        for (const auto& e : rec->entries) {
          delta.context.add(e.dot);
          bytes += e.payload.size() + 64;
        }
        delta.records.emplace(std::string(id_of_record_key(k)), std::move(rec->entries));
        up.next_key = std::string(k);
        ++up.records;
        return true;
      }));
      SHOAL_RETURN_IF_ERROR(err);
      if (!more) {
        up.next_key.clear();
        // A range takes at most 39 bytes (the replica 21, two counters 9 each).
        const std::size_t per_piece = std::max<std::size_t>(1, sink_.options.max_upload_bytes / 40);
        SHOAL_ASSIGN_OR_RETURN(up.removed, removed_dot_pieces(*txn, c.id, c.ctx, per_piece));
      }
      up.left_out = drop_stub_entries(delta);  // their dots leave the chunk's context with them
      if (!delta.records.empty()) {
        crdt::Bytes out;
        crdt::encode_delta(delta, out);
        up.delta.assign(reinterpret_cast<const char*>(out.data()), out.size());
        up.entries = 1;
      }
      return std::optional<SinkUpload>(std::move(up));
    }
    SinkUpload done;
    done.kind = Kind::kFullDone;
    done.first_seq = done.last_seq = sink_.full_through;
    return std::optional<SinkUpload>(std::move(done));
  }

  if (sink_.cursor >= buffer_.last()) return std::optional<SinkUpload>();
  SinkUpload up;
  crdt::Delta joined;
  std::size_t bytes = 0;
  Status err;
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  SHOAL_RETURN_IF_ERROR(buffer_.scan(*txn, sink_.cursor, sink_.options.max_upload_entries,
                                     [&](std::uint64_t seq, const format::BufferEntry& e) {
    const Collection* c = e.cid == kCatalogueCid ? nullptr : find_by_id(e.cid);
    const bool goes = c != nullptr && policies.of(c->spec.name).sink;
    if (!goes) {
      if (up.first_seq == 0) up.first_seq = seq;
      up.last_seq = seq;  // skipped: acknowledged together with this upload
      return true;
    }
    if (!up.collection.empty() && up.collection != c->spec.name) return false;  // the next upload starts here
    // A skeleton is re-hydrated from the records' current state (D51); the byte limit counts
    // what is sent.
    auto delta = DeltaBuffer::delta_of(*txn, e);
    if (!delta.ok()) {
      err = delta.status().with_context(str_cat("delta buffer entry ", seq));
      return false;
    }
    std::size_t delta_size = e.stored.size();
    if (e.skeleton) {
      crdt::Bytes sized;
      crdt::encode_delta(*delta, sized);
      delta_size = sized.size();
    }
    if (!up.collection.empty() && bytes + delta_size > sink_.options.max_upload_bytes) return false;
    if (up.first_seq == 0) up.first_seq = seq;
    up.collection = c->spec.name;
    up.last_seq = seq;
    ++up.entries;
    bytes += delta_size;
    joined.join(*delta);
    return true;
  }));
  SHOAL_RETURN_IF_ERROR(err);
  if (up.last_seq == 0) return std::optional<SinkUpload>();
  if (up.first_seq != sink_.cursor + 1) {
    // The buffer no longer holds the entries right after the cursor (dropped at its bound).
    SinkUpload gap;
    gap.kind = Kind::kGap;
    return std::optional<SinkUpload>(std::move(gap));
  }
  up.left_out = drop_stub_entries(joined);
  up.records = joined.records.size();
  if (!up.collection.empty()) {
    crdt::Bytes out;
    crdt::encode_delta(joined, out);
    up.delta.assign(reinterpret_cast<const char*>(out.data()), out.size());
  }
  return std::optional<SinkUpload>(std::move(up));
}

Status Node::sink_acked(const SinkUpload& upload) {
  using Kind = SinkUpload::Kind;
  if (!sink_.enabled) return {};
  switch (upload.kind) {
    case Kind::kGap:
      if (sink_.full_state) return {};
      sink_.full_state = true;
      sink_.full_through = buffer_.last();
      sink_.full_collection.clear();
      sink_.full_key.clear();
      break;
    case Kind::kFullChunk:
      if (!sink_.full_state || upload.last_seq != sink_.full_through) return {};  // stale
      if (upload.next_key.empty()) {
        // This collection is done; the next sink collection after it in name order follows.
        sink_.full_collection = upload.collection + std::string(1, '\0');
        sink_.full_key.clear();
      } else {
        sink_.full_collection = upload.collection;
        sink_.full_key = upload.next_key;
      }
      break;
    case Kind::kFullDone:
      if (!sink_.full_state || upload.last_seq != sink_.full_through) return {};
      sink_.full_state = false;
      sink_.cursor = std::max(sink_.cursor, sink_.full_through);
      sink_.full_collection.clear();
      sink_.full_key.clear();
      if (sink_full_again_) {
        sink_full_again_ = false;
        start_sink_catch_up();
      }
      break;
    case Kind::kDelta:
      if (sink_.full_state || upload.first_seq != sink_.cursor + 1 || upload.last_seq <= sink_.cursor) return {};
      sink_.cursor = upload.last_seq;
      break;
  }
  if (!upload.delta.empty()) {
    ++sink_.uploads_acked;
    sink_.bytes_acked += upload.delta.size();
  }
  sync_.set_trim_cap(sink_.full_state ? sink_.full_through : sink_.cursor);
  if (upload.kind == Kind::kDelta || upload.kind == Kind::kFullChunk) {
    SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
    SHOAL_RETURN_IF_ERROR(note_sink_acked(upload, *txn));
    SHOAL_RETURN_IF_ERROR(txn->commit());
  }
  return persist_sink_feed();
}

Result<std::vector<ColdHit>> Node::merge_cold_hits(std::string_view collection, const std::vector<Hit>& local,
                                                   const std::vector<ColdHit>& cold, std::uint32_t k) const {
  SHOAL_ASSIGN_OR_RETURN(Collection * c, find_or_error(collection));
  std::vector<ColdHit> out;
  out.reserve(local.size() + cold.size());
  for (const Hit& h : local) out.push_back(ColdHit{h.id, h.distance, {}, false});
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  for (const ColdHit& h : cold) {
    auto here = txn->get(Table::kRecords, record_key(c->id, h.id));
    if (here.ok()) {
      // Live here: the local version answers for it, unless it is evicted (out of the local
      // index): the sink's copy then answers, marked cold.
      const std::uint64_t label = c->label_of(h.id);
      if (label == 0 || !c->docs[label].evicted) continue;
      out.push_back(ColdHit{h.id, h.distance, h.dots, true});
      continue;
    }
    if (here.status().code() != Code::kNotFound) return here.status();
    auto dots = crdt::decode_context(
        std::span(reinterpret_cast<const std::uint8_t*>(h.dots.data()), h.dots.size()));
    if (!dots.ok()) return Status(Detail::kMalformed, str_cat("cold hit '", h.id, "': dots do not decode: ", dots.status().message()));
    if (!dots->empty() && c->ctx.includes(*dots)) continue;  // seen here and removed since
    out.push_back(ColdHit{h.id, h.distance, h.dots, true});
  }
  std::stable_sort(out.begin(), out.end(), [](const ColdHit& a, const ColdHit& b) {
    return a.distance != b.distance ? a.distance < b.distance : a.id < b.id;
  });
  if (out.size() > k) out.resize(k);
  return out;
}

SinkFeedStatus Node::sink_feed_status() const {
  SinkFeedStatus s;
  s.enabled = sink_.enabled;
  s.uploaded_through = sink_.cursor;
  s.backlog_entries = buffer_.last() - std::min(buffer_.last(), sink_.cursor);
  s.quota_entries = sink_.options.quota_entries;
  s.full_state_pending = sink_.full_state;
  s.uploads_acked = sink_.uploads_acked;
  s.bytes_acked = sink_.bytes_acked;
  s.quota_refusals = sink_.quota_refusals;
  for (const auto& [cid, acked] : sink_acked_) s.acked_cloud_dots += acked.cloud_size();
  return s;
}

Status Node::join_sink_page(std::string_view collection, crdt::Delta page, bool last,
                            const std::set<std::string>& sink_ids, const crdt::CausalContext& first_context) {
  SHOAL_ASSIGN_OR_RETURN(Collection * c, find_or_error(collection));
  // A page before the last judges the records it names by the sink's context as of the first
  // page (D67): an entry held here that the sink had seen then and no longer holds was removed
  // there, and no later page names the record again to remove it (found by shoal-sim's device
  // replacements: a stale sibling from a peer outlived the bootstrap). The last page's context
  // already covers the first's.
  if (!last) page.context.merge(first_context);
  SHOAL_RETURN_IF_ERROR(validate_peer_delta(*c, page));
  // With the last page the node learns the sink's context as of the first page (D67): each of its
  // dots is an entry the pages brought or one removed at the sink, so a stale copy a peer sends
  // later is not taken for a write never seen. Needed when the removal's only other holder was
  // the device this one replaces: nobody else would ever send it. Kept out of the delta buffer
  // (D50); peers learn it at the end of their repair sessions. Claims on this node's own dots
  // beyond its counter are left out, as strip_own_claims leaves them out of the page's context.
  crdt::CausalContext learned;
  if (last) {
    learned = first_context;
    learned.drop_above(issuer_, c->ctx.max_counter(issuer_));
  }
  // The sink's context may name dots of this replica (a device restored under its own identity,
  // or an older copy of this store): the rule of a peer's delta (strip, new incarnation in the
  // same transaction, within the bounds of claim_may_move).
  const bool claims = strip_own_claims(c->ctx, page.records, page.context, crdt::ReplicaId{});
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  std::optional<crdt::ReplicaId> next;
  if (claims && claim_may_move()) {
    SHOAL_ASSIGN_OR_RETURN(next, new_incarnation(*txn));
  }
  if (last) {
    // Records held here that no page named: judged against the sink's context as of the first
    // page, not the last page's (which covers records that reached the sink after their page
    // went by). The join judges every named record by page.context (a superset), so such a
    // record is named with its entries the first context does not cover: those stay, the
    // covered ones (seen by the sink then, not held: deleted) go.
    Status err;
    SHOAL_RETURN_IF_ERROR(txn->scan(Table::kRecords, store::Range::prefix(collection_prefix(c->id)),
                                    [&](std::string_view k, std::string_view v) {
                                      std::string id(id_of_record_key(k));
                                      if (sink_ids.contains(id) || page.records.contains(id)) return true;
                                      auto rec = format::read_record(*txn, c->id, k, v);
                                      if (!rec.ok()) {
                                        err = rec.status();
                                        return false;
                                      }
                                      crdt::Entries& keep = page.records[std::move(id)];
                                      for (crdt::Entry& e : rec->entries) {
                                        if (!first_context.contains(e.dot)) keep.push_back(std::move(e));
                                      }
                                      return true;
                                    }));
    SHOAL_RETURN_IF_ERROR(err);
  }
  Pending pending = Pending::of(*c);
  DeltaBuffer::Cursor cur = buffer_.cursor();
  // Joined as a repair, not as a delta: the last page's context is the sink's whole context,
  // which covers the dots of records on earlier pages that this page does not name. Kept in the
  // buffer as a delta, it would tell a full-state joiner (the sink, when this device's feed
  // uploads it) that those records were removed. A repair judges the records it names by that
  // context, adds only the dots it received, and buffers what changed here with those records'
  // dots alone (docs/protocol.md, "Digest path"). The cost: the dots of records deleted at the
  // sink that this device never held are not learned here (peers that hold such a record stale
  // hear the delete from its origin, as any peer does).
  std::vector<std::string> ids;
  ids.reserve(page.records.size());
  for (const auto& [id, entries] : page.records) ids.push_back(id);
  SHOAL_RETURN_IF_ERROR(
      join_in_txn(*txn, *c, ids, page.records, page.context, JoinKind::kRepair, pending, cur, nullptr));
  if (last && !pending.ctx.includes(learned)) {
    pending.ctx.merge(learned);
    pending.state_dirty = true;
  }
  SHOAL_RETURN_IF_ERROR(write_state(*txn, *c, pending, clock_.last()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  if (claims) claim_answered(next, "the sink's context claiming our dots");
  commit_cursor(cur);
  apply_pending(*c, pending);
  observe_clocks(page.records);
  return {};
}

}  // namespace shoal::node
