// node/core/node_state.hpp: the node's private in-memory state, shared by node.cpp (the local
// data path) and node_sync_host.cpp (what the sync engine asks of the data). Not a public header.
// Thread rules: as Node.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "crdt/digest.hpp"
#include "index/hnsw_index.hpp"
#include "node/core/doc_extras.hpp"
#include "node/core/label_map.hpp"
#include "node/core/node.hpp"
#include "node/core/node_format.hpp"
#include "node/core/vector_store.hpp"

namespace shoal::node {

// Per-collection in-memory state; all of it is derived from the store.
struct Node::Collection {
  CollectionSpec spec;
  std::uint32_t id = 0;
  crdt::CausalContext ctx;  // only grows (asserted when a transaction's effects are applied)
  crdt::DigestTree digests{format::kDigestConfig};
  // The vectors the index re-ranks with, read in place from the store (node/core/vector_store.hpp).
  // Declared before `index`, which refers to it, so that it is destroyed after.
  std::unique_ptr<StoreFloatSource> floats;
  std::unique_ptr<index::HnswIndex> index;
  // The snapshot file, with the index_dirty table's labels replayed on it, gives `index`: it was
  // loaded at open or saved since.
  bool snapshot_valid = false;
  // The open state file (docs/node-format.md, "Open state files"), with the index_dirty table's
  // labels replayed on it, gives docs, labels, digests and max_clock: it was loaded at open or
  // saved since.
  bool state_valid = false;
  // 48 bytes: the rare metadata and model tag live in `extras` (D70; inline they made a doc 104
  // bytes, mostly an empty vector and string). Read them with metadata_of and model_of, set them
  // with set_extras, and clear a doc with clear_doc, which frees its extras.
  struct Doc {
    std::string id;  // empty: no live record has this label
    std::uint64_t digest = 0;  // crdt::record_digest of the record's entries (for the open state)
    std::uint32_t extras = DocExtras::kNone;  // its metadata and model tag in `extras`
    bool evicted = false;  // the winner is a stub (node_evict.cpp): not in the index
  };
  std::vector<Doc> docs;  // by label (label 0 unused)
  DocExtras extras;  // the docs' metadata and model tags
  // Record id -> label; the ids are those of `docs` (node/core/label_map.hpp). Use label_of,
  // map_id and unmap_id.
  LabelMap labels;
  std::uint64_t next_label = 1;
  std::uint64_t live = 0;
  std::uint64_t stubs = 0;  // live records whose winner is a stub (counted in `live`)
  // The largest clock of any entry the collection held since open (the node's clock resumes
  // above it; kept in the open state).
  crdt::Hlc max_clock;
  // Index operations of committed writes not yet applied to `index`, oldest first
  // (NodeOptions::index_queue_max > 0). Search answers for their labels from here.
  std::deque<IndexOp> unindexed;

  Doc& doc(std::uint64_t label) {
    if (docs.size() <= label) docs.resize(label + 1);
    return docs[label];
  }
  const Metadata& metadata_of(const Doc& d) const noexcept { return extras.metadata(d.extras); }
  const std::string& model_of(const Doc& d) const noexcept { return extras.model(d.extras); }
  void set_extras(Doc& d, Metadata&& metadata, std::string&& model) {
    d.extras = extras.set(d.extras, std::move(metadata), std::move(model));
  }
  // Empties `d` (its id unmapped first: unmap_id) and frees its extras.
  void clear_doc(Doc& d) {
    extras.release(d.extras);
    d = Doc{};
  }
  // The id docs[label] holds (labels' keys).
  auto id_of() const {
    return [this](std::uint64_t label) -> std::string_view { return docs[label].id; };
  }
  // The label of record `id`; 0 when no live record has it.
  std::uint64_t label_of(std::string_view record_id) const { return labels.find(record_id, id_of()); }
  // Maps docs[label].id to `label` (set the doc's id first). `replace` false: false when the id
  // already has a label, which keeps it.
  bool map_id(std::uint64_t label, bool replace = true) {
    return labels.insert(docs[label].id, label, id_of(), replace);
  }
  // Forgets record `id`'s label; call it before the doc that holds `id` is cleared.
  void unmap_id(std::string_view record_id) { labels.erase(record_id, id_of()); }
};

// Effects of a write transaction, applied to memory only after it commits.
struct Node::Pending {
  struct Change {
    std::string id;
    std::uint64_t label = 0;
    crdt::Entries before;
    crdt::Entries after;
  };
  crdt::CausalContext ctx;
  std::vector<Change> changes;
  std::uint64_t next_label = 1;
  bool state_dirty = false;  // the collection state (context, label counter) must be written

  static Pending of(const Collection& c) { return Pending{c.ctx, {}, c.next_label, false}; }
};

// A group's transaction between Node::begin_group and Node::end_group.
struct Node::OpenGroup {
  std::unique_ptr<store::WriteTxn> txn;
  DeltaBuffer::Cursor cursor;
  crdt::HybridClock clock;
  // One Pending per collection the group touches, in the order of first appearance (never by
  // pointer value: the order of effects must not depend on addresses).
  std::vector<std::pair<Collection*, Pending>> pendings;
  std::vector<std::size_t> joined;  // the requests in the transaction
};

// Peers' deltas must name each dot once: honest replicas never do otherwise, and the join's laws
// assume it (the fuzzer found decodable deltas that break them: tests/fuzz/regressions).
[[nodiscard]] Status check_unique_dots(const crdt::Delta& d);
transport::CollectionSpecWire to_wire(const CollectionSpec& s);
[[nodiscard]] Result<CollectionSpec> from_wire(const transport::CollectionSpecWire& w);
index::IndexParams index_params(const CollectionSpec& s);

}  // namespace shoal::node
