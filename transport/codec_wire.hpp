// transport/codec_wire.hpp: the sync messages to and from their Cap'n Proto structs, for code
// that already holds a Cap'n Proto message (the RPC layer, whose calls carry these structs as
// parameters and results; transport/rpc.capnp).
//
// Role: the struct-level half of transport/codec.hpp. write() fills a builder; read() checks a
// reader against DecodeLimits exactly as decode() does (every list, name and payload bounded
// before it is copied; kj exceptions become a Status), so a call from a peer is validated by the
// same code as a simulator message. Includes the generated header: only transport/ and the
// runtime's RPC servers include this.
// Thread rules: pure functions; safe from any thread.
#pragma once

#include "common/status.hpp"
#include "transport/codec.hpp"
#include "transport/messages.hpp"
#include "transport/sync.capnp.h"

namespace shoal::transport {

// A collection's spec: the one conversion of its fields, used by the sync messages and by the
// local API (transport/node_api.capnp carries the same struct). read() checks the name's length
// (max_collection_name_bytes); the node validates the rest.
void write(wire::CollectionSpec::Builder b, const CollectionSpecWire& s);
[[nodiscard]] Result<CollectionSpecWire> read(wire::CollectionSpec::Reader r, const DecodeLimits& limits = {});

void write(wire::Hello::Builder b, const Hello& m);
void write(wire::DeltaBatch::Builder b, const DeltaBatch& m);
void write(wire::DeltaAck::Builder b, const DeltaAck& m);
void write(wire::DigestQuery::Builder b, const DigestQuery& m);
void write(wire::DigestReply::Builder b, const DigestReply& m);
void write(wire::BucketQuery::Builder b, const BucketQuery& m);
void write(wire::BucketReply::Builder b, const BucketReply& m);

// Statuses: those of decode() except kTruncated and the segment-table checks (the enclosing
// message was already framed and read).
[[nodiscard]] Result<Hello> read(wire::Hello::Reader r, const DecodeLimits& limits = {});
[[nodiscard]] Result<DeltaBatch> read(wire::DeltaBatch::Reader r, const DecodeLimits& limits = {});
[[nodiscard]] Result<DeltaAck> read(wire::DeltaAck::Reader r, const DecodeLimits& limits = {});
[[nodiscard]] Result<DigestQuery> read(wire::DigestQuery::Reader r, const DecodeLimits& limits = {});
[[nodiscard]] Result<DigestReply> read(wire::DigestReply::Reader r, const DecodeLimits& limits = {});
[[nodiscard]] Result<BucketQuery> read(wire::BucketQuery::Reader r, const DecodeLimits& limits = {});
[[nodiscard]] Result<BucketReply> read(wire::BucketReply::Reader r, const DecodeLimits& limits = {});

}  // namespace shoal::transport
