# transport/sink.capnp: the Sink capability, what a member calls on the cold-tier sink
# (shoal-sink, issue 15; docs/sink.md). A member receives it from the sink's Gate.introduce
# (rpc.capnp, result `sink`); a reader or another sink gets nothing (refused with kWrongRole).
#
# Errors: a refused call fails with an exception carrying the Status ("shoal-status <code>
# <text>", transport::status_of), naming the limit and the value seen. Every request is checked
# against the sink's limits (sink::SinkLimits) before it touches the store.
#
# Evolution: the Cap'n Proto rules of sync.capnp; new methods get the next ordinal.
@0xa45fc2ab2c244559;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("shoal::transport::sinkrpc");
using Sync = import "sync.capnp";

# A durable acknowledgement: the object store had the object when it was sent.
struct Ack {
  key @0 :Text;        # the object that holds it
  seq @1 :UInt64;      # its sequence number (0: an empty delta, nothing written)
  records @2 :UInt32;
  bytes @3 :UInt64;
}

# How current a cold answer is.
struct Freshness {
  objects @0 :UInt64;        # objects (segments, deltas, contexts) of the collection
  lastSeq @1 :UInt64;        # the newest acknowledged object of the collection
  lastAckWallNs @2 :Int64;   # when it was acknowledged (the sink's wall clock)
  records @3 :UInt64;        # live records
}

struct ColdHit {
  id @0 :Data;
  distance @1 :Float32;
  dots @2 :Data;             # the record's entries' dots at the sink (crdt::encode_context bytes)
}

struct FetchedRecord {
  id @0 :Data;
  found @1 :Bool;            # false: not found (the other fields are empty)
  payload @2 :Data;          # the winner's payload, the node's encoding (docs/storage.md)
  hlc @3 :UInt64;
  digest @4 :Data;           # BLAKE2b-256 of payload (what a stub keeps)
  object @5 :Text;           # the object that holds it
}

struct CollectionStatus {
  name @0 :Text;
  records @1 :UInt64;
  segments @2 :UInt64;
  deltas @3 :UInt64;
  bytes @4 :UInt64;
}

struct SinkStatus {
  records @0 :UInt64;
  objects @1 :UInt64;
  bytesStored @2 :UInt64;
  payloadBytes @3 :UInt64;
  backlogObjects @4 :UInt64;  # objects the next compaction folds or drops
  uploads @5 :UInt64;
  deltas @6 :UInt64;
  lastAckSeq @7 :UInt64;
  lastAckWallNs @8 :Int64;
  storeKind @9 :Text;
  collections @10 :List(CollectionStatus);
}

interface Sink {
  # Stores an encoded segment (docs/sink-format.md); the result is sent only after the object
  # store has the object. Needs write access to the segment's collection. `metric`: the
  # collection's metric on the member (the wire byte: 0 l2, 1 ip, 2 cosine), whose rules the
  # records are checked under (cosine refuses a zero vector, as the node does); 255, the default (a
  # member from before the field), checks under l2's rules.
  # `spec` (D62; unset from a member before it): the collection's whole spec on the member
  # (sync.capnp's CollectionSpec: name, dimension, metric, m, efConstruction, efSearch, quantize
  # and its range), checked by the node's rules (its name the segment's, its metric the `metric`
  # byte when that is said, its dimension the records'; refused otherwise, nothing stored) and
  # kept, the latest per collection, so a bootstrap creates the collection with its index options.
  uploadSegment @0 (segment :Data, metric :UInt8 = 255, spec :Sync.CollectionSpec) -> (ack :Ack);
  # A delta of `collection` (crdt::encode_delta bytes, as peers push them): deletes and upserts
  # after upload reach the sink this way. Durable when acknowledged. Needs write access.
  # `metric` and `spec` as uploadSegment's.
  # `removed` (D74; empty from a member before it, or when there is nothing to say): dots of the
  # collection the member removed (crdt::encode_dot_ranges bytes, at most 262,144 ranges), which a
  # full-state upload's last chunk of a collection carries; the sink removes every entry it holds
  # of the collection whose dot is in them, whichever record holds it, after joining `delta`,
  # and acknowledges once both are stored. Checked before anything is stored.
  pushDelta @1 (collection :Text, delta :Data, metric :UInt8 = 255, spec :Sync.CollectionSpec,
                removed :Data) -> (ack :Ack);
  # Exact k-NN over the sink's live records; metric is the wire byte (0 l2, 1 ip, 2 cosine).
  # Needs read access.
  coldSearch @2 (collection :Text, query :List(Float32), k :UInt32, metric :UInt8)
      -> (hits :List(ColdHit), freshness :Freshness);
  # The winners of `ids`; absent ids come back with found = false. Needs read access.
  fetch @3 (collection :Text, ids :List(Data)) -> (records :List(FetchedRecord));
  # A collection's records and CRDT state as a stream of segments, pulled one page at a time:
  # pass `nextAfter` back as `after` until `done`; the first page (`after` empty) and the last
  # carry the causal context at that moment (crdt::encode_context bytes; the device judges the
  # records no page named by the first one, D57). Needs read access. Every page also says what a
  # device needs to create the collection first: `dimension`, the live records' (0: none live),
  # `metric`, the wire byte the members' uploads said (255: none said one), and `spec`, the latest
  # spec an upload said (D62; unset when none did, or from a sink before it), whose index options
  # (m, efConstruction, efSearch, quantize and its range) the device creates the collection with.
  bootstrap @4 (collection :Text, after :Data)
      -> (segment :Data, context :Data, nextAfter :Data, done :Bool, dimension :UInt32, metric :UInt8 = 255,
          spec :Sync.CollectionSpec);
  # Backlog seen, last acknowledgement, bytes stored.
  status @5 () -> (status :SinkStatus);
  # The member's revocation set (security::encode_revocations bytes): the sink joins every entry
  # whose signature verifies against its trust anchor, keeps the set durably, refuses revoked
  # devices at the handshake and closes their links. Members send it after the introduction and
  # whenever their set grows. `size`: the sink's set after the join; `rejected`: entries dropped
  # because they did not verify. Any member may call it (the authority's signature is the trust).
  revocations @6 (set :Data) -> (size :UInt32, rejected :UInt32);
}
