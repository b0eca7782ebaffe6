# transport/rpc.capnp: the interfaces peers call over Cap'n Proto RPC (docs/protocol.md, "RPC").
#
# The sync messages of sync.capnp are the parameters and results; this file adds only the
# interfaces, so that code which needs the plain structs (the codec, the simulator, the fuzzers)
# links no capnp-rpc or kj-async.
#
# A connection's bootstrap capability is a Gate built for the peer's verified certificate. The
# peer introduces itself (its replica id and the protocol versions it speaks) and receives the
# capability its role allows: a ReplicaReader for a reader, a Replica (which adds the one write
# method) for a member or a sink. A method a capability does not have is not there to call.
#
# Evolution: the Cap'n Proto rules of sync.capnp; new methods get the next ordinal. An older peer
# answers a method it does not know with "unimplemented", which the caller treats as "not spoken".
@0xc0e75bc39acf9d9d;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("shoal::transport::rpc");

using Sync = import "sync.capnp";
using SinkRpc = import "sink.capnp";

struct Intro {
  replica @0 :Data;          # exactly 20 bytes: 16-byte identity, little-endian u32 incarnation
  minProtocol @1 :UInt32;    # the oldest sync protocol version the sender still speaks
  maxProtocol @2 :UInt32;    # the newest
}

interface Gate {
  # Who the caller is; the answer says who we are, which protocol version the two speak (the
  # highest both speak), and hands out the capability the caller's certificate allows. Refused
  # (an exception naming both ranges) when the ranges do not meet.
  # A sink (shoal-sink) answers a member with `sink` (sink.capnp) and leaves `replica` unset; a
  # node leaves `sink` unset.
  introduce @0 (intro :Intro) -> (intro :Intro, protocol :UInt32, replica :ReplicaReader, sink :SinkRpc.Sink);
}

interface ReplicaReader {
  # Announces the caller (sync.capnp's Hello; sent when the peer comes up and on repair rounds).
  hello @0 (hello :Sync.Hello) -> ();
  # Digest-path queries (docs/protocol.md, "Repair"): stateless reads answered at once.
  digest @1 (query :Sync.DigestQuery) -> (reply :Sync.DigestReply);
  buckets @2 (query :Sync.BucketQuery) -> (reply :Sync.BucketReply);
  # Liveness: answered at once; a connection whose pings go unanswered is closed.
  ping @3 () -> ();
  # k-nearest-neighbour search on the callee's replica of a collection the caller's certificate
  # may read (for fan-out and cold-tier queries). ef = 0: the collection's default.
  search @4 (collection :Data, query :List(Float32), k :UInt32, ef :UInt32) -> (hits :List(SearchHit));
}

struct SearchHit {
  id @0 :Data;
  distance @1 :Float32;
}

interface Replica extends(ReplicaReader) {
  # The delta path: the result is the acknowledgement, sent after the batch is durable.
  pushDeltas @0 (batch :Sync.DeltaBatch) -> (ack :Sync.DeltaAck);
}
