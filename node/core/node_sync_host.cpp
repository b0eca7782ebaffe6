// node/core/node_sync_host.cpp: what the sync engine asks of the node's data (SyncHost): peers'
// delta batches, the replicated catalogue, repair slices in both directions. Every change here
// is validated exactly as an app's write and joined through join_in_txn(), the one path from a
// delta to the store; a rejected message changes nothing.
#include <algorithm>
#include <limits>
#include <optional>
#include <set>

#include "common/assert.hpp"
#include "common/random.hpp"
#include "crdt/codec.hpp"
#include "node/core/node.hpp"
#include "node/core/node_state.hpp"

namespace shoal::node {

using namespace format;
using store::Table;

transport::CollectionSpecWire to_wire(const CollectionSpec& s) {
  return transport::CollectionSpecWire{s.name, s.dimension, metric_to_wire_byte(s.metric), s.m,
                                       s.ef_construction, s.ef_search, s.quantize, s.quant_min, s.quant_max};
}

Result<CollectionSpec> from_wire(const transport::CollectionSpecWire& w) {
  const std::optional<Metric> metric = metric_from_wire_byte(w.metric);
  if (!metric) {
    return Status(Detail::kUnknownName, str_cat("unknown metric ", int{w.metric}));
  }
  CollectionSpec s;
  s.name = w.name;
  s.dimension = w.dimension;
  s.metric = *metric;
  s.m = w.m;
  s.ef_construction = w.ef_construction;
  s.ef_search = w.ef_search;
  s.quantize = w.quantize;
  s.quant_min = w.quant_min;
  s.quant_max = w.quant_max;
  return s;
}

Status check_unique_dots(const crdt::Delta& d) {
  std::set<crdt::Dot> seen;
  for (const auto& [id, entries] : d.records) {
    for (const auto& e : entries) {
      if (!seen.insert(e.dot).second) {
        return Status(Detail::kMalformed, str_cat("dot ", e.dot.to_string(), " appears twice in one delta"));
      }
    }
  }
  return {};
}

Status Node::validate_peer_delta(const Collection& c, const crdt::Delta& delta) const {
  SHOAL_RETURN_IF_ERROR(check_unique_dots(delta));
  for (const auto& [id, entries] : delta.records) {
    SHOAL_RETURN_IF_ERROR(validate_record_id(id, options_.limits));
    for (const auto& e : entries) {
      if (is_stub_payload(as_view(e.payload))) {
        // A peer that evicted this record sends its stub (repair slices read the store): held
        // as a stub here too unless this node has the entry whole (the join keeps ours).
        auto stub = decode_stub_payload(as_view(e.payload));
        if (!stub.ok()) return stub.status().with_context(str_cat("record '", id, "' from peer"));
        SHOAL_RETURN_IF_ERROR(validate_stub(*stub, c.spec.dimension, options_.limits));
        continue;
      }
      auto value = decode_entry_payload(e);
      if (!value.ok()) return value.status().with_context(str_cat("record '", id, "' from peer"));
      SHOAL_RETURN_IF_ERROR(validate_record(*value, c.spec.dimension, c.spec.metric, options_.limits));
    }
  }
  return {};
}

// The catalogue's deltas and states from peers: every name a valid collection name, every entry
// a decodable spec within limits, each dot once.
Status Node::validate_catalogue(const crdt::Delta& d) const {
  SHOAL_RETURN_IF_ERROR(check_unique_dots(d));
  for (const auto& [name, entries] : d.records) {
    SHOAL_RETURN_IF_ERROR(validate_collection_name(name, options_.limits));
    for (const auto& e : entries) {
      auto spec = decode_spec(name, as_view(e.payload));
      if (!spec.ok()) return Status(Detail::kMalformed, str_cat("catalogue entry '", name, "' does not decode"));
      SHOAL_RETURN_IF_ERROR(validate_spec(spec->first, options_.limits));
    }
  }
  return {};
}

// --- identity and collections ---

transport::Hello Node::hello(const crdt::ReplicaId& to) const {
  transport::Hello hello;
  hello.replica = issuer_.encode();
  for (const auto& [name, c] : collections_) {
    hello.collections.push_back(to_wire(c->spec));
    if (const std::uint64_t n = c->ctx.max_counter(to); n > 0) hello.your_counters.push_back({name, n, to.incarnation});
  }
  hello.catalogue = encode_catalogue(catalogue_);
  if (const std::uint64_t n = catalogue_.context().max_counter(to); n > 0) {
    hello.your_counters.push_back({"", n, to.incarnation});
  }
  if (options_.revocations != nullptr) hello.revocations = options_.revocations->encode();
  return hello;
}

Status Node::check_own_counters(const std::vector<transport::CounterWire>& counters) {
  for (const auto& w : counters) {
    // A counter names the incarnation it counts (as we last announced it to that peer); one
    // from a sender before the field counts our current one. A counter of an older incarnation
    // says nothing about the dots we issue now (we never issue under it again), so a hello still
    // naming the incarnation we just left does not move us again.
    const std::uint32_t inc = w.incarnation.value_or(issuer_.incarnation);
    if (inc < issuer_.incarnation) continue;
    if (implausible_incarnation(inc, "a hello")) continue;
    if (inc == issuer_.incarnation) {
      const crdt::CausalContext* ctx = nullptr;
      if (w.collection.empty()) {
        ctx = &catalogue_.context();
      } else if (const Collection* c = find(w.collection); c != nullptr) {
        ctx = &c->ctx;
      }
      if (ctx == nullptr || w.counter <= ctx->max_counter(issuer_)) continue;
    }
    // A peer holds a dot of ours that we do not, or knows us by a later incarnation than the one
    // we issue under: this process runs on an older copy of its store (a VM rolled back with its
    // memory, a restore the fresh incarnation at the first write did not cover), or the peer
    // took a forged claim in. Counters after ours were issued already, so the next dot could
    // collide: take a new incarnation above the one named, durably, before any other write
    // (within the bounds of claim_may_move).
    crdt::ReplicaId named = issuer_;
    named.incarnation = inc;
    const std::string why = str_cat("a peer holds dot ", w.counter, " of ", named.to_string(), " in '", w.collection,
                                    "', beyond ours (", issuer_.to_string(), ")");
    std::optional<crdt::ReplicaId> next;
    if (claim_may_move()) {
      SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
      SHOAL_ASSIGN_OR_RETURN(next, new_incarnation(*txn, inc));
      SHOAL_RETURN_IF_ERROR(txn->commit());
    }
    claim_answered(next, why);
    return {};
  }
  return {};
}

// An incarnation of ours named by a peer (a hello's counter, a context row) is believed only up to
// kMaxIncarnationLead above the one this process opened with, and never at or past
// kIncarnationCeiling (docs/crdt.md, "Incarnations"; D68). Every open that writes moves up by at
// most kIncarnationSpread, so a true one that far ahead means a copy of this store at least 256
// such opens old. The lead counts from the incarnation at open, not the current one: a lead from
// the current one let forged names stack (each believed one moved us up to 2^24 further, 256 of
// them exhausted the u32 and every write failed for good). Per process life peers can thus move
// us at most 2^24 (plus the steps of the claims' incarnations); across restarts, never past the
// ceiling, which keeps a quarter of the incarnations (about 32,000 writing opens) for the node's
// own: no claim moves the node at or past it either (claim_may_move).
// Ignored, counted (NodeStats::implausible_incarnations) and logged once; what the peer sent
// otherwise joins as usual. An incarnation at or below ours is never implausible (our own rows).
inline constexpr std::uint64_t kMaxIncarnationLead = std::uint64_t{1} << 24;
inline constexpr std::uint64_t kIncarnationCeiling = (std::uint64_t{1} << 32) - (std::uint64_t{1} << 30);

bool Node::implausible_incarnation(std::uint32_t inc, std::string_view where) const {
  if (inc <= issuer_.incarnation) return false;
  if (std::uint64_t{inc} <= std::uint64_t{replica_.incarnation} + kMaxIncarnationLead && inc < kIncarnationCeiling) {
    return false;
  }
  ++implausible_incarnations_;
  if (!implausible_logged_) {
    implausible_logged_ = true;
    SHOAL_LOG(options_.logger, kWarn, "node", where, " names incarnation ", inc, " of ", issuer_.to_string(),
              ", more than ", kMaxIncarnationLead, " above the one opened (", replica_.incarnation, ") or past ",
              kIncarnationCeiling, ": ignored (a forged or corrupted value; later ones are only counted as "
              "implausible_incarnations)");
  }
  return true;
}

// How many incarnations peers' claims may move the node to in one process life, past the one
// that replaces the incarnation it opened with (claim_may_move).
inline constexpr std::uint64_t kMaxClaimIncarnations = 16;

// A claim on our dots (strip_own_claims, check_own_counters) moves the node to a new incarnation
// at once, in the claim's own transaction (D36, D48): the claimed counters are never issued under
// the id they name, hellos announce the new incarnation from then on, and a later claim on the
// incarnation we issue under is stripped again, so no dot nobody issued of our current
// incarnation is ever kept or relayed. But each forged claim would take one, durably (1,000
// forged batches: 1,000 incarnations, each a step of up to 2^16: about 131,000 exhaust the u32,
// after which every write fails for good, restarts included). So (D68):
// - while we issue under the incarnation we opened with, a claim always moves us: that move
//   stands for the fresh incarnation the first write would take anyway (rule 1), and reveals a
//   restored copy before it writes at no cost;
// - after it, at most kMaxClaimIncarnations claims per process life move us, and none once our
//   incarnation is at or past kIncarnationCeiling. Past either bound a claim is still stripped
//   (nothing of it is kept or relayed) but moves us no more: counted as claims_unheeded, logged
//   once. A peer that took the same forged claim in may then drop this node's writes in the
//   claimed range, which the forging member could delete anyway (revoke it); a true claim past
//   the bound would need seventeen older copies of this store revealed within one process life.
// A process life thus takes at most 17 incarnations (the fresh one and 16 on claims), each a step
// of at most 2^16, and forged claims, over any number of restarts, take the node at most one
// step past the ceiling: a quarter of the space (about 32,000 writing opens) stays for rule 1.
bool Node::claim_may_move() const {
  if (!fresh_issuer_) return true;
  return claim_incarnations_ < kMaxClaimIncarnations && issuer_.incarnation < kIncarnationCeiling;
}

void Node::claim_answered(const std::optional<crdt::ReplicaId>& next, std::string_view why) {
  if (!next) {
    ++claims_unheeded_;
    if (!claims_unheeded_logged_) {
      claims_unheeded_logged_ = true;
      SHOAL_LOG(options_.logger, kWarn, "node", why, ": stripped but not heeded, ", claim_incarnations_,
                " incarnations were taken on peers' claims since open (at most ", kMaxClaimIncarnations,
                "; none at or past ", kIncarnationCeiling, ": a forging member?); later ones are only counted "
                "(claims_unheeded)");
    }
    return;
  }
  if (fresh_issuer_) ++claim_incarnations_;
  SHOAL_LOG(options_.logger, kWarn, "node", why, ": new incarnation ", next->to_string());
  issuer_ = *next;
  fresh_issuer_ = true;
}

// Why a random step (D48): a copy of a store (a clone of a golden image, a VM snapshot or backup
// put back) starts from the same incarnation as its original, and both then move on at their
// first write. Sequential incarnations would have both pick the same one and issue the same dots;
// a step drawn from 1..2^16 makes that a 1 in 65,536 event per pair of copies that both write,
// and keeps incarnations increasing (data_dir.cpp compares them) with room for over 100,000
// opens-with-writes on average before the u32 runs out.
inline constexpr std::uint64_t kIncarnationSpread = std::uint64_t{1} << 16;

Result<crdt::ReplicaId> Node::new_incarnation(store::WriteTxn& txn, std::uint32_t floor) const {
  crdt::ReplicaId next = issuer_;
  std::uint64_t base = std::max(issuer_.incarnation, floor);
  auto above_rows = [&](const crdt::CausalContext& ctx) {
    for (const auto& [r, row] : ctx.rows()) {
      if (r.identity == issuer_.identity && !implausible_incarnation(r.incarnation, "a context row")) {
        base = std::max<std::uint64_t>(base, r.incarnation);
      }
    }
  };
  above_rows(catalogue_.context());
  for (const auto& [name, c] : collections_) above_rows(c->ctx);
  std::uint64_t bits = 0;
  if (options_.entropy) {
    bits = options_.entropy();
  } else {
    std::uint64_t state = static_cast<std::uint64_t>(wall_now().ns()) ^ (base << 20);
    bits = splitmix64(state);
  }
  const std::uint64_t candidate = base + 1 + bits % kIncarnationSpread;
  if (candidate > std::numeric_limits<std::uint32_t>::max()) {
    return Status(Code::kInternal, str_cat("replica incarnation exhausted: ", base, " + a step of up to ",
                                           kIncarnationSpread, " passes the limit ",
                                           std::numeric_limits<std::uint32_t>::max()));
  }
  next.incarnation = static_cast<std::uint32_t>(candidate);
  SHOAL_RETURN_IF_ERROR(txn.put(Table::kMeta, kReplicaKey, next.encode()));
  return next;
}

Status Node::ensure_fresh_issuer() {
  if (fresh_issuer_ || options_.mutations.stale_incarnation) return {};
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  SHOAL_ASSIGN_OR_RETURN(const crdt::ReplicaId next, new_incarnation(*txn));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  issuer_ = next;
  fresh_issuer_ = true;
  return {};
}

// A context from a peer may claim dots of ours beyond the counter we issued: a forged claim (a
// buggy or hostile peer), or the truth about a store that is an older copy of itself (a restore
// the hello has not revealed yet). Rejecting the batch would stall the delta path for good (an
// honest peer relaying the claim would resend it forever); joining it would spread a dot nobody
// issued. So the claim is stripped (the rest of the batch joins and is relayed without it), and
// because the claim may be true (or was sent to other peers too, which cannot tell it from a
// remove) the caller moves to a new incarnation in the same transaction (within the bounds of
// claim_may_move): the claimed counters are never issued under the id they name. Dots that the
// peer's entries carry stay (a record of ours we lost, which the join must keep). Contexts of
// repair slices need no stripping: a slice adds only its entries' dots (join_in_txn,
// JoinKind::kRepair). A claim on an older incarnation of ours joins: we never issue under it
// again, and a claim that other peers took in (a hostile peer's claim on our dot, relayed back
// by repair) must join for the mesh to converge.
bool Node::strip_own_claims(const crdt::CausalContext& ours, const crdt::RecordMap& records,
                            crdt::CausalContext& theirs, const crdt::ReplicaId& from) {
  if (options_.mutations.keep_own_claims) return false;  // mutation under test
  const std::uint64_t issued = ours.max_counter(issuer_);
  if (theirs.max_counter(issuer_) <= issued) return false;
  const crdt::CausalContext claimed = theirs;
  std::uint64_t stripped = theirs.drop_above(issuer_, issued);
  for (const auto& [id, entries] : records) {
    for (const auto& e : entries) {
      if (e.dot.replica == issuer_ && e.dot.counter > issued && !theirs.contains(e.dot) && claimed.contains(e.dot)) {
        theirs.add(e.dot);
        --stripped;
      }
    }
  }
  if (stripped == 0) return false;
  own_claims_stripped_ += stripped;
  if (!own_claims_logged_) {
    own_claims_logged_ = true;
    SHOAL_LOG(options_.logger, kWarn, "node", from == crdt::ReplicaId{} ? std::string("a repair") : "peer " + from.to_string(), " sent a context claiming ", stripped,
              " dot(s) of ", issuer_.to_string(), " beyond our counter ", issued, " (up to ", claimed.max_counter(issuer_),
              "): stripped, and a new incarnation taken; later claims are only counted (own_claims_stripped)");
  }
  return true;
}

std::vector<std::string> Node::collection_names() const {
  std::vector<std::string> out;
  for (const auto& [name, c] : collections_) out.push_back(name);
  return out;
}

std::optional<transport::CollectionSpecWire> Node::collection_spec(std::uint32_t cid) const {
  const Collection* c = find_by_id(cid);
  if (c == nullptr) return std::nullopt;
  return to_wire(c->spec);
}

// Storage a peer's request names is made in the request's own transaction and becomes known
// (install_staged) only once that commits: a batch rejected after its catalogue item or spec was
// read (a bad delta further on) leaves no storage behind (issue 15 review; D68). Until then the
// request sees it here, under the ids it will have.
namespace {

// A peer's collection of the same name must have our dimension and metric.
Status same_shape(const CollectionSpec& ours, const CollectionSpec& theirs) {
  if (ours.dimension == theirs.dimension && ours.metric == theirs.metric) return {};
  return Status(Code::kConflict, str_cat("peer's collection '", theirs.name, "' has dimension ", theirs.dimension,
                                         " and metric ", metric_name(theirs.metric), "; ours has ", ours.dimension,
                                         " and ", metric_name(ours.metric)));
}

}  // namespace

struct Node::StagedStorage {
  std::vector<std::unique_ptr<Collection>> added;
  Collection* find(std::string_view name) const {
    for (const auto& c : added) {
      if (c->spec.name == name) return c.get();
    }
    return nullptr;
  }
};

Result<Node::Collection*> Node::storage_for(store::WriteTxn& txn, const transport::CollectionSpecWire& wire,
                                            StagedStorage& staged) {
  SHOAL_ASSIGN_OR_RETURN(CollectionSpec spec, from_wire(wire));
  Collection* c = find(spec.name);
  if (c == nullptr) c = staged.find(spec.name);
  if (c != nullptr) {
    SHOAL_RETURN_IF_ERROR(same_shape(c->spec, spec));
    return c;
  }
  const auto id = static_cast<std::uint32_t>(next_collection_id_ + staged.added.size());
  SHOAL_ASSIGN_OR_RETURN(auto made, new_storage(txn, spec, id));
  staged.added.push_back(std::move(made));
  return staged.added.back().get();
}

void Node::install_staged(StagedStorage& staged) {
  for (auto& c : staged.added) install_storage(std::move(c));
  staged.added.clear();
}

Status Node::ensure_collection(const transport::CollectionSpecWire& spec) {
  if (const Collection* c = find(spec.name); c != nullptr) {
    SHOAL_ASSIGN_OR_RETURN(CollectionSpec theirs, from_wire(spec));
    return same_shape(c->spec, theirs);  // ours already: nothing to write
  }
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  StagedStorage staged;
  SHOAL_RETURN_IF_ERROR(storage_for(*txn, spec, staged).status());
  if (staged.added.empty()) return {};  // ours already: nothing to write
  SHOAL_RETURN_IF_ERROR(txn->commit());
  install_staged(staged);
  return {};
}

// --- the delta path ---

Result<crdt::ORMap> Node::peer_catalogue(const Origin& origin, std::string_view bytes, store::WriteTxn& txn,
                                         StagedStorage& staged) {
  auto state = crdt::decode_delta(as_bytes(bytes));
  if (!state.ok()) return state.status().with_context("catalogue from peer " + origin.peer.to_string());
  SHOAL_RETURN_IF_ERROR(validate_catalogue(*state));
  // Storage for the collections it names (not live until the catalogue says so).
  for (const auto& [name, entries] : state->records) {
    for (const auto& e : entries) {
      auto spec = decode_spec(name, as_view(e.payload));
      SHOAL_RETURN_IF_ERROR(storage_for(txn, to_wire(spec->first), staged).status());
    }
  }
  return ormap_from_state(*state, kCatalogueDigestConfig);
}

Status Node::apply_peer_batch(const Origin& origin, const transport::DeltaBatch& m) {
  // Validate everything before anything is committed: a rejected batch changes nothing. Storage
  // for the collections the batch names is made in the batch's own transaction (StagedStorage).
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  StagedStorage staged;
  std::vector<std::pair<Collection*, crdt::Delta>> items;
  std::vector<crdt::ORMap> catalogues;  // whole catalogue states (items with no collection name)
  for (const auto& item : m.items) {
    if (item.collection.empty()) {
      SHOAL_ASSIGN_OR_RETURN(auto theirs, peer_catalogue(origin, item.delta, *txn, staged));
      catalogues.push_back(std::move(theirs));
      continue;
    }
    auto spec = std::find_if(m.specs.begin(), m.specs.end(), [&](const auto& s) { return s.name == item.collection; });
    Collection* c = find(item.collection);
    if (c == nullptr) c = staged.find(item.collection);
    if (c == nullptr) {
      if (spec == m.specs.end()) {
        return Status(Detail::kNoSuchCollection, str_cat("delta for unknown collection '", item.collection, "'"));
      }
      SHOAL_ASSIGN_OR_RETURN(c, storage_for(*txn, *spec, staged));
    }
    auto delta = crdt::decode_delta(as_bytes(item.delta));
    if (!delta.ok()) return delta.status().with_context("delta from peer " + origin.peer.to_string());
    SHOAL_RETURN_IF_ERROR(validate_peer_delta(*c, *delta));
    items.emplace_back(c, std::move(delta).value());
  }
  bool claims = false;
  for (auto& [c, delta] : items) claims = strip_own_claims(c->ctx, delta.records, delta.context, origin.peer) || claims;
  std::optional<crdt::ReplicaId> next;
  if (claims && claim_may_move()) {
    SHOAL_ASSIGN_OR_RETURN(next, new_incarnation(*txn));
  }
  // Keyed by collection id, so the order of effects never depends on pointer values.
  std::map<std::uint32_t, std::pair<Collection*, Pending>> pendings;
  DeltaBuffer::Cursor cur = buffer_.cursor();
  // The catalogue is copied only when the batch carries one (most batches are records only).
  std::optional<crdt::ORMap> cat;
  if (!catalogues.empty()) cat = catalogue_;
  for (const auto& theirs : catalogues) SHOAL_RETURN_IF_ERROR(join_catalogue_in_txn(*txn, *cat, theirs, cur, &origin));
  for (auto& [c, delta] : items) {
    auto it = pendings.find(c->id);
    if (it == pendings.end()) it = pendings.emplace(c->id, std::pair{c, Pending::of(*c)}).first;
    SHOAL_RETURN_IF_ERROR(apply_delta_in_txn(*txn, *c, delta, it->second.second, cur, &origin));
  }
  for (auto& [id, cp] : pendings) SHOAL_RETURN_IF_ERROR(write_state(*txn, *cp.first, cp.second, clock_.last()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  install_staged(staged);
  if (claims) claim_answered(next, str_cat("peer ", origin.peer.to_string(), " sent a context claiming our dots"));
  if (cat) catalogue_ = std::move(*cat);
  commit_cursor(cur);
  for (auto& [id, cp] : pendings) apply_pending(*cp.first, cp.second);
  for (const auto& [c, delta] : items) {
    observe_clocks(delta.records);
  }
  return {};
}

Status Node::join_catalogue_state(const Origin& origin, std::string_view bytes) {
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  StagedStorage staged;
  SHOAL_ASSIGN_OR_RETURN(auto theirs, peer_catalogue(origin, bytes, *txn, staged));
  DeltaBuffer::Cursor cur = buffer_.cursor();
  crdt::ORMap cat = catalogue_;
  SHOAL_RETURN_IF_ERROR(join_catalogue_in_txn(*txn, cat, theirs, cur, &origin));
  if (cur.last == buffer_.last() && staged.added.empty()) return {};  // nothing new: nothing to write
  SHOAL_RETURN_IF_ERROR(txn->commit());
  install_staged(staged);
  catalogue_ = std::move(cat);
  commit_cursor(cur);
  return {};
}

// --- the digest path ---

const crdt::DigestTree* Node::digests(std::string_view collection) const {
  const Collection* c = find(collection);
  return c == nullptr ? nullptr : &c->digests;
}

std::optional<std::string> Node::encoded_context(std::string_view collection) const {
  const Collection* c = find(collection);
  if (c == nullptr) return std::nullopt;
  crdt::Bytes b;
  crdt::encode_context(c->ctx, b);
  return std::string(as_view(b));
}

Result<std::string> Node::bucket_slice(std::string_view collection, std::span<const std::uint32_t> buckets) const {
  crdt::Delta slice;
  if (const Collection* c = find(collection); c != nullptr) {
    SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
    Status err;
    for (std::uint32_t b : buckets) {
      SHOAL_ASSERT(b < c->digests.leaf_count());
      SHOAL_RETURN_IF_ERROR(txn->scan(Table::kRecords, store::Range::prefix(bucket_prefix(c->id, b)),
                                      [&](std::string_view k, std::string_view v) {
                                        auto rec = format::read_record(*txn, c->id, k, v);
                                        if (!rec.ok()) {
                                          err = rec.status();
                                          return false;
                                        }
                                        slice.records.emplace(std::string(id_of_record_key(k)), std::move(rec->entries));
                                        return true;
                                      }));
      SHOAL_RETURN_IF_ERROR(err);
    }
    slice.context = c->ctx;
  }
  crdt::Bytes bytes;
  crdt::encode_delta(slice, bytes);
  return std::string(as_view(bytes));
}

Status Node::apply_repair_slice(const Origin& origin, std::string_view collection,
                                std::span<const std::uint32_t> bucket_list, std::string_view bytes) {
  Collection* c = find(collection);
  if (c == nullptr) return Status(Detail::kNoSuchCollection, str_cat("repair slice for unknown collection '", collection, "'"));
  auto slice = crdt::decode_delta(as_bytes(bytes));
  if (!slice.ok()) return slice.status();
  const std::set<std::uint32_t> buckets(bucket_list.begin(), bucket_list.end());
  for (std::uint32_t b : buckets) {
    if (b >= c->digests.leaf_count()) return Status(Detail::kOutOfRange, "bucket out of range");
  }
  for (const auto& [id, entries] : slice->records) {
    if (buckets.count(crdt::bucket_of(id, kDigestConfig.leaf_bits)) == 0) {
      return Status(Detail::kMalformed, str_cat("record '", id, "' is not in the buckets of the reply"));
    }
  }
  SHOAL_RETURN_IF_ERROR(validate_peer_delta(*c, *slice));
  // The restricted join: every record of those buckets on either side.
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  std::set<std::string> ids;
  for (std::uint32_t b : buckets) {
    Status scanned = txn->scan(Table::kRecords, store::Range::prefix(bucket_prefix(c->id, b)),
                               [&](std::string_view k, std::string_view) {
                                 ids.emplace(id_of_record_key(k));
                                 return true;
                               });
    SHOAL_RETURN_IF_ERROR(scanned);
  }
  for (const auto& [id, entries] : slice->records) ids.insert(id);
  Pending pending = Pending::of(*c);
  DeltaBuffer::Cursor cur = buffer_.cursor();
  SHOAL_RETURN_IF_ERROR(join_in_txn(*txn, *c, std::vector<std::string>(ids.begin(), ids.end()), slice->records,
                                    slice->context, JoinKind::kRepair, pending, cur, &origin));
  SHOAL_RETURN_IF_ERROR(write_state(*txn, *c, pending, clock_.last()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  commit_cursor(cur);
  apply_pending(*c, pending);
  observe_clocks(slice->records);
  return {};
}

void Node::observe_clocks(const crdt::RecordMap& records) {
  if (options_.mutations.hlc_ignore_remote) return;  // mutation under test
  // What we received happened before whatever we write next: our clock moves past it (remote
  // clocks beyond the skew bound are refused by observe() and counted; the data still joins).
  const WallTime wall = wall_now();
  for (const auto& [id, entries] : records) {
    for (const auto& e : entries) {
      // Refused (beyond the skew bound): the data still joins; counted in stats().
      if (!clock_.observe(e.clock, wall).ok()) ++remote_clocks_refused_;
    }
  }
}

Status Node::merge_context(std::string_view collection, const crdt::CausalContext& ctx) {
  Collection* c = find(collection);
  if (c == nullptr || c->ctx.includes(ctx)) return {};
  crdt::CausalContext theirs = ctx;
  const bool claims = strip_own_claims(c->ctx, {}, theirs, crdt::ReplicaId{});  // the peer is not known here
  Pending pending = Pending::of(*c);
  pending.ctx.merge(theirs);
  pending.state_dirty = true;
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  std::optional<crdt::ReplicaId> next;
  if (claims && claim_may_move()) {
    SHOAL_ASSIGN_OR_RETURN(next, new_incarnation(*txn));
  }
  SHOAL_RETURN_IF_ERROR(write_state(*txn, *c, pending, clock_.last()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  if (claims) claim_answered(next, "a repair's context claiming our dots");
  apply_pending(*c, pending);
  return {};
}

}  // namespace shoal::node
