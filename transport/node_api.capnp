# transport/node_api.capnp: the local API, what an app on the device calls on the daemon over
# its Unix socket (docs/mesh.md, "The local API"). The operations are the C API's (shoal.h): a
# client-mode shoal_db turns each call into one of these.
#
# Errors: a refused call fails with an exception whose description carries the Status
# ("shoal-status <code> <text>", transport::status_of), so a client returns the same code the
# embedded library would. Evolution: the rules of sync.capnp.
@0xcf82d99021909082;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("shoal::transport::api");

using Sync = import "sync.capnp";

struct MetaField {
  key @0 :Text;
  value :union {
    text @1 :Text;
    int @2 :Int64;
    float @3 :Float64;
    bool @4 :Bool;
  }
}

struct Value {
  vector @0 :List(Float32);
  metadata @1 :List(MetaField);
  model @2 :Text;
}

struct RecordInput {
  id @0 :Data;
  value @1 :Value;
}

struct CollectionInfo {
  spec @0 :Sync.CollectionSpec;
  liveRecords @1 :UInt64;
  indexBytes @2 :UInt64;
}

struct Hit {
  id @0 :Data;
  distance @1 :Float32;
  metadata @2 :List(MetaField);
  model @3 :Text;
}

# How fresh an answer is: per peer this node has synced with, the time since the last delta
# applied from it (-1: none since this daemon started).
struct Freshness {
  replica @0 :Data;          # 20 bytes
  device @1 :Text;           # the peer's device label
  sinceLastDeltaMs @2 :Int64;
  up @3 :Bool;
}

struct Change {
  seq @0 :UInt64;
  collection @1 :Text;
  id @2 :Data;
  deleted @3 :Bool;
  origin @4 :Data;           # 20-byte replica id of the peer it came from; empty for a local write
}

# The sink's part of a cold search's freshness (docs/tiers.md, "Cold search").
struct SinkFreshness {
  objects @0 :UInt64;        # the collection's objects at the sink
  records @1 :UInt64;        # its live records there
  lastAckWallNs @2 :Int64;   # when the sink last acknowledged an object of it (its wall clock)
}

interface Listener {
  # Changes in buffer order. `gap`: the listener fell behind the delta buffer's trimming and
  # missed some (re-read what it needs).
  changes @0 (changes :List(Change), gap :Bool) -> ();
}

interface Subscription {
  # Dropping the capability ends the watch.
}

interface Node {
  createCollection @0 (spec :Sync.CollectionSpec) -> ();
  dropCollection @1 (name :Text) -> ();
  listCollections @2 () -> (collections :List(CollectionInfo));
  collectionInfo @3 (name :Text) -> (info :CollectionInfo);
  # All or nothing; durable when it returns.
  upsert @4 (collection :Text, records :List(RecordInput)) -> ();
  delete @5 (collection :Text, id :Data) -> ();
  # siblings[0] is the winner. A winner evicted to the cold tier (a stub, docs/tiers.md
  # "Eviction") is refilled from the daemon's sink; when that fails (no sink, unreachable, it lacks
  # the record, the payload does not match the stub's digest), siblings[0] has the stub's metadata
  # and model and no vector, and coldCode (a Status full code: kColdUnavailable or
  # kChecksumMismatch) and coldError say why. coldCode 0: every value is whole.
  get @6 (collection :Text, id :Data) -> (siblings :List(Value), coldCode :UInt32, coldError :Text);
  search @7 (collection :Text, query :List(Float32), k :UInt32, ef :UInt32, filter :Text,
             withMetadata :Bool) -> (hits :List(Hit), freshness :List(Freshness));
  # The node's and the mesh's statistics as JSON.
  stats @8 () -> (json :Text);
  # Streams every change after this call (local, or applied from peers) to `listener`, for the
  # collection named ("" for all), until the subscription is dropped.
  watch @9 (collection :Text, listener :Listener) -> (subscription :Subscription);
  # A consistent copy of the store into `dest`/store, written by the daemon while it keeps
  # running (`dest`: an absolute path that does not exist or is an empty directory). Root and
  # the daemon's own user only.
  backup @10 (dest :Text, compact :Bool) -> (sourceBytes :UInt64, copyBytes :UInt64, replica :Text);
  # A search that includes the cold tier (docs/tiers.md, "Cold search"): the daemon's hits and
  # its sink's for the same query, metric and k, merged; cold[i] is true for a hit from the sink.
  # When the sink cannot answer (none configured, not connected, it refused), the local hits come
  # back with sinkAnswered false and the reason in sinkCode (a Status full code) and sinkError.
  searchCold @11 (collection :Text, query :List(Float32), k :UInt32, ef :UInt32)
      -> (hits :List(Hit), cold :List(Bool), freshness :List(Freshness), sinkAnswered :Bool,
          sink :SinkFreshness, sinkCode :UInt32, sinkError :Text);
  # Restores `collection` from the daemon's sink, page by page (docs/tiers.md, "Bootstrap from
  # the sink"). Durable when it returns. A collection the device lacks is created first with the
  # sink's dimension and metric (`created`, then `dimension` and `metric`, the wire byte).
  bootstrapFromSink @12 (collection :Text)
      -> (pages :UInt32, records :UInt64, bytes :UInt64, created :Bool, dimension :UInt32, metric :UInt8);
  # One page of `collection`'s live records (each with its winning value) after the record `after`
  # in store order (empty: from the first), at most `limit` of them (the daemon caps it, and the
  # page's size, so that an answer stays well under a message's limit). `more`: ask again after
  # the last record's id. Export through the daemon (shoal export), page by page.
  exportRecords @13 (collection :Text, after :Data, limit :UInt32) -> (records :List(RecordInput), more :Bool);
}
