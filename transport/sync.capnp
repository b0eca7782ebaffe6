# transport/sync.capnp: the sync protocol's messages on the wire (docs/protocol.md).
#
# One struct per message of transport/messages.hpp, and one top-level Envelope whose union says
# which message it carries. Plain structs only: no interfaces, so no capnp-rpc or kj-async is
# linked (a schema that declares an interface needs capnp-rpc and kj-async at link time).
#
# Evolution (Cap'n Proto rules): never renumber, retype or remove a field; add new fields with the
# next ordinal at the end of their struct; add new messages as new union members with the next
# ordinal. A decoder that sees a union member it does not know reports it as unimplemented, so a
# newer peer can fall back. Every field is always written by our encoder; the wire defaults are 0.
#
# Byte strings (names, replica ids, CRDT payloads) are Data, not Text: the transport moves bytes
# and does not judge their encoding; the node validates collection names.
@0xc41937800778f82a;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("shoal::transport::wire");

struct CollectionSpec {
  name @0 :Data;
  dimension @1 :UInt32;
  metric @2 :UInt8;          # 0 l2, 1 ip, 2 cosine
  m @3 :UInt32;
  efConstruction @4 :UInt32;
  efSearch @5 :UInt32;
  quantize @6 :Bool;
  quantMin @7 :Float32;
  quantMax @8 :Float32;
}

struct Hello {
  replica @0 :Data;          # exactly 20 bytes: 16-byte identity, little-endian u32 incarnation
  protocolVersion @1 :UInt32;
  collections @2 :List(CollectionSpec);
  catalogue @3 :Data;        # the replicated catalogue, whole (crdt::encode_delta of its state)
  yourCounters @4 :List(Counter);  # the highest dot counters the sender holds of the receiver
  revocations @5 :Data;      # the sender's whole revocation set (security/revocation.hpp), or empty
}

# The highest counter of one replica's dots that the sender holds in one collection ("" for the
# catalogue): how a node restored from an older copy of itself learns that it is behind.
struct Counter {
  collection @0 :Data;
  counter @1 :UInt64;
  incarnation @2 :UInt32;    # the incarnation of the receiver's replica the counter belongs to,
  hasIncarnation @3 :Bool;   # when true (false from senders before it: the receiver's current one)
}

struct DeltaItem {
  collection @0 :Data;
  delta @1 :Data;            # crdt::encode_delta bytes
}

struct DeltaBatch {
  firstSeq @0 :UInt64;       # exclusive
  lastSeq @1 :UInt64;        # inclusive
  specs @2 :List(CollectionSpec);
  items @3 :List(DeltaItem);
}

struct DeltaAck {
  lastSeq @0 :UInt64;
}

struct DigestQuery {
  session @0 :UInt64;
  collection @1 :Data;
  level @2 :UInt32;
  indices @3 :List(UInt32);
}

struct DigestReply {
  session @0 :UInt64;
  collection @1 :Data;
  hasCollection @2 :Bool;
  level @3 :UInt32;
  indices @4 :List(UInt32);
  digests @5 :List(UInt64);
  root @6 :UInt64;
  leafBits @7 :UInt32;
  fanoutBits @8 :UInt32;
  context @9 :Data;          # crdt::encode_context bytes
}

struct BucketQuery {
  session @0 :UInt64;
  collection @1 :Data;
  buckets @2 :List(UInt32);
}

struct BucketReply {
  session @0 :UInt64;
  collection @1 :Data;
  buckets @2 :List(UInt32);
  slice @3 :Data;            # crdt::encode_delta bytes
}

struct Envelope {
  union {
    hello @0 :Hello;
    deltaBatch @1 :DeltaBatch;
    deltaAck @2 :DeltaAck;
    digestQuery @3 :DigestQuery;
    digestReply @4 :DigestReply;
    bucketQuery @5 :BucketQuery;
    bucketReply @6 :BucketReply;
  }
}
