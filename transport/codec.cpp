// transport/codec.cpp: messages.hpp structs <-> sync.capnp Envelope bytes (see codec.hpp).
//
// Decoding order: the size limit, then our own reading of the segment table (so a short input is
// kTruncated and trailing bytes are kMalformed with exact numbers), then Cap'n Proto's reader
// under the traversal and nesting limits, with every list, name and payload length checked
// against DecodeLimits before anything is copied. Cap'n Proto reports bad pointers by throwing
// kj::Exception; decode() catches it and everything else and returns a Status.
#include "transport/codec.hpp"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "common/assert.hpp"
#include "transport/codec_wire.hpp"
#include "transport/sync.capnp.h"

namespace shoal::transport {
namespace {

// Cap'n Proto's own bounds on what one list or blob can hold; far above DecodeLimits.
constexpr std::size_t kCapnpMaxListElements = (std::size_t{1} << 29) - 1;
// FlatArrayMessageReader refuses segment tables with more segments than this.
constexpr std::uint32_t kCapnpMaxSegments = 512;

// ---------------------------------------------------------------------------------------------
// Encoding

capnp::Data::Reader as_data(const std::string& s) {
  SHOAL_ASSERT(s.size() <= kCapnpMaxListElements);
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

unsigned list_size(std::size_t n) {
  SHOAL_ASSERT(n <= kCapnpMaxListElements);
  return static_cast<unsigned>(n);
}

void put_spec(wire::CollectionSpec::Builder b, const CollectionSpecWire& s) {
  b.setName(as_data(s.name));
  b.setDimension(s.dimension);
  b.setMetric(s.metric);
  b.setM(s.m);
  b.setEfConstruction(s.ef_construction);
  b.setEfSearch(s.ef_search);
  b.setQuantize(s.quantize);
  b.setQuantMin(s.quant_min);
  b.setQuantMax(s.quant_max);
}

void put_specs(capnp::List<wire::CollectionSpec>::Builder list,
               const std::vector<CollectionSpecWire>& specs) {
  for (std::size_t i = 0; i < specs.size(); ++i) put_spec(list[static_cast<unsigned>(i)], specs[i]);
}

template <typename ListBuilder, typename T>
void put_values(ListBuilder list, const std::vector<T>& values) {
  for (std::size_t i = 0; i < values.size(); ++i) list.set(static_cast<unsigned>(i), values[i]);
}

}  // namespace

void write(wire::Hello::Builder b, const Hello& m) {
  b.setReplica(as_data(m.replica));
  b.setProtocolVersion(m.protocol_version);
  put_specs(b.initCollections(list_size(m.collections.size())), m.collections);
  b.setCatalogue(as_data(m.catalogue));
  b.setRevocations(as_data(m.revocations));
  auto counters = b.initYourCounters(list_size(m.your_counters.size()));
  for (std::size_t i = 0; i < m.your_counters.size(); ++i) {
    counters[static_cast<unsigned>(i)].setCollection(as_data(m.your_counters[i].collection));
    counters[static_cast<unsigned>(i)].setCounter(m.your_counters[i].counter);
    if (m.your_counters[i].incarnation) {
      counters[static_cast<unsigned>(i)].setIncarnation(*m.your_counters[i].incarnation);
      counters[static_cast<unsigned>(i)].setHasIncarnation(true);
    }
  }
}

void write(wire::DeltaBatch::Builder b, const DeltaBatch& m) {
  b.setFirstSeq(m.first_seq);
  b.setLastSeq(m.last_seq);
  put_specs(b.initSpecs(list_size(m.specs.size())), m.specs);
  auto items = b.initItems(list_size(m.items.size()));
  for (std::size_t i = 0; i < m.items.size(); ++i) {
    auto item = items[static_cast<unsigned>(i)];
    item.setCollection(as_data(m.items[i].collection));
    item.setDelta(as_data(m.items[i].delta));
  }
}

void write(wire::DeltaAck::Builder b, const DeltaAck& m) { b.setLastSeq(m.last_seq); }

void write(wire::DigestQuery::Builder b, const DigestQuery& m) {
  b.setSession(m.session);
  b.setCollection(as_data(m.collection));
  b.setLevel(m.level);
  put_values(b.initIndices(list_size(m.indices.size())), m.indices);
}

void write(wire::DigestReply::Builder b, const DigestReply& m) {
  b.setSession(m.session);
  b.setCollection(as_data(m.collection));
  b.setHasCollection(m.has_collection);
  b.setLevel(m.level);
  put_values(b.initIndices(list_size(m.indices.size())), m.indices);
  put_values(b.initDigests(list_size(m.digests.size())), m.digests);
  b.setRoot(m.root);
  b.setLeafBits(m.leaf_bits);
  b.setFanoutBits(m.fanout_bits);
  b.setContext(as_data(m.context));
}

void write(wire::BucketQuery::Builder b, const BucketQuery& m) {
  b.setSession(m.session);
  b.setCollection(as_data(m.collection));
  put_values(b.initBuckets(list_size(m.buckets.size())), m.buckets);
}

void write(wire::BucketReply::Builder b, const BucketReply& m) {
  b.setSession(m.session);
  b.setCollection(as_data(m.collection));
  put_values(b.initBuckets(list_size(m.buckets.size())), m.buckets);
  b.setSlice(as_data(m.slice));
}

namespace {

void put(wire::Envelope::Builder env, const Hello& m) { write(env.initHello(), m); }
void put(wire::Envelope::Builder env, const DeltaBatch& m) { write(env.initDeltaBatch(), m); }
void put(wire::Envelope::Builder env, const DeltaAck& m) { write(env.initDeltaAck(), m); }
void put(wire::Envelope::Builder env, const DigestQuery& m) { write(env.initDigestQuery(), m); }
void put(wire::Envelope::Builder env, const DigestReply& m) { write(env.initDigestReply(), m); }
void put(wire::Envelope::Builder env, const BucketQuery& m) { write(env.initBucketQuery(), m); }
void put(wire::Envelope::Builder env, const BucketReply& m) { write(env.initBucketReply(), m); }

// ---------------------------------------------------------------------------------------------
// Decoding

std::string too_large(std::string_view what, std::size_t seen, std::string_view unit,
                      std::string_view limit_name, std::size_t limit) {
  std::string s(what);
  s += " has ";
  s += std::to_string(seen);
  s += ' ';
  s += unit;
  s += ", above the limit ";
  s += limit_name;
  s += '=';
  s += std::to_string(limit);
  return s;
}

// Reads checked values out of Cap'n Proto readers. Each method returns a non-OK Status on the
// first limit broken; sizes are checked before anything is copied.
class Reader {
 public:
  explicit Reader(const DecodeLimits& limits) : limits_(limits) {}

  Status count(std::string_view what, std::size_t n, std::string_view limit_name,
               std::size_t limit) const {
    if (n > limit) return Status(Detail::kTooLarge, too_large(what, n, "elements", limit_name, limit));
    return ok_status();
  }

  Status name(std::string_view what, capnp::Data::Reader r, std::string& out) const {
    if (r.size() > limits_.max_collection_name_bytes) {
      return Status(Detail::kTooLarge, too_large(what, r.size(), "bytes",
                                                 "max_collection_name_bytes",
                                                 limits_.max_collection_name_bytes));
    }
    out.assign(reinterpret_cast<const char*>(r.begin()), r.size());
    return ok_status();
  }

  Status payload(std::string_view what, capnp::Data::Reader r, std::string& out) const {
    if (r.size() > limits_.max_payload_bytes) {
      return Status(Detail::kTooLarge, too_large(what, r.size(), "bytes", "max_payload_bytes",
                                                 limits_.max_payload_bytes));
    }
    out.assign(reinterpret_cast<const char*>(r.begin()), r.size());
    return ok_status();
  }

  template <typename ListReader, typename T>
  Status values(std::string_view what, ListReader r, std::string_view limit_name,
                std::size_t limit, std::vector<T>& out) const {
    SHOAL_RETURN_IF_ERROR(count(what, r.size(), limit_name, limit));
    out.clear();
    out.reserve(r.size());
    for (auto v : r) out.push_back(v);
    return ok_status();
  }

  Status specs(std::string_view what, capnp::List<wire::CollectionSpec>::Reader r,
               std::vector<CollectionSpecWire>& out) const {
    SHOAL_RETURN_IF_ERROR(count(what, r.size(), "max_specs", limits_.max_specs));
    out.clear();
    out.reserve(r.size());
    for (auto s : r) SHOAL_RETURN_IF_ERROR(spec(s, out.emplace_back()));
    return ok_status();
  }

  Status spec(wire::CollectionSpec::Reader s, CollectionSpecWire& out) const {
    SHOAL_RETURN_IF_ERROR(name("CollectionSpec.name", s.getName(), out.name));
    out.dimension = s.getDimension();
    out.metric = s.getMetric();
    out.m = s.getM();
    out.ef_construction = s.getEfConstruction();
    out.ef_search = s.getEfSearch();
    out.quantize = s.getQuantize();
    out.quant_min = s.getQuantMin();
    out.quant_max = s.getQuantMax();
    return ok_status();
  }

  Result<Message> hello(wire::Hello::Reader r) const {
    Hello m;
    auto replica = r.getReplica();
    if (replica.size() != kReplicaWireBytes) {
      return Status(Detail::kMalformed, "Hello.replica is " + std::to_string(replica.size()) +
                                            " bytes, expected exactly " +
                                            std::to_string(kReplicaWireBytes));
    }
    m.replica.assign(reinterpret_cast<const char*>(replica.begin()), replica.size());
    m.protocol_version = r.getProtocolVersion();
    SHOAL_RETURN_IF_ERROR(specs("Hello.collections", r.getCollections(), m.collections));
    SHOAL_RETURN_IF_ERROR(payload("Hello.catalogue", r.getCatalogue(), m.catalogue));
    SHOAL_RETURN_IF_ERROR(payload("Hello.revocations", r.getRevocations(), m.revocations));
    auto counters = r.getYourCounters();
    SHOAL_RETURN_IF_ERROR(count("Hello.yourCounters", counters.size(), "max_specs", limits_.max_specs));
    m.your_counters.reserve(counters.size());
    for (auto c : counters) {
      CounterWire& out = m.your_counters.emplace_back();
      SHOAL_RETURN_IF_ERROR(name("Counter.collection", c.getCollection(), out.collection));
      out.counter = c.getCounter();
      if (c.getHasIncarnation()) out.incarnation = c.getIncarnation();
    }
    return Message(std::move(m));
  }

  Result<Message> delta_batch(wire::DeltaBatch::Reader r) const {
    DeltaBatch m;
    m.first_seq = r.getFirstSeq();
    m.last_seq = r.getLastSeq();
    SHOAL_RETURN_IF_ERROR(specs("DeltaBatch.specs", r.getSpecs(), m.specs));
    auto items = r.getItems();
    SHOAL_RETURN_IF_ERROR(count("DeltaBatch.items", items.size(), "max_items", limits_.max_items));
    m.items.reserve(items.size());
    for (auto it : items) {
      DeltaItem& item = m.items.emplace_back();
      SHOAL_RETURN_IF_ERROR(name("DeltaItem.collection", it.getCollection(), item.collection));
      SHOAL_RETURN_IF_ERROR(payload("DeltaItem.delta", it.getDelta(), item.delta));
    }
    return Message(std::move(m));
  }

  Result<Message> delta_ack(wire::DeltaAck::Reader r) const {
    DeltaAck m;
    m.last_seq = r.getLastSeq();
    return Message(m);
  }

  Result<Message> digest_query(wire::DigestQuery::Reader r) const {
    DigestQuery m;
    m.session = r.getSession();
    SHOAL_RETURN_IF_ERROR(name("DigestQuery.collection", r.getCollection(), m.collection));
    m.level = r.getLevel();
    SHOAL_RETURN_IF_ERROR(values("DigestQuery.indices", r.getIndices(), "max_indices",
                                 limits_.max_indices, m.indices));
    return Message(std::move(m));
  }

  Result<Message> digest_reply(wire::DigestReply::Reader r) const {
    DigestReply m;
    m.session = r.getSession();
    SHOAL_RETURN_IF_ERROR(name("DigestReply.collection", r.getCollection(), m.collection));
    m.has_collection = r.getHasCollection();
    m.level = r.getLevel();
    SHOAL_RETURN_IF_ERROR(values("DigestReply.indices", r.getIndices(), "max_indices",
                                 limits_.max_indices, m.indices));
    SHOAL_RETURN_IF_ERROR(values("DigestReply.digests", r.getDigests(), "max_digests",
                                 limits_.max_digests, m.digests));
    m.root = r.getRoot();
    m.leaf_bits = r.getLeafBits();
    m.fanout_bits = r.getFanoutBits();
    SHOAL_RETURN_IF_ERROR(payload("DigestReply.context", r.getContext(), m.context));
    return Message(std::move(m));
  }

  Result<Message> bucket_query(wire::BucketQuery::Reader r) const {
    BucketQuery m;
    m.session = r.getSession();
    SHOAL_RETURN_IF_ERROR(name("BucketQuery.collection", r.getCollection(), m.collection));
    SHOAL_RETURN_IF_ERROR(values("BucketQuery.buckets", r.getBuckets(), "max_indices",
                                 limits_.max_indices, m.buckets));
    return Message(std::move(m));
  }

  Result<Message> bucket_reply(wire::BucketReply::Reader r) const {
    BucketReply m;
    m.session = r.getSession();
    SHOAL_RETURN_IF_ERROR(name("BucketReply.collection", r.getCollection(), m.collection));
    SHOAL_RETURN_IF_ERROR(values("BucketReply.buckets", r.getBuckets(), "max_indices",
                                 limits_.max_indices, m.buckets));
    SHOAL_RETURN_IF_ERROR(payload("BucketReply.slice", r.getSlice(), m.slice));
    return Message(std::move(m));
  }

  Result<Message> envelope(wire::Envelope::Reader env) const {
    switch (env.which()) {
      case wire::Envelope::HELLO: return hello(env.getHello());
      case wire::Envelope::DELTA_BATCH: return delta_batch(env.getDeltaBatch());
      case wire::Envelope::DELTA_ACK: return delta_ack(env.getDeltaAck());
      case wire::Envelope::DIGEST_QUERY: return digest_query(env.getDigestQuery());
      case wire::Envelope::DIGEST_REPLY: return digest_reply(env.getDigestReply());
      case wire::Envelope::BUCKET_QUERY: return bucket_query(env.getBucketQuery());
      case wire::Envelope::BUCKET_REPLY: return bucket_reply(env.getBucketReply());
    }
    return Status(Code::kUnimplemented,
                  "Envelope carries unknown message kind " +
                      std::to_string(static_cast<unsigned>(env.which())) +
                      " (from a newer protocol version?)");
  }

 private:
  const DecodeLimits& limits_;
};

std::uint32_t load_u32_le(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Checks the flat-array segment table against the input length. Cap'n Proto would catch most of
// this too, but without saying whether the input was cut short or carries extra bytes.
Status check_segment_table(std::string_view bytes) {
  if (bytes.size() < 8) {
    return Status(Detail::kTruncated, "message is " + std::to_string(bytes.size()) +
                                          " bytes, shorter than the 8-byte segment table header");
  }
  const std::uint64_t segments = std::uint64_t{load_u32_le(bytes.data())} + 1;
  if (segments > kCapnpMaxSegments) {
    return Status(Detail::kMalformed, "segment table declares " + std::to_string(segments) +
                                          " segments, above Cap'n Proto's limit of " +
                                          std::to_string(kCapnpMaxSegments));
  }
  const std::uint64_t table_bytes = (segments / 2 + 1) * 8;
  if (bytes.size() < table_bytes) {
    return Status(Detail::kTruncated, "message is " + std::to_string(bytes.size()) +
                                          " bytes, shorter than its " +
                                          std::to_string(table_bytes) + "-byte segment table");
  }
  std::uint64_t total = table_bytes;
  for (std::uint64_t i = 0; i < segments; ++i) {
    total += std::uint64_t{load_u32_le(bytes.data() + 4 + 4 * i)} * 8;
  }
  if (bytes.size() < total) {
    return Status(Detail::kTruncated, "message is " + std::to_string(bytes.size()) +
                                          " bytes, its segment table says " +
                                          std::to_string(total));
  }
  if (bytes.size() > total) {
    return Status(Detail::kMalformed, "message has " + std::to_string(bytes.size() - total) +
                                          " trailing bytes after the " + std::to_string(total) +
                                          " its segment table declares");
  }
  return ok_status();
}

bool contains(const char* haystack, const char* needle) {
  return haystack != nullptr && std::strstr(haystack, needle) != nullptr;
}

Status from_kj(const kj::Exception& e, const DecodeLimits& limits) {
  const char* what = e.getDescription().cStr();
  if (contains(what, "traversal limit")) {
    return Status(Detail::kTooLarge, "message exceeds the limit traversal_limit_words=" +
                                         std::to_string(limits.traversal_limit_words));
  }
  if (contains(what, "deeply-nested")) {
    return Status(Detail::kTooLarge, "message nests deeper than the limit nesting_limit=" +
                                         std::to_string(limits.nesting_limit) +
                                         " (or has a pointer cycle)");
  }
  if (contains(what, "ends prematurely")) {
    return Status(Detail::kTruncated, std::string("message is cut short: ") + what);
  }
  return Status(Detail::kMalformed, std::string("malformed Cap'n Proto message: ") + what);
}

Result<Message> decode_checked(std::string_view bytes, const DecodeLimits& limits) {
  SHOAL_RETURN_IF_ERROR(check_segment_table(bytes));
  // Cap'n Proto reads words in place; a misaligned input is copied into an aligned buffer first.
  const std::size_t word_count = bytes.size() / sizeof(capnp::word);
  kj::Array<capnp::word> copy;
  kj::ArrayPtr<const capnp::word> words;
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(capnp::word) == 0) {
    words = kj::arrayPtr(reinterpret_cast<const capnp::word*>(bytes.data()), word_count);
  } else {
    copy = kj::heapArray<capnp::word>(word_count);
    std::memcpy(copy.begin(), bytes.data(), bytes.size());
    words = kj::arrayPtr(static_cast<const capnp::word*>(copy.begin()), word_count);
  }
  capnp::ReaderOptions options;
  options.traversalLimitInWords = limits.traversal_limit_words;
  options.nestingLimit = limits.nesting_limit;
  capnp::FlatArrayMessageReader reader(words, options);
  return Reader(limits).envelope(reader.getRoot<wire::Envelope>());
}

}  // namespace

std::string encode(const Message& message) {
  capnp::MallocMessageBuilder builder;
  auto env = builder.initRoot<wire::Envelope>();
  std::visit([&](const auto& m) { put(env, m); }, message);
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(builder);
  kj::ArrayPtr<const kj::byte> bytes = flat.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

Result<Message> decode(std::string_view bytes, const DecodeLimits& limits) {
  if (bytes.size() > limits.max_message_bytes) {
    return Status(Detail::kTooLarge, too_large("message", bytes.size(), "bytes",
                                               "max_message_bytes", limits.max_message_bytes));
  }
  try {
    return decode_checked(bytes, limits);
  } catch (const kj::Exception& e) {
    return from_kj(e, limits);
  } catch (const std::bad_alloc&) {
    return Status(Code::kOverloaded, "out of memory while decoding a message");
  } catch (const std::exception& e) {
    return Status(Detail::kMalformed, std::string("message failed to decode: ") + e.what());
  } catch (...) {
    return Status(Detail::kMalformed, "message failed to decode: unknown exception");
  }
}

namespace {

// Runs `f(reader)` on a struct inside a message someone else decoded (an RPC call's
// parameters), with the same exception handling as decode().
template <typename T, typename F>
Result<T> read_guarded(const DecodeLimits& limits, F&& f) {
  try {
    return f(Reader(limits));
  } catch (const kj::Exception& e) {
    return from_kj(e, limits);
  } catch (const std::bad_alloc&) {
    return Status(Code::kOverloaded, "out of memory while decoding a message");
  } catch (const std::exception& e) {
    return Status(Detail::kMalformed, std::string("message failed to decode: ") + e.what());
  }
}

// The same for a Reader method that returns a Message holding a T.
template <typename T, typename F>
Result<T> read_struct(const DecodeLimits& limits, F&& f) {
  return read_guarded<T>(limits, [&](const Reader& rd) -> Result<T> {
    Result<Message> m = f(rd);
    if (!m.ok()) return m.status();
    return std::get<T>(std::move(*m));
  });
}

}  // namespace

void write(wire::CollectionSpec::Builder b, const CollectionSpecWire& s) { put_spec(b, s); }

Result<CollectionSpecWire> read(wire::CollectionSpec::Reader r, const DecodeLimits& limits) {
  return read_guarded<CollectionSpecWire>(limits, [&](const Reader& rd) -> Result<CollectionSpecWire> {
    CollectionSpecWire out;
    SHOAL_RETURN_IF_ERROR(rd.spec(r, out));
    return out;
  });
}

Result<Hello> read(wire::Hello::Reader r, const DecodeLimits& limits) {
  return read_struct<Hello>(limits, [&](const Reader& rd) { return rd.hello(r); });
}
Result<DeltaBatch> read(wire::DeltaBatch::Reader r, const DecodeLimits& limits) {
  return read_struct<DeltaBatch>(limits, [&](const Reader& rd) { return rd.delta_batch(r); });
}
Result<DeltaAck> read(wire::DeltaAck::Reader r, const DecodeLimits& limits) {
  return read_struct<DeltaAck>(limits, [&](const Reader& rd) { return rd.delta_ack(r); });
}
Result<DigestQuery> read(wire::DigestQuery::Reader r, const DecodeLimits& limits) {
  return read_struct<DigestQuery>(limits, [&](const Reader& rd) { return rd.digest_query(r); });
}
Result<DigestReply> read(wire::DigestReply::Reader r, const DecodeLimits& limits) {
  return read_struct<DigestReply>(limits, [&](const Reader& rd) { return rd.digest_reply(r); });
}
Result<BucketQuery> read(wire::BucketQuery::Reader r, const DecodeLimits& limits) {
  return read_struct<BucketQuery>(limits, [&](const Reader& rd) { return rd.bucket_query(r); });
}
Result<BucketReply> read(wire::BucketReply::Reader r, const DecodeLimits& limits) {
  return read_struct<BucketReply>(limits, [&](const Reader& rd) { return rd.bucket_reply(r); });
}

}  // namespace shoal::transport
