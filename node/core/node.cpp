// node/core/node.cpp: the node's local data path: open, collections, writes, reads, search.
// What the sync engine asks of the data (peers' deltas, repair, the catalogue) is in
// node_sync_host.cpp; both end in join_in_txn(), the one path from a delta to the store.
#include "node/core/node.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "common/assert.hpp"
#include "common/memory.hpp"
#include "crdt/codec.hpp"
#include "index/exact_index.hpp"
#include "index/kernels.hpp"
#include "index/planner.hpp"
#include "node/core/node_state.hpp"

namespace shoal::node {

using namespace format;
using store::Table;

namespace {

SyncMutations sync_mutations(const MutationsForTesting& m) {
  return SyncMutations{m.trim_before_ack, m.early_context_merge};
}

}  // namespace

index::IndexParams index_params(const CollectionSpec& s) {
  index::IndexParams p;
  p.dimension = s.dimension;
  p.metric = to_index_metric(s.metric);
  p.m = s.m;
  p.ef_construction = s.ef_construction;
  p.ef_search = s.ef_search;
  if (s.quantize) {
    p.quantization = index::Quantization::kInt8;
    p.quant_min = s.quant_min;
    p.quant_max = s.quant_max;
  }
  return p;
}

Status validate_spec(const CollectionSpec& spec, const Limits& limits) {
  SHOAL_RETURN_IF_ERROR(validate_collection_name(spec.name, limits));
  if (spec.dimension == 0 || spec.dimension > limits.max_dimension) {
    return Status(Detail::kOutOfRange, str_cat("dimension must be 1..", limits.max_dimension, ", got ", spec.dimension));
  }
  return index::validate_params(index_params(spec));
}

Node::Node(store::Store& store, NodeOptions options)
    : store_(&store),
      options_(std::move(options)),
      catalogue_(kCatalogueDigestConfig),
      buffer_(options_.delta_buffer_max),
      sync_(*this, store, buffer_, options_.sync, sync_mutations(options_.mutations), options_.logger) {}

Node::~Node() = default;

index::IndexParams Node::node_index_params(const CollectionSpec& spec) const {
  index::IndexParams p = index_params(spec);
  p.isa = options_.index_isa;
  return p;
}

Result<std::unique_ptr<Node>> Node::open(store::Store& store, NodeOptions options) {
  if (!options.wall_clock) return Status(Code::kInvalidArgument, "NodeOptions.wall_clock is required");
  std::unique_ptr<Node> node(new Node(store, std::move(options)));
  SHOAL_RETURN_IF_ERROR(node->load());
  return node;
}

Status Node::load_identity() {
  // Created once, in its own transaction, before anything else is written.
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  auto rep = txn->get(Table::kMeta, kReplicaKey);
  if (rep.ok()) {
    if (!crdt::ReplicaId::decode(*rep, replica_)) return Status(Code::kCorruption, "bad replica id", "meta/node.replica");
    issuer_ = replica_;
    txn->abort();
    return {};
  }
  if (rep.status().code() != Code::kNotFound) return rep.status();
  if (!options_.identity) {
    return Status(Code::kInvalidArgument, "a new store needs NodeOptions.identity (the runtime draws one)");
  }
  replica_ = issuer_ = *options_.identity;
  SHOAL_RETURN_IF_ERROR(txn->put(Table::kMeta, kReplicaKey, replica_.encode()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  // A store created by this process: no copy of it can have issued a dot yet.
  fresh_issuer_ = true;
  return {};
}

Status Node::load() {
  SHOAL_RETURN_IF_ERROR(load_identity());
  // Data directories written before the vectors table hold each record's vector inline: moved
  // once, here (docs/node-format.md, "Vectors apart from their records").
  SHOAL_RETURN_IF_ERROR(format::migrate_vectors(*store_).status());
  // Before schema version 5 each vector had a vectors table entry of its own: packed into slabs
  // once, here (docs/node-format.md, "Vector slabs").
  SHOAL_RETURN_IF_ERROR(format::migrate_vector_slabs(*store_).status());
  // And before schema version 4 the buffer's entries held whole payloads: rewritten once, here
  // (docs/node-format.md, "Delta-buffer entries without payloads").
  SHOAL_RETURN_IF_ERROR(DeltaBuffer::migrate(*store_).status());
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  if (auto n = txn->get(Table::kMeta, kNextCollectionKey); n.ok()) {
    SHOAL_ASSIGN_OR_RETURN(next_collection_id_, decode_u32(*n, "meta/node.next_collection_id"));
  } else if (n.status().code() != Code::kNotFound) {
    return n.status();
  }
  SHOAL_RETURN_IF_ERROR(buffer_.load(*txn));
  if (auto k = txn->get(Table::kMeta, format::kIndexDirtyKey); k.ok()) {
    index_dirty_kept_ = true;
  } else if (k.status().code() != Code::kNotFound) {
    return k.status();
  }
  SHOAL_ASSIGN_OR_RETURN(auto catalogue, txn->collect(Table::kCatalogue, store::Range::all()));
  SHOAL_RETURN_IF_ERROR(sync_.load(*txn));
  txn.reset();
  for (const auto& kv : catalogue) {
    SHOAL_ASSIGN_OR_RETURN(auto decoded, decode_spec(kv.key, kv.value));
    auto c = std::make_unique<Collection>();
    c->spec = decoded.first;
    c->id = decoded.second;
    SHOAL_RETURN_IF_ERROR(load_collection(*c));
    collections_.emplace(c->spec.name, std::move(c));
  }
  SHOAL_RETURN_IF_ERROR(load_catalogue());
  SHOAL_RETURN_IF_ERROR(mark_index_dirty_kept());
  return load_revocations();
}

// From now on every record change is in the index_dirty table when snapshots are kept; a node
// opened without them (none kept) says so, so that a later open with snapshots rebuilds instead
// of trusting a snapshot the table no longer covers.
Status Node::mark_index_dirty_kept() {
  if ((options_.snapshots != nullptr) == index_dirty_kept_) return {};
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  if (options_.snapshots != nullptr) {
    SHOAL_RETURN_IF_ERROR(txn->put(Table::kMeta, format::kIndexDirtyKey, std::string(1, '\1')));
  } else {
    SHOAL_RETURN_IF_ERROR(txn->del(Table::kMeta, format::kIndexDirtyKey));
  }
  SHOAL_RETURN_IF_ERROR(txn->commit());
  index_dirty_kept_ = options_.snapshots != nullptr;
  return {};
}

Status Node::load_revocations() {
  if (options_.revocations == nullptr) return {};
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  auto got = txn->get(Table::kMeta, kRevocationsKey);
  if (got.status().code() == Code::kNotFound) return {};
  if (!got.ok()) return got.status();
  auto joined = options_.revocations->join(*got);
  if (!joined.ok()) return Status(Code::kCorruption, joined.status().message(), "meta/node.revocations");
  return {};
}

Result<bool> Node::join_revocations(std::string_view encoded) {
  if (options_.revocations == nullptr) return false;  // this node does not keep revocations
  SHOAL_ASSIGN_OR_RETURN(bool grew, options_.revocations->join(encoded));
  if (!grew) return false;
  // Durable before anyone hears of it from us: a crash must not forget a revocation we passed on.
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  SHOAL_RETURN_IF_ERROR(txn->put(Table::kMeta, kRevocationsKey, options_.revocations->encode()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  return true;
}

Status Node::add_revocations(std::string_view encoded) {
  if (options_.revocations == nullptr) {
    return Status(Code::kUnimplemented, "this node keeps no revocation set (NodeOptions.revocations)");
  }
  SHOAL_ASSIGN_OR_RETURN(bool grew, join_revocations(encoded));
  if (grew) sync_.on_revocations_grew();
  return {};
}

Status Node::load_catalogue() {
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  auto got = txn->get(Table::kMeta, kCatalogueKey);
  if (got.ok()) {
    SHOAL_ASSIGN_OR_RETURN(catalogue_, decode_catalogue(*got));
    txn->abort();
    return {};
  }
  if (got.status().code() != Code::kNotFound) return got.status();
  if (collections_.empty()) {
    txn->abort();
    return {};
  }
  // A data directory from before the catalogue replicated: every collection it holds is live,
  // as if created here.
  txn->abort();
  SHOAL_RETURN_IF_ERROR(ensure_fresh_issuer());
  SHOAL_ASSIGN_OR_RETURN(txn, store_->begin_write());
  for (const auto& [name, c] : collections_) {
    auto d = catalogue_.upsert(issuer_, name, to_bytes(encode_spec(c->spec, 0)), clock_.tick(wall_now()));
    if (!d.ok()) return d.status();
  }
  SHOAL_RETURN_IF_ERROR(txn->put(Table::kMeta, kCatalogueKey, encode_catalogue(catalogue_)));
  return txn->commit();
}

Status Node::load_collection(Collection& c) {
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  auto state = txn->get(Table::kContexts, u32_be(c.id));
  if (state.ok()) {
    SHOAL_ASSIGN_OR_RETURN(auto st, decode_collection_state(*state, "contexts/" + c.spec.name));
    c.ctx = std::move(st.ctx);
    c.next_label = st.next_label;
    // The node's clock resumes above every clock it persisted.
    if (st.hlc > clock_.last()) clock_ = crdt::HybridClock(st.hlc);
  } else if (state.status().code() != Code::kNotFound) {
    return state.status();
  }
  txn.reset();
  // The snapshot may load in the background (FileSnapshotStore: on a thread) while the open state
  // is read; load_index then takes it (D64).
  SHOAL_RETURN_IF_ERROR(prefetch_index(c));
  SHOAL_ASSIGN_OR_RETURN(bool from_state, load_open_state(c));
  if (!from_state) {
    // One pass over the records: labels, metadata, digests. The vectors stay in their slabs.
    SHOAL_ASSIGN_OR_RETURN(txn, store_->begin_read());
    Status decode_error;
    SHOAL_RETURN_IF_ERROR(txn->scan(
        Table::kRecords, store::Range::prefix(collection_prefix(c.id)), [&](std::string_view k, std::string_view v) {
          auto rec = decode_record(v, k);
          if (rec.ok()) {
            decode_error = load_record(c, id_of_record_key(k), *rec);
          } else {
            decode_error = rec.status();
          }
          return decode_error.ok();
        }));
    SHOAL_RETURN_IF_ERROR(decode_error);
    txn.reset();
    open_report_.state_source[c.spec.name] = "scan";
  }
  // The clock resumes above every clock this node holds, not only those it persisted with its own
  // writes: a write after a restart must still follow what it received before.
  if (c.max_clock > clock_.last()) clock_ = crdt::HybridClock(c.max_clock);
  return load_index(c);
}

Status Node::load_record(Collection& c, std::string_view id, const format::StoredRecord& rec) {
  const crdt::Entry* w = crdt::winner(rec.entries);
  if (w == nullptr) return Status(Code::kCorruption, "stored record has no entries", std::string(id));
  auto value = format::decode_stored_payload(*w);
  if (!value.ok()) return value.status().with_context(c.spec.name + "/" + std::string(id));
  const std::uint64_t digest = crdt::record_digest(id, rec.entries);
  c.digests.update(c.digests.bucket_of(id), 0, digest);
  for (const auto& e : rec.entries) {
    if (e.clock > c.max_clock) c.max_clock = e.clock;
  }
  auto& d = c.doc(rec.label);
  d.id = std::string(id);
  c.set_extras(d, std::move(value->metadata), std::move(value->model));
  d.digest = digest;
  d.evicted = is_stub_payload(as_view(w->payload));
  if (d.evicted) ++c.stubs;
  c.map_id(rec.label);
  c.next_label = std::max(c.next_label, rec.label + 1);
  ++c.live;
  return {};
}

void Node::forget_doc(Collection& c, std::uint64_t label) {
  if (label >= c.docs.size() || c.docs[label].id.empty()) return;
  auto& d = c.docs[label];
  c.digests.update(c.digests.bucket_of(d.id), d.digest, 0);
  c.unmap_id(d.id);
  --c.live;
  if (d.evicted) --c.stubs;
  c.clear_doc(d);
}

Result<bool> Node::load_open_state(Collection& c) {
  if (options_.snapshots == nullptr) return false;
  const std::string& name = c.spec.name;
  if (!index_dirty_kept_) {
    open_report_.state_rejected[name] = "the store does not say which labels changed since the open state";
    return false;
  }
  auto got = options_.snapshots->load_state(c.id);
  if (!got.ok()) {
    open_report_.state_rejected[name] = got.status().to_string();
    return false;
  }
  if (!got->has_value()) return false;
  // The labels changed since the file was written, each with the id of the record it belonged to
  // (the index_dirty table's value).
  std::vector<std::pair<std::uint64_t, std::string>> dirty;
  {
    SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
    Status bad;
    SHOAL_RETURN_IF_ERROR(txn->scan(Table::kIndexDirty, store::Range::prefix(collection_prefix(c.id)),
                                    [&](std::string_view k, std::string_view v) {
                                      auto label = store::decode_u64_be(k.substr(4));
                                      if (!label.ok()) {
                                        bad = Status(Code::kCorruption, "malformed index_dirty key", name);
                                        return false;
                                      }
                                      dirty.emplace_back(*label, std::string(v));
                                      return true;
                                    }));
    SHOAL_RETURN_IF_ERROR(bad);
  }
  auto reject = [&](const std::string& why) {
    open_report_.state_rejected[name] = why;
    c.docs.clear();
    c.extras.clear();
    c.labels.clear();
    c.digests = crdt::DigestTree(format::kDigestConfig);
    c.live = c.stubs = 0;
    c.max_clock = crdt::Hlc();
    return false;
  };
  for (const auto& [label, id] : dirty) {
    if (id.empty()) return reject(str_cat("changed label ", label, " has no record id (an older build wrote it)"));
  }
  // The docs are built in label order (the file's order), each written once: room for every label
  // below the store's next label is reserved (memory the kernel zeroes on first touch), not
  // constructed and then overwritten (D59, D64, D70).
  c.docs.clear();
  c.docs.reserve(c.next_label);
  advise_huge_pages(c.docs.data(), c.docs.capacity() * sizeof(Collection::Doc));
  c.docs.emplace_back();  // label 0
  // The repair digests' leaves summed here first, then added to the tree once per bucket: one
  // update per record walked every level of the tree.
  std::vector<std::uint64_t> leaves(c.digests.leaf_count(), 0);
  auto header = format::decode_open_state((*got)->view(), name, [&](format::OpenStateDoc&& d) -> Status {
    while (c.docs.size() < d.label) c.docs.emplace_back();
    Collection::Doc& doc = c.docs.emplace_back();
    doc.id = std::move(d.id);
    doc.digest = d.digest;
    doc.evicted = d.evicted;
    c.set_extras(doc, std::move(d.metadata), std::move(d.model));
    leaves[c.digests.bucket_of(doc.id)] += d.digest;  // wrapping, as the tree sums
    ++c.live;
    if (d.evicted) ++c.stubs;
    return {};
  });
  got->reset();
  if (!header.ok()) return reject(header.status().to_string());
  for (std::uint32_t bucket = 0; bucket < leaves.size(); ++bucket) c.digests.update(bucket, 0, leaves[bucket]);
  if (c.docs.size() < c.next_label) c.docs.resize(c.next_label);
  // The id map in one pass over the docs, sized once (insert_new prefetches its slots).
  std::uint64_t scanned = 0;
  auto next_label = [&]() -> std::uint64_t {
    while (++scanned < c.docs.size()) {
      if (!c.docs[scanned].id.empty()) return scanned;
    }
    return 0;
  };
  if (c.labels.insert_new(next_label, c.live, c.id_of()) != 0) {
    return reject(Status(Code::kCorruption, "open state file: a record id under two labels", name).to_string());
  }
  if (header->cid != c.id) return reject(str_cat("open state of collection id ", header->cid, ", expected ", c.id));
  if (header->covered_position > buffer_.last()) {
    return reject(str_cat("open state covers delta ", header->covered_position, ", newer than the buffer's last, ",
                          buffer_.last()));
  }
  if (header->next_label > c.next_label) {
    return reject(str_cat("open state's next label ", header->next_label, " is above the store's ", c.next_label));
  }
  c.max_clock = header->max_clock;
  // Replay: each changed label and each record it named leave memory, then every such record
  // still stored comes back as it is now.
  std::vector<std::string> ids;
  ids.reserve(dirty.size());
  for (auto& [label, id] : dirty) {
    forget_doc(c, label);
    if (const std::uint64_t at = c.label_of(id); at != 0) forget_doc(c, at);
    ids.push_back(std::move(id));
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  for (const auto& id : ids) {
    const std::string key = record_key(c.id, id);
    auto v = txn->get(Table::kRecords, key);
    if (v.status().code() == Code::kNotFound) continue;
    if (!v.ok()) return v.status();
    SHOAL_ASSIGN_OR_RETURN(auto rec, decode_record(*v, key));
    SHOAL_RETURN_IF_ERROR(load_record(c, id, rec));
  }
  open_report_.state_source[name] = "state";
  c.state_valid = true;
  return true;
}

Status Node::save_open_state(const Collection& c) {
  format::OpenStateWriter w(c.id, buffer_.last(), c.next_label, c.max_clock, c.live);
  for (std::uint64_t label = 1; label < c.docs.size(); ++label) {
    const auto& d = c.docs[label];
    if (!d.id.empty()) w.add(label, d.digest, d.evicted, d.id, c.model_of(d), c.metadata_of(d));
  }
  return options_.snapshots->save_state(c.id, w.finish());
}

Status Node::replay_dirty(Collection& c, const std::vector<std::uint64_t>& touched) {
  // Room for the labels the snapshot lacks, exactly: growing on demand would double the graph's
  // capacity for a few inserts (117.7 instead of 61.7 MiB at 60k x 784).
  std::size_t added = 0;
  for (std::uint64_t label : touched) {
    if (label < c.docs.size() && !c.docs[label].id.empty() && !c.docs[label].evicted && !c.index->contains(label)) {
      ++added;
    }
  }
  SHOAL_RETURN_IF_ERROR(c.index->reserve_more(added));
  // With an index queue (the runtime) and room in it, the changed labels join the queue and the
  // open returns without inserting them (D78): searches score queued labels exactly and keep
  // their stale graph entries out (search_queue) until the index thread has applied them, as
  // after a write. Otherwise the current vectors go in as batches on build_threads threads (D65):
  // the labels are distinct (the table's keys), so their order does not matter, and an element's
  // level depends only on its label. A batch is bounded, so a dirty set left by a crash long after
  // the last close (larger than snapshot_dirty_max) does not hold all its vectors at once.
  // The bound is the node's (the sum over its collections, D33): the room left by the collections
  // replayed before this one.
  const bool queue = options_.index_queue_max > 0 && index_backlog_ + touched.size() <= options_.index_queue_max;
  constexpr std::size_t kReplayBatch = 4096;
  const std::size_t dim = c.spec.dimension;
  std::vector<std::uint64_t> labels;
  std::vector<float> vectors;
  if (!queue) {
    labels.reserve(std::min(touched.size(), kReplayBatch));
    vectors.reserve(labels.capacity() * dim);
  }
  auto flush = [&]() -> Status {
    if (labels.empty()) return {};
    Status s = c.index->add_batch(labels, vectors, options_.build_threads);
    labels.clear();
    vectors.clear();
    return s;
  };
  SHOAL_ASSIGN_OR_RETURN(auto rtxn, store_->begin_read());
  for (std::uint64_t label : touched) {
    if (label >= c.docs.size() || c.docs[label].id.empty()) continue;
    if (c.docs[label].evicted) {  // a stub: out of the index (node_evict.cpp)
      if (!c.index->contains(label)) continue;
      if (!queue) {
        SHOAL_RETURN_IF_ERROR(c.index->remove(label));
        continue;
      }
      c.unindexed.push_back(IndexOp{label, {}});
      ++index_backlog_;
      continue;
    }
    auto found = format::get_vector(*rtxn, c.id, c.spec.dimension, label);
    if (!found.ok()) {
      // A live record that is not a stub always has its vector: a slab without it is a damaged
      // store, as the rebuild's count says (load_index), not a missing record.
      if (found.status().code() != Code::kNotFound) return found.status().with_context(c.spec.name);
      return Status(Code::kCorruption,
                    str_cat("collection '", c.spec.name, "': live label ", label, " has no vector in the vector slabs"),
                    c.spec.name);
    }
    const std::string_view got = *found;
    if (queue) {
      std::vector<float> vector(dim);
      std::memcpy(vector.data(), got.data(), got.size());
      c.unindexed.push_back(IndexOp{label, std::move(vector)});
      ++index_backlog_;
      continue;
    }
    const std::size_t at = vectors.size();
    vectors.resize(at + dim);
    std::memcpy(vectors.data() + at, got.data(), got.size());
    labels.push_back(label);
    if (labels.size() == kReplayBatch) SHOAL_RETURN_IF_ERROR(flush());
  }
  return flush();
}

Result<std::vector<std::uint64_t>> Node::dirty_labels(const Collection& c) {
  std::vector<std::uint64_t> touched;
  SHOAL_ASSIGN_OR_RETURN(auto rtxn, store_->begin_read());
  Status bad;
  SHOAL_RETURN_IF_ERROR(rtxn->scan(Table::kIndexDirty, store::Range::prefix(collection_prefix(c.id)),
                                   [&](std::string_view k, std::string_view) {
                                     auto label = store::decode_u64_be(k.substr(4));
                                     if (!label.ok()) {
                                       bad = Status(Code::kCorruption, "malformed index_dirty key", c.spec.name);
                                       return false;
                                     }
                                     touched.push_back(*label);
                                     return true;
                                   }));
  SHOAL_RETURN_IF_ERROR(bad);
  return touched;
}

Status Node::prefetch_index(Collection& c) {
  c.floats = std::make_unique<StoreFloatSource>(*store_, c.id, c.spec.dimension);
  if (options_.snapshots == nullptr) return {};
  // Room for every changed label (an upper bound of what the replay adds: some were removed or
  // evicted): the graph is allocated once, never grown by the replay.
  SHOAL_ASSIGN_OR_RETURN(auto touched, dirty_labels(c));
  options_.snapshots->prefetch(c.id, node_index_params(c.spec), options_.rebuild_executor, c.floats.get(),
                               touched.size());
  return {};
}

Status Node::load_index(Collection& c) {
  // From the snapshot, with the labels changed since it was written (the index_dirty table)
  // replayed on it.
  const index::IndexParams params = node_index_params(c.spec);
  if (options_.snapshots != nullptr) {
    // The labels changed since the snapshot; the graph gets room for all of them (as prefetched).
    SHOAL_ASSIGN_OR_RETURN(auto touched, dirty_labels(c));
    auto loaded = options_.snapshots->load(c.id, params, options_.rebuild_executor, c.floats.get(), touched.size());
    if (!loaded.ok()) {
      open_report_.snapshot_rejected[c.spec.name] = loaded.status().to_string();
    } else if (loaded->has_value() && !index_dirty_kept_) {
      open_report_.snapshot_rejected[c.spec.name] = "the store does not say which labels changed since the snapshot";
    } else if (loaded->has_value()) {
      index::HnswIndex::Loaded& snap = **loaded;
      if (snap.covered_position > buffer_.last()) {
        open_report_.snapshot_rejected[c.spec.name] = str_cat("snapshot covers delta ", snap.covered_position,
                                                              ", newer than the buffer's last, ", buffer_.last());
      } else {
        c.index = std::move(snap.index);
        // Catch up: every label changed since the snapshot gets its current vector; removals below.
        SHOAL_RETURN_IF_ERROR(replay_dirty(c, touched));
        open_report_.snapshot_replayed[c.spec.name] = touched.size();
        // Labels the index still holds but no live record has: deleted since the snapshot.
        for (std::uint64_t label = 1; label < c.next_label; ++label) {
          const bool is_live = label < c.docs.size() && !c.docs[label].id.empty() && !c.docs[label].evicted;
          if (!is_live && c.index->contains(label)) SHOAL_RETURN_IF_ERROR(c.index->remove(label));
        }
        // Queued by the replay (D78): new labels the index will hold, and stubs it will drop. The
        // loop above already took out every label no live record has, stubs included, so a queued
        // removal counts only while the graph still holds its label.
        std::size_t queued_new = 0, queued_out = 0;
        for (const IndexOp& op : c.unindexed) {
          if (op.vector.empty()) {
            if (c.index->contains(op.label)) ++queued_out;
          } else if (!c.index->contains(op.label)) {
            ++queued_new;
          }
        }
        if (c.index->size() + queued_new - queued_out == c.live - c.stubs) {
          open_report_.index_source[c.spec.name] = "snapshot";
          c.snapshot_valid = true;
          return {};
        }
        open_report_.snapshot_rejected[c.spec.name] =
            str_cat("snapshot holds ", c.index->size() + queued_new - queued_out, " vectors after catch-up, store ",
                    c.live - c.stubs);
        index_backlog_ -= c.unindexed.size();
        c.unindexed.clear();
        c.index.reset();
      }
    }
  }
  SHOAL_ASSIGN_OR_RETURN(c.index, index::HnswIndex::create(params, options_.rebuild_executor, c.floats.get()));
  // The live records' vectors, from the vector slabs (ordered by label).
  std::vector<std::uint64_t> labels;
  std::vector<float> vectors;
  labels.reserve(c.live);
  vectors.reserve(c.live * c.spec.dimension);
  {
    SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
    SHOAL_RETURN_IF_ERROR(format::scan_vectors(*txn, c.id, c.spec.dimension,
                                               [&](std::uint64_t label, std::string_view v) {
                                                 // Only live records (a stale entry would be a bug; skip it).
                                                 if (label >= c.docs.size() || c.docs[label].id.empty()) return true;
                                                 labels.push_back(label);
                                                 const std::size_t at = vectors.size();
                                                 vectors.resize(at + c.spec.dimension);
                                                 std::memcpy(vectors.data() + at, v.data(), v.size());
                                                 return true;
                                               })
                              .with_context(c.spec.name));
  }
  if (labels.size() != c.live - c.stubs) {
    return Status(Code::kCorruption,
                  str_cat("the vectors table holds ", labels.size(), " of ", c.live - c.stubs,
                          " live records that are not stubs"),
                  c.spec.name);
  }
  if (!labels.empty()) {
    SHOAL_RETURN_IF_ERROR(c.index->reserve(labels.size()));
    SHOAL_RETURN_IF_ERROR(c.index->add_batch(labels, vectors, options_.build_threads));
  }
  open_report_.index_source[c.spec.name] = labels.empty() ? "empty" : "rebuilt";
  return {};
}

// --- collections ---

Node::Collection* Node::find(std::string_view name) const {
  auto it = collections_.find(name);
  return it == collections_.end() ? nullptr : it->second.get();
}

Node::Collection* Node::find_by_id(std::uint32_t cid) const {
  for (const auto& [name, c] : collections_) {
    if (c->id == cid) return c.get();
  }
  return nullptr;
}

Result<Node::Collection*> Node::find_or_error(std::string_view name) const {
  Collection* c = find(name);
  if (c == nullptr || !live(name)) return Status(Detail::kNoSuchCollection, str_cat("no collection named '", name, "'"));
  return c;
}

Result<std::unique_ptr<Node::Collection>> Node::new_storage(store::WriteTxn& txn, const CollectionSpec& spec,
                                                           std::uint32_t id) {
  SHOAL_RETURN_IF_ERROR(validate_spec(spec, options_.limits));
  SHOAL_ASSERT(find(spec.name) == nullptr && id >= next_collection_id_);
  auto c = std::make_unique<Collection>();
  c->spec = spec;
  c->id = id;
  c->floats = std::make_unique<StoreFloatSource>(*store_, c->id, spec.dimension);
  SHOAL_ASSIGN_OR_RETURN(c->index,
                         index::HnswIndex::create(node_index_params(spec), options_.rebuild_executor, c->floats.get()));
  SHOAL_RETURN_IF_ERROR(txn.put(Table::kCatalogue, spec.name, encode_spec(spec, c->id)));
  SHOAL_RETURN_IF_ERROR(txn.put(Table::kMeta, kNextCollectionKey, encode_u32(c->id + 1)));
  return c;
}

Node::Collection* Node::install_storage(std::unique_ptr<Collection> c) {
  next_collection_id_ = c->id + 1;
  open_report_.index_source[c->spec.name] = "empty";
  Collection* out = c.get();
  collections_.emplace(out->spec.name, std::move(c));
  return out;
}

Status Node::create_collection(const CollectionSpec& spec) {
  SHOAL_ASSERT(!open_group_);
  SHOAL_RETURN_IF_ERROR(validate_spec(spec, options_.limits));
  if (live(spec.name)) return Status(Detail::kAlreadyExists, str_cat("collection '", spec.name, "' already exists"));
  Collection* c = find(spec.name);
  if (c != nullptr && (c->spec.dimension != spec.dimension || c->spec.metric != spec.metric)) {
    return Status(Code::kConflict,
                  str_cat("collection '", spec.name, "' was dropped with dimension ", c->spec.dimension, " and metric ",
                          metric_name(c->spec.metric), "; a re-create keeps them (peers may still send its deltas): ",
                          "got dimension ", spec.dimension, " and metric ", metric_name(spec.metric)));
  }
  SHOAL_RETURN_IF_ERROR(ensure_fresh_issuer());
  // One transaction: a new collection's storage, the catalogue entry, and the deletion of
  // whatever a dropped collection still holds (concurrent writes from peers), so a re-create
  // starts empty. Storage committed apart from its entry would outlive a crash between the two
  // as a hidden collection that refuses a create with another dimension (D56; shoal-sim seed 1654).
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  std::unique_ptr<Collection> added;
  if (c == nullptr) {
    SHOAL_ASSIGN_OR_RETURN(added, new_storage(*txn, spec, next_collection_id_));
    c = added.get();
  }
  DeltaBuffer::Cursor cur = buffer_.cursor();
  crdt::HybridClock clock = clock_;
  crdt::ORMap created = catalogue_;
  SHOAL_RETURN_IF_ERROR(
      created.upsert(issuer_, spec.name, to_bytes(encode_spec(c->spec, 0)), clock.tick(wall_now())).status());
  crdt::ORMap cat = catalogue_;
  SHOAL_RETURN_IF_ERROR(join_catalogue_in_txn(*txn, cat, created, cur, nullptr));
  SHOAL_ASSIGN_OR_RETURN(crdt::Delta leftovers, delete_all_delta(*txn, *c));
  if (options_.mutations.recreate_keeps_hidden) leftovers = {};  // mutation under test
  Pending pending = Pending::of(*c);
  if (!leftovers.records.empty()) SHOAL_RETURN_IF_ERROR(apply_delta_in_txn(*txn, *c, leftovers, pending, cur, nullptr));
  SHOAL_RETURN_IF_ERROR(write_state(*txn, *c, pending, clock.last()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  if (added) install_storage(std::move(added));
  clock_ = clock;
  catalogue_ = std::move(cat);
  commit_cursor(cur);
  apply_pending(*c, pending);
  return {};
}

Status Node::drop_collection(std::string_view name) {
  SHOAL_ASSERT(!open_group_);
  SHOAL_ASSIGN_OR_RETURN(Collection * c, find_or_error(name));
  // One transaction: the catalogue entry goes (a delete of the create dots this node observed)
  // and so does every record (a delete of every dot observed), both through the delta buffer to
  // the peers. The collection's storage stays, hidden, with its causal context: that context is
  // what keeps the deleted records from coming back when a peer that has not heard of the drop
  // sends them, and what makes a re-create start empty.
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  DeltaBuffer::Cursor cur = buffer_.cursor();
  crdt::ORMap dropped = catalogue_;
  SHOAL_RETURN_IF_ERROR(dropped.remove(name).status());
  crdt::ORMap cat = catalogue_;
  SHOAL_RETURN_IF_ERROR(join_catalogue_in_txn(*txn, cat, dropped, cur, nullptr));
  SHOAL_ASSIGN_OR_RETURN(crdt::Delta all, delete_all_delta(*txn, *c));
  if (options_.mutations.drop_keeps_records) all = {};  // mutation under test
  Pending pending = Pending::of(*c);
  if (!all.records.empty()) SHOAL_RETURN_IF_ERROR(apply_delta_in_txn(*txn, *c, all, pending, cur, nullptr));
  SHOAL_RETURN_IF_ERROR(write_state(*txn, *c, pending, clock_.last()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  catalogue_ = std::move(cat);
  commit_cursor(cur);
  apply_pending(*c, pending);
  if (options_.snapshots != nullptr) options_.snapshots->remove(c->id);
  open_report_.index_source.erase(std::string(name));
  return {};
}

std::vector<CollectionInfo> Node::list_collections() const {
  std::vector<CollectionInfo> out;
  for (const auto& [name, c] : collections_) {
    if (!live(name)) continue;
    out.push_back(CollectionInfo{c->spec, c->id, c->live, c->index->memory().total()});
  }
  return out;
}

Result<CollectionInfo> Node::collection_info(std::string_view name) const {
  SHOAL_ASSIGN_OR_RETURN(Collection * c, find_or_error(name));
  return CollectionInfo{c->spec, c->id, c->live, c->index->memory().total()};
}

// --- the one path from a delta to the store ---

bool Node::join_record(crdt::Entries& local, const crdt::CausalContext& local_ctx, std::span<const crdt::Entry> remote,
                       const crdt::CausalContext& remote_ctx) const {
  if (!options_.mutations.lww_join) return crdt::join_entries(local, local_ctx, remote, remote_ctx);
  // Mutation under test: last writer wins, blind to causal contexts.
  const crdt::Entry* best = crdt::winner(local);
  for (const auto& e : remote) {
    if (best == nullptr || crdt::loses_to(*best, e)) best = &e;
  }
  if (best == nullptr) return false;
  crdt::Entries out{*best};
  if (out == local) return false;
  local = std::move(out);
  return true;
}

Status Node::join_in_txn(store::WriteTxn& txn, Collection& c, const std::vector<std::string>& ids,
                         const crdt::RecordMap& remote, const crdt::CausalContext& remote_ctx, JoinKind kind,
                         Pending& pending, DeltaBuffer::Cursor& cursor, const Origin* origin) {
  const crdt::CausalContext ctx_before = pending.ctx;
  crdt::Delta relay;  // kRepair: what changed here, as a delta (the changed records and their dots)
  bool changed = false;
  for (const auto& id : ids) {
    const std::string key = record_key(c.id, id);
    StoredRecord local;
    auto got = txn.get(Table::kRecords, key);
    if (got.ok()) {
      SHOAL_ASSIGN_OR_RETURN(local, format::read_record(txn, c.id, key, *got));
    } else if (got.status().code() != Code::kNotFound) {
      return got.status();
    }
    auto rit = remote.find(id);
    const std::span<const crdt::Entry> theirs =
        rit == remote.end() ? std::span<const crdt::Entry>() : std::span<const crdt::Entry>(rit->second);
    crdt::Entries before = local.entries;
    const bool record_changed = join_record(local.entries, pending.ctx, theirs, remote_ctx);
    // A repair adds only the dots it received: the sender's context also covers records of
    // buckets not exchanged (docs/protocol.md, "Digest path").
    if (kind == JoinKind::kRepair) crdt::add_entry_dots(pending.ctx, theirs);
    if (!record_changed) continue;
    changed = true;
    if (local.entries.empty()) {
      SHOAL_RETURN_IF_ERROR(format::del_record(txn, c.id, key, local.label));
    } else {
      if (local.label == 0) local.label = pending.next_label++;
      SHOAL_RETURN_IF_ERROR(format::put_record(txn, c.id, key, local.label, local.entries));
    }
    // The index snapshot and the open state no longer show this label as stored: replayed at the
    // next open, from the record the value names.
    if (index_dirty_kept_ && local.label != 0) {
      SHOAL_RETURN_IF_ERROR(txn.put(Table::kIndexDirty, format::vector_key(c.id, local.label), id));
    }
    if (kind == JoinKind::kRepair) {
      relay.records[id] = local.entries;
      crdt::add_entry_dots(relay.context, before);
      crdt::add_entry_dots(relay.context, local.entries);
    }
    pending.changes.push_back({id, local.label, std::move(before), std::move(local.entries)});
  }
  if (kind == JoinKind::kDelta) pending.ctx.merge(remote_ctx);
  if (!(pending.ctx == ctx_before)) changed = true;
  if (!changed) return {};
  pending.state_dirty = true;
  if (kind == JoinKind::kDelta) {
    crdt::Delta whole;
    whole.context = remote_ctx;
    whole.records = remote;
    return buffer_.append(txn, cursor, c.id, origin, whole);
  }
  if (relay.records.empty()) return {};
  return buffer_.append(txn, cursor, c.id, origin, relay);
}

Status Node::apply_delta_in_txn(store::WriteTxn& txn, Collection& c, const crdt::Delta& delta, Pending& pending,
                                DeltaBuffer::Cursor& cursor, const Origin* origin) {
  std::vector<std::string> ids;
  ids.reserve(delta.records.size());
  for (const auto& [id, entries] : delta.records) ids.push_back(id);
  return join_in_txn(txn, c, ids, delta.records, delta.context, JoinKind::kDelta, pending, cursor, origin);
}

Status Node::join_catalogue_in_txn(store::WriteTxn& txn, crdt::ORMap& cat, const crdt::ORMap& theirs,
                                   DeltaBuffer::Cursor& cursor, const Origin* origin) {
  if (!cat.join_state(theirs)) return {};
  SHOAL_RETURN_IF_ERROR(txn.put(Table::kMeta, kCatalogueKey, encode_catalogue(cat)));
  if (origin != nullptr && options_.mutations.catalogue_not_relayed) return {};  // mutation under test
  return buffer_.append(txn, cursor, kCatalogueCid, origin, cat.to_delta());
}

Result<crdt::Delta> Node::delete_all_delta(store::WriteTxn& txn, const Collection& c) const {
  crdt::Delta d;
  Status err;
  SHOAL_RETURN_IF_ERROR(txn.scan(Table::kRecords, store::Range::prefix(collection_prefix(c.id)),
                                 [&](std::string_view k, std::string_view v) {
                                   auto rec = decode_record(v, k);
                                   if (!rec.ok()) {
                                     err = rec.status();
                                     return false;
                                   }
                                   d.records[std::string(id_of_record_key(k))];
                                   crdt::add_entry_dots(d.context, rec->entries);
                                   return true;
                                 }));
  SHOAL_RETURN_IF_ERROR(err);
  return d;
}

void Node::commit_cursor(const DeltaBuffer::Cursor& cursor) {
  if (buffer_.commit(cursor)) sync_.on_buffer_grew();
}

Status Node::write_state(store::WriteTxn& txn, const Collection& c, const Pending& pending, crdt::Hlc hlc) {
  if (!pending.state_dirty) return {};
  // Mutation under test: the dot counter (in the context) is persisted only every 4th write.
  if (options_.mutations.lazy_counter && (++lazy_counter_writes_ % 4) != 0) return {};
  return txn.put(Table::kContexts, u32_be(c.id), encode_collection_state(pending.next_label, hlc, pending.ctx));
}

void Node::apply_pending(Collection& c, Pending& pending) {
  // A collection's context only grows: a transaction that would shrink it is a bug.
  SHOAL_ASSERT(pending.ctx.includes(c.ctx));
  SHOAL_ASSERT(pending.next_label >= c.next_label);
  c.ctx = std::move(pending.ctx);
  c.next_label = pending.next_label;
  // The final state of each touched label, in change order.
  std::map<std::uint64_t, const Pending::Change*> last;
  for (const auto& ch : pending.changes) {
    c.digests.update_record(ch.id, ch.before, ch.after);
    last[ch.label] = &ch;
  }
  // With a queue (NodeOptions::index_queue_max), index operations wait there for the driver;
  // search answers for them from the queue meanwhile.
  const bool deferred = options_.index_queue_max > 0;
  std::vector<std::uint64_t> add_labels;
  std::vector<float> add_vectors;
  // Takes a label out of the index (a deleted record, or a stub), or queues that.
  auto unindex = [&](std::uint64_t label) {
    if (deferred) {
      c.unindexed.push_back(IndexOp{label, {}});
      ++index_backlog_;
    } else if (c.index->contains(label)) {
      Status s = c.index->remove(label);
      if (!s.ok()) SHOAL_LOG(options_.logger, kError, "node", "index remove: ", s.to_string());
    }
  };
  for (const auto& [label, ch] : last) {
    auto& d = c.doc(label);
    const bool was_live = !d.id.empty();
    if (was_live && d.evicted) --c.stubs;
    if (ch->after.empty()) {
      if (was_live) {
        c.unmap_id(d.id);
        c.clear_doc(d);
        --c.live;
      }
      unindex(label);
      continue;
    }
    // Stored payloads were validated before they were committed; decoding cannot fail short of
    // memory corruption, and the index is derived state that a reopen rebuilds.
    const crdt::Entry& w = *crdt::winner(ch->after);
    auto value = decode_entry_payload(w);
    SHOAL_ASSERT(value.ok());
    if (!was_live) ++c.live;
    d.id = ch->id;
    c.set_extras(d, std::move(value->metadata), std::move(value->model));
    d.evicted = is_stub_payload(as_view(w.payload));
    d.digest = crdt::record_digest(d.id, ch->after);
    for (const auto& e : ch->after) {
      if (e.clock > c.max_clock) c.max_clock = e.clock;
    }
    c.map_id(label);
    if (d.evicted) {
      // A stub (evicted here, or received from a peer that evicted it): out of the index; cold
      // search finds it at the sink.
      ++c.stubs;
      unindex(label);
      continue;
    }
    if (deferred) {
      c.unindexed.push_back(IndexOp{label, std::move(value->vector)});
      ++index_backlog_;
      continue;
    }
    add_labels.push_back(label);
    add_vectors.insert(add_vectors.end(), value->vector.begin(), value->vector.end());
  }
  if (!add_labels.empty()) {
    Status s = add_labels.size() == 1 ? c.index->add(add_labels[0], add_vectors)
                                      : c.index->add_batch(add_labels, add_vectors, options_.build_threads);
    // The write is durable; the index is derived state that a reopen rebuilds from the store.
    if (!s.ok()) SHOAL_LOG(options_.logger, kError, "node", "index add after a durable write: ", s.to_string());
  }
}

// --- writes ---

Status Node::upsert(std::string_view collection, std::string_view id, RecordValue value) {
  std::vector<RecordInput> one;
  one.push_back(RecordInput{std::string(id), std::move(value)});
  return upsert_batch(collection, std::move(one));
}

Status Node::check_upsert(std::string_view collection, std::vector<RecordInput>& records) const {
  if (records.size() > options_.limits.max_batch_records) {
    return Status(Detail::kTooLarge,
                  str_cat("batch has ", records.size(), " records, limit ", options_.limits.max_batch_records));
  }
  SHOAL_ASSIGN_OR_RETURN(Collection * c, find_or_error(collection));
  // Validate everything before touching the store: a rejected batch changes nothing.
  for (std::size_t i = 0; i < records.size(); ++i) {
    auto& r = records[i];
    r.value.metadata.normalize();
    Status s = validate_record_id(r.id, options_.limits);
    if (s.ok()) s = validate_record(r.value, c->spec.dimension, c->spec.metric, options_.limits);
    if (!s.ok()) return records.size() == 1 ? s : s.with_context(str_cat("batch record ", i, " '", r.id, "'"));
  }
  return {};
}

Status Node::check_remove(std::string_view collection, std::string_view id) const {
  SHOAL_RETURN_IF_ERROR(validate_record_id_for_lookup(id, options_.limits));
  return find_or_error(collection).status();
}

Status Node::upsert_batch(std::string_view collection, std::vector<RecordInput> records) {
  SHOAL_RETURN_IF_ERROR(check_upsert(collection, records));
  WriteRequest r{std::string(collection), std::move(records), std::nullopt};
  return write_group(std::span<WriteRequest>(&r, 1))[0];
}

Status Node::remove(std::string_view collection, std::string_view id) {
  SHOAL_RETURN_IF_ERROR(check_remove(collection, id));
  WriteRequest r{std::string(collection), {}, std::string(id)};
  return write_group(std::span<WriteRequest>(&r, 1))[0];
}

Status Node::prepare_request(store::WriteTxn& txn, Collection& c, const WriteRequest& r) {
  // Reads only: every way a request can fail on its own is found here, before it changes the
  // shared transaction, so that it can be left out and the group go on without it.
  SHOAL_RETURN_IF_ERROR(check_sink_quota(c));
  if (r.remove_id) {
    const std::string key = record_key(c.id, *r.remove_id);
    auto got = txn.get(Table::kRecords, key);
    if (!got.ok()) {
      if (got.status().code() == Code::kNotFound) {
        return Status(Detail::kNoSuchRecord, str_cat("no record '", *r.remove_id, "' in '", r.collection, "'"));
      }
      return got.status();
    }
    return decode_record(*got, key).status();
  }
  for (const auto& rec : r.records) {
    const std::string key = record_key(c.id, rec.id);
    auto got = txn.get(Table::kRecords, key);
    if (got.ok()) {
      SHOAL_RETURN_IF_ERROR(decode_record(*got, key).status());
    } else if (got.status().code() != Code::kNotFound) {
      return got.status();
    }
  }
  return {};
}

Status Node::join_request(store::WriteTxn& txn, Collection& c, const WriteRequest& r, Pending& pending,
                          DeltaBuffer::Cursor& cursor, crdt::HybridClock& clock) {
  if (r.remove_id) {
    const std::string key = record_key(c.id, *r.remove_id);
    SHOAL_ASSIGN_OR_RETURN(auto got, txn.get(Table::kRecords, key));
    SHOAL_ASSIGN_OR_RETURN(auto local, decode_record(got, key));
    crdt::Delta delta;
    delta.records[*r.remove_id];  // named with no entries: a delete
    for (const auto& e : local.entries) delta.context.add(e.dot);
    return apply_delta_in_txn(txn, c, delta, pending, cursor, nullptr);
  }
  for (const auto& rec : r.records) {
    const std::string key = record_key(c.id, rec.id);
    crdt::Delta delta;
    const crdt::Dot dot = pending.ctx.next_dot(issuer_);
    auto got = txn.get(Table::kRecords, key);
    if (got.ok()) {
      SHOAL_ASSIGN_OR_RETURN(auto local, decode_record(*got, key));
      for (const auto& e : local.entries) delta.context.add(e.dot);
    } else if (got.status().code() != Code::kNotFound) {
      return got.status();
    }
    const std::string payload = encode_payload(rec.value);
    delta.records[rec.id].push_back(crdt::Entry{dot, clock.tick(wall_now()), to_bytes(payload)});
    delta.context.add(dot);
    SHOAL_RETURN_IF_ERROR(apply_delta_in_txn(txn, c, delta, pending, cursor, nullptr));
  }
  return {};
}

std::vector<Status> Node::write_group(std::span<WriteRequest> requests) {
  std::vector<Status> out;
  if (begin_group(requests, out)) {
    const Status committed = commit_group();
    end_group(committed, out);
  }
  return out;
}

bool Node::begin_group(std::span<WriteRequest> requests, std::vector<Status>& out) {
  SHOAL_ASSERT(!open_group_);
  out.assign(requests.size(), Status());
  if (requests.empty()) return false;
  if (Status fresh = ensure_fresh_issuer(); !fresh.ok()) {
    for (auto& s : out) s = fresh;
    return false;
  }
  auto begun = store_->begin_write();
  if (!begun.ok()) {
    for (auto& s : out) s = begun.status();
    return false;
  }
  auto g = std::make_unique<OpenGroup>(OpenGroup{std::move(*begun), buffer_.cursor(), clock_, {}, {}});
  store::WriteTxn& txn = *g->txn;
  Status shared;  // a failure of the shared transaction: fails every request that joined it
  for (std::size_t i = 0; i < requests.size() && shared.ok(); ++i) {
    const WriteRequest& r = requests[i];
    auto c = find_or_error(r.collection);  // it may have been dropped since check_upsert
    if (!c.ok()) {
      out[i] = c.status();
      continue;
    }
    if (Status s = prepare_request(txn, **c, r); !s.ok()) {
      out[i] = std::move(s);
      continue;
    }
    auto p = std::find_if(g->pendings.begin(), g->pendings.end(), [&](const auto& e) { return e.first == *c; });
    if (p == g->pendings.end()) p = g->pendings.insert(g->pendings.end(), {*c, Pending::of(**c)});
    g->joined.push_back(i);
    shared = join_request(txn, **c, r, p->second, g->cursor, g->clock);
  }
  if (g->joined.empty()) return false;  // the transaction aborts unchanged
  for (auto& [c, p] : g->pendings) {
    if (shared.ok()) shared = write_state(txn, *c, p, g->clock.last());
  }
  if (!shared.ok()) {
    // Aborted: neither the store nor memory changed for any of them.
    for (std::size_t i : g->joined) out[i] = shared;
    return false;
  }
  open_group_ = std::move(g);
  return true;
}

Status Node::commit_group() {
  SHOAL_ASSERT(open_group_);
  return open_group_->txn->commit();
}

void Node::end_group(const Status& committed, std::vector<Status>& out) {
  SHOAL_ASSERT(open_group_);
  std::unique_ptr<OpenGroup> g = std::move(open_group_);
  if (!committed.ok()) {
    // The commit failed: LMDB kept nothing of it, and memory was never touched.
    for (std::size_t i : g->joined) out[i] = committed;
    return;
  }
  clock_ = g->clock;
  commit_cursor(g->cursor);
  for (auto& [c, p] : g->pendings) apply_pending(*c, p);
}

// --- the index queue ---

Status IndexWork::run(unsigned threads, const std::function<bool()>& stop, const IndexChangeBracket& bracket) {
  // Single adds hold the index's write lock one insert at a time, so searches interleave; a long
  // run of adds (a backlog after a batch) goes in parallel as one add_batch.
  constexpr std::size_t kBatchFrom = 128;
  applied_ = 0;
  Status first;
  // Surrounds one change to the index with the bracket (left on every path out).
  struct Bracketed {
    const IndexChangeBracket& b;
    explicit Bracketed(const IndexChangeBracket& bracket) : b(bracket) {
      if (b.enter) b.enter();
    }
    ~Bracketed() {
      if (b.leave) b.leave();
    }
    Bracketed(const Bracketed&) = delete;
    Bracketed& operator=(const Bracketed&) = delete;
  };
  std::vector<std::uint64_t> labels;
  std::vector<float> vectors;
  bool stopped = false;
  auto keep = [&first](Status s) {
    if (!s.ok() && first.ok()) first = std::move(s);
  };
  // Applies the pending adds (ops_[applied_, applied_ + labels.size())); false when `stop` ended
  // them, and then applied_ stays at the first of them that is not in. A parallel batch is asked
  // once, before it starts, and then runs whole: stopped part way, its inserted rows would not be
  // a prefix of the queue, and applying them again later goes through hnswlib's update path,
  // which was seen to leave an element unreachable (a tiny, nearly collinear set, under TSan).
  auto flush = [&] {
    if (labels.size() >= kBatchFrom && threads > 1) {
      if (stop && stop()) return false;
      {
        Bracketed change(bracket);
        keep(index_->add_batch(labels, vectors, threads));
      }
      applied_ += labels.size();
    } else {
      const std::size_t dim = labels.empty() ? 0 : vectors.size() / labels.size();
      for (std::size_t i = 0; i < labels.size(); ++i) {
        if (stop && stop()) return false;
        {
          Bracketed change(bracket);
          keep(index_->add(labels[i], std::span<const float>(vectors).subspan(i * dim, dim)));
        }
        ++applied_;
      }
    }
    labels.clear();
    vectors.clear();
    return true;
  };
  for (const IndexOp& op : ops_) {
    if (op.vector.empty()) {
      if (!flush()) {
        stopped = true;
        break;
      }
      {
        Bracketed change(bracket);
        if (index_->contains(op.label)) keep(index_->remove(op.label));
      }
      ++applied_;
      continue;
    }
    labels.push_back(op.label);
    vectors.insert(vectors.end(), op.vector.begin(), op.vector.end());
  }
  if (!stopped) flush();
  return first;
}

std::optional<IndexWork> Node::take_index_work(std::size_t max_ops) {
  SHOAL_ASSERT(!index_work_out_);
  if (index_backlog_ == 0 || max_ops == 0) return std::nullopt;
  // Collections take turns by id: the next one after the last served that has work, else the
  // first that has.
  Collection* pick = nullptr;
  Collection* first = nullptr;
  for (const auto& [name, c] : collections_) {
    if (c->unindexed.empty()) continue;
    if (first == nullptr || c->id < first->id) first = c.get();
    if (c->id > next_work_cid_ && (pick == nullptr || c->id < pick->id)) pick = c.get();
  }
  if (pick == nullptr) pick = first;
  SHOAL_ASSERT(pick != nullptr);
  next_work_cid_ = pick->id;
  IndexWork w;
  w.index_ = pick->index.get();
  w.cid_ = pick->id;
  const std::size_t n = std::min(max_ops, pick->unindexed.size());
  w.ops_.assign(pick->unindexed.begin(), pick->unindexed.begin() + static_cast<std::ptrdiff_t>(n));
  w.applied_ = n;  // until run() says otherwise
  index_work_out_ = true;
  return w;
}

void Node::finish_index_work(const IndexWork& work, const Status& result) {
  SHOAL_ASSERT(index_work_out_);
  index_work_out_ = false;
  Collection* c = find_by_id(work.cid_);
  SHOAL_ASSERT(c != nullptr && c->unindexed.size() >= work.ops_.size() && work.applied_ <= work.ops_.size());
  for (std::size_t i = 0; i < work.applied_; ++i) c->unindexed.pop_front();
  index_backlog_ -= work.applied_;
  // The writes are durable; the index is derived state that a reopen rebuilds from the store.
  if (!result.ok()) SHOAL_LOG(options_.logger, kError, "node", "queued index update: ", result.to_string());
}

void Node::drain_index() {
  while (auto w = take_index_work(index_backlog_)) {
    const Status s = w->run(options_.build_threads);
    finish_index_work(*w, s);
  }
}

void Node::drain_collection(Collection& c) {
  SHOAL_ASSERT(!index_work_out_);
  if (c.unindexed.empty()) return;
  IndexWork w;
  w.index_ = c.index.get();
  w.cid_ = c.id;
  w.ops_.assign(c.unindexed.begin(), c.unindexed.end());
  index_work_out_ = true;
  const Status s = w.run(options_.build_threads);
  finish_index_work(w, s);
}

std::vector<index::Neighbor> Node::search_queue(const Collection& c, std::span<const float> query, std::size_t k,
                                                const index::LabelPredicate* filter,
                                                std::vector<std::uint64_t>& queued) const {
  // The latest operation of each queued label decides: an add is a candidate scored exactly, a
  // remove hides the label. Either way the graph must not answer for it (stale or gone).
  std::vector<std::pair<std::uint64_t, std::size_t>> order;  // (label, position in the queue)
  order.reserve(c.unindexed.size());
  for (std::size_t i = 0; i < c.unindexed.size(); ++i) order.emplace_back(c.unindexed[i].label, i);
  std::sort(order.begin(), order.end());
  queued.clear();
  std::vector<std::uint64_t> labels;
  std::vector<float> base;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i + 1 < order.size() && order[i + 1].first == order[i].first) continue;  // a later op decides
    const std::uint64_t label = order[i].first;
    queued.push_back(label);
    const IndexOp& op = c.unindexed[order[i].second];
    if (op.vector.empty() || (filter != nullptr && !(*filter)(label))) continue;
    labels.push_back(label);
    base.insert(base.end(), op.vector.begin(), op.vector.end());
  }
  const index::KernelTable* kernels = options_.index_isa ? index::kernels_for(*options_.index_isa) : nullptr;
  if (kernels == nullptr) kernels = &index::best_kernels();
  auto hits = index::exact_knn(*kernels, to_index_metric(c.spec.metric), base, c.spec.dimension, query, k);
  for (auto& h : hits) h.label = labels[h.label];
  return hits;
}

// --- reads ---

Result<ChangeBatch> Node::changes_after(std::uint64_t after, std::size_t max_entries) const {
  ChangeBatch out;
  out.next = after;
  if (after + 1 < buffer_.oldest()) {
    out.gap = true;
    after = buffer_.oldest() - 1;
    out.next = after;
  }
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  Status inner;
  SHOAL_RETURN_IF_ERROR(buffer_.scan(*txn, after, max_entries, [&](std::uint64_t seq, const format::BufferEntry& e) {
    out.next = seq;
    if (e.cid == format::kCatalogueCid) return true;
    const Collection* c = find_by_id(e.cid);
    if (c == nullptr) return true;
    // As stored: a skeleton names the same ids, and an empty entry list still means a delete.
    auto delta = crdt::decode_delta(format::as_bytes(e.stored));
    if (!delta.ok()) {
      inner = delta.status();
      return false;
    }
    for (const auto& [id, entries] : delta->records) {
      Change ch;
      ch.seq = seq;
      ch.collection = c->spec.name;
      ch.id = id;
      ch.deleted = entries.empty();
      if (e.has_origin) ch.origin = e.origin;
      out.changes.push_back(std::move(ch));
    }
    return true;
  }));
  SHOAL_RETURN_IF_ERROR(inner);
  return out;
}

Result<GetResult> Node::get(std::string_view collection, std::string_view id) const {
  SHOAL_RETURN_IF_ERROR(validate_record_id_for_lookup(id, options_.limits));
  SHOAL_ASSIGN_OR_RETURN(Collection * c, find_or_error(collection));
  const std::string key = record_key(c->id, id);
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  auto got = txn->get(Table::kRecords, key);
  if (!got.ok()) {
    if (got.status().code() == Code::kNotFound) {
      return Status(Detail::kNoSuchRecord, str_cat("no record '", id, "' in '", collection, "'"));
    }
    return got.status();
  }
  SHOAL_ASSIGN_OR_RETURN(auto rec, format::read_record(*txn, c->id, key, *got));
  GetResult out;
  std::vector<const crdt::Entry*> order;
  for (const auto& e : rec.entries) order.push_back(&e);
  // Winner first, then the other siblings in descending winner order.
  if (options_.mutations.winner_by_dot) {  // mutation under test
    std::sort(order.begin(), order.end(), [](const crdt::Entry* a, const crdt::Entry* b) { return b->dot < a->dot; });
  } else {
    std::sort(order.begin(), order.end(), [](const crdt::Entry* a, const crdt::Entry* b) { return crdt::loses_to(*b, *a); });
  }
  for (const crdt::Entry* e : order) {
    if (is_stub_payload(as_view(e->payload))) {
      SHOAL_ASSIGN_OR_RETURN(auto stub, decode_stub_payload(as_view(e->payload)));
      out.siblings.push_back(Sibling{std::move(stub.value), e->clock, e->dot, true, stub.digest});
      continue;
    }
    SHOAL_ASSIGN_OR_RETURN(auto value, decode_entry_payload(*e));
    out.siblings.push_back(Sibling{std::move(value), e->clock, e->dot});
  }
  return out;
}

Result<RecordsPage> Node::records_after(std::string_view collection, std::string_view after,
                                        std::size_t max_records, std::size_t max_bytes) const {
  SHOAL_ASSIGN_OR_RETURN(Collection * c, find_or_error(collection));
  store::Range range = store::Range::prefix(collection_prefix(c->id));
  // The first key after `after`'s: the key itself with one zero byte appended.
  if (!after.empty()) range.begin = record_key(c->id, after) + std::string(1, '\0');
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  RecordsPage page;
  std::size_t bytes = 0;
  Status error;
  SHOAL_RETURN_IF_ERROR(txn->scan(Table::kRecords, range, [&](std::string_view key, std::string_view value) {
    if (page.records.size() >= std::max<std::size_t>(max_records, 1) || (bytes >= max_bytes && !page.records.empty())) {
      page.more = true;
      return false;
    }
    auto rec = format::read_record(*txn, c->id, key, value);
    if (!rec.ok()) {
      error = rec.status();
      return false;
    }
    const crdt::Entry* win = crdt::winner(rec->entries);
    if (win == nullptr) return true;  // no value (deleted): nothing to export
    auto v = decode_entry_payload(*win);
    if (!v.ok()) {
      error = v.status();
      return false;
    }
    RecordInput r{std::string(id_of_record_key(key)), std::move(*v)};
    bytes += r.id.size() + r.value.vector.size() * sizeof(float) + r.value.model.size() + 64;
    for (const auto& [k, val] : r.value.metadata.fields) {
      bytes += k.size() + 32;
      if (const auto* text = std::get_if<std::string>(&val)) bytes += text->size();
    }
    page.records.push_back(std::move(r));
    return true;
  }));
  SHOAL_RETURN_IF_ERROR(error);
  return page;
}

Result<std::vector<Hit>> Node::search(std::string_view collection, std::span<const float> query,
                                      const SearchOptions& options) const {
  SHOAL_ASSIGN_OR_RETURN(Collection * c, find_or_error(collection));
  SHOAL_RETURN_IF_ERROR(validate_vector(query, c->spec.dimension, c->spec.metric));
  if (options.k == 0 || options.k > options_.limits.max_k) {
    return Status(options.k == 0 ? Detail::kOutOfRange : Detail::kTooLarge,
                  str_cat("k must be 1..", options_.limits.max_k, ", got ", options.k));
  }
  index::SearchRequest req;
  req.query = query;
  req.k = options.k;
  req.ef = options.ef == 0 ? 0 : std::max<std::size_t>(options.ef, options.k);
  index::LabelPredicate predicate, present, graph_predicate;
  std::vector<std::uint64_t> matching;
  if (!options.filter.empty()) {
    const Filter& filter = options.filter;
    const auto& docs = c->docs;
    const DocExtras& extras = c->extras;
    // A stub (an evicted record, node_evict.cpp) has metadata but no vector: never a candidate.
    predicate = [&filter, &docs, &extras](std::uint64_t label) {
      return label < docs.size() && !docs[label].id.empty() && !docs[label].evicted &&
             filter.matches(extras.metadata(docs[label].extras));
    };
    present = [&docs](std::uint64_t label) {
      return label < docs.size() && !docs[label].id.empty() && !docs[label].evicted;
    };
  }
  // Read-your-writes with the index queue: queued labels are scored exactly from the queue, and
  // the graph (stale or not yet holding them) is kept from answering for them.
  std::vector<std::uint64_t> queued;
  std::vector<index::Neighbor> fresh;
  if (!c->unindexed.empty()) {
    fresh = search_queue(*c, query, options.k, options.filter.empty() ? nullptr : &predicate, queued);
    const index::LabelPredicate* user = options.filter.empty() ? nullptr : &predicate;
    graph_predicate = [&queued, user](std::uint64_t label) {
      return !std::binary_search(queued.begin(), queued.end(), label) && (user == nullptr || (*user)(label));
    };
    req.filter = &graph_predicate;
  }
  if (!options.filter.empty()) {
    // Labels start at 1. The index's pre-planner samples the filter's selectivity and, when it
    // is selective, lists the matching labels for an exact scan (index/planner.hpp).
    index::plan_filter(req, 1, c->docs.size(), present, queued.empty() ? predicate : graph_predicate, matching);
  }
  SHOAL_ASSIGN_OR_RETURN(auto result, c->index->search(req));
  if (!fresh.empty()) {
    std::vector<index::Neighbor> merged;
    merged.reserve(result.neighbors.size() + fresh.size());
    auto closer = [](const index::Neighbor& a, const index::Neighbor& b) {
      return a.distance < b.distance || (a.distance == b.distance && a.label < b.label);
    };
    std::merge(result.neighbors.begin(), result.neighbors.end(), fresh.begin(), fresh.end(),
               std::back_inserter(merged), closer);
    if (merged.size() > options.k) merged.resize(options.k);
    result.neighbors = std::move(merged);
  }
  std::vector<Hit> hits;
  hits.reserve(result.neighbors.size());
  for (const auto& nb : result.neighbors) {
    SHOAL_ASSERT(nb.label < c->docs.size() && !c->docs[nb.label].id.empty());
    const auto& d = c->docs[nb.label];
    if (options.with_metadata) {
      hits.push_back(Hit{d.id, nb.distance, c->metadata_of(d), c->model_of(d)});
    } else {
      hits.push_back(Hit{d.id, nb.distance, {}, {}});
    }
  }
  return hits;
}

Status Node::save_snapshots() {
  if (options_.snapshots == nullptr) return {};
  for (const auto& [name, c] : collections_) {
    // O(changes): a snapshot that, with the labels changed since, still gives the index is kept
    // while they are few (each costs an insert at the next open).
    std::uint64_t dirty = 0;
    {
      SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
      store::Range r = store::Range::prefix(collection_prefix(c->id));
      r.limit = options_.snapshot_dirty_max + 1;
      SHOAL_RETURN_IF_ERROR(txn->scan(Table::kIndexDirty, r, [&](std::string_view, std::string_view) {
        ++dirty;
        return true;
      }));
    }
    if (c->snapshot_valid && dirty <= options_.snapshot_dirty_max) {
      // The snapshot file is kept, so what the index in memory holds does not matter: the
      // queue's operations are committed and their labels are in the table, which the next open
      // replays on the file (D65). The open state may be written whenever it is missing: it is
      // taken from the docs, which every committed write already changed, and the labels changed
      // since stay in the table and are replayed on it, which is idempotent.
      if (!c->state_valid) {
        SHOAL_RETURN_IF_ERROR(save_open_state(*c));
        c->state_valid = true;
      }
      continue;
    }
    // A snapshot claims to cover the whole buffer: this collection's queue goes into its index
    // first.
    drain_collection(*c);
    SHOAL_RETURN_IF_ERROR(options_.snapshots->save(c->id, *c->index, buffer_.last()));
    c->snapshot_valid = true;
    SHOAL_RETURN_IF_ERROR(save_open_state(*c));
    c->state_valid = true;
    // The snapshot and the open state cover every change so far (the queue was drained, and no
    // write runs during this call); a crash before this commit only replays them again.
    SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
    std::vector<std::string> keys;
    SHOAL_RETURN_IF_ERROR(txn->scan(Table::kIndexDirty, store::Range::prefix(collection_prefix(c->id)),
                                    [&](std::string_view k, std::string_view) {
                                      keys.emplace_back(k);
                                      return true;
                                    }));
    for (const auto& k : keys) SHOAL_RETURN_IF_ERROR(txn->del(Table::kIndexDirty, k));
    SHOAL_RETURN_IF_ERROR(txn->commit());
  }
  return {};
}

NodeStats Node::stats() const {
  NodeStats s;
  for (const auto& [name, c] : collections_) {
    if (!live(name)) continue;
    ++s.collections;
    s.live_records += c->live;
    s.index_bytes += c->index->memory().total();
  }
  s.delta_buffer_entries = buffer_.size();
  s.last_delta_seq = buffer_.last();
  s.replica = issuer_.to_string();
  s.remote_clocks_refused = remote_clocks_refused_;
  s.own_claims_stripped = own_claims_stripped_;
  s.implausible_incarnations = implausible_incarnations_;
  s.claim_incarnations = claim_incarnations_;
  s.claims_unheeded = claims_unheeded_;
  const EvictionStatus e = eviction_status();
  s.evicted_records = e.evicted_records;
  s.evicted_bytes = e.evicted_bytes;
  return s;
}

Result<crdt::ORMap> Node::crdt_state_for_testing(std::string_view collection) const {
  Collection* c = find(collection);
  if (c == nullptr) return Status(Detail::kNoSuchCollection, str_cat("no collection named '", collection, "'"));
  crdt::Delta all;
  all.context = c->ctx;
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  Status err;
  SHOAL_RETURN_IF_ERROR(txn->scan(Table::kRecords, store::Range::prefix(collection_prefix(c->id)),
                                  [&](std::string_view k, std::string_view v) {
                                    auto rec = format::read_record(*txn, c->id, k, v);
                                    if (!rec.ok()) {
                                      err = rec.status();
                                      return false;
                                    }
                                    all.records.emplace(std::string(id_of_record_key(k)), std::move(rec->entries));
                                    return true;
                                  }));
  SHOAL_RETURN_IF_ERROR(err);
  crdt::ORMap map;
  (void)map.join(all);
  return map;
}

Result<std::uint64_t> Node::digest_root(std::string_view collection) const {
  Collection* c = find(collection);
  if (c == nullptr) return Status(Detail::kNoSuchCollection, str_cat("no collection named '", collection, "'"));
  return c->digests.root();
}

}  // namespace shoal::node
