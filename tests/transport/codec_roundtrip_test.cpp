// Proves that transport's codec is lossless and deterministic for every sync message kind:
// random messages (arbitrary bytes in every string, empty and limit-sized strings and lists,
// multi-segment payloads) decode to exactly the message encoded, from aligned and misaligned
// buffers alike, and re-encoding the decoded message gives the same bytes. Also pins
// message_name() and the behaviour of absent (null) message bodies.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "message_gen.hpp"
#include "transport/codec.hpp"

using namespace shoal;
using namespace shoal::transport;
using namespace shoal::transport::testing;

TEST_CASE("every message kind round-trips through encode and decode unchanged",
          "[transport][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    for (std::size_t kind = 0; kind < kMessageKinds; ++kind) {
      INFO("kind " << kind);
      for (int i = 0; i < 150; ++i) {
        const Message m = random_message(rng, kind);
        REQUIRE(m.index() == kind);
        const std::string bytes = encode(m);
        REQUIRE(bytes.size() % 8 == 0);

        auto decoded = decode(bytes);
        REQUIRE(decoded.ok());
        CHECK(*decoded == m);
        CHECK(encode(*decoded) == bytes);

        std::vector<std::uint64_t> storage;
        const std::size_t misalign = static_cast<std::size_t>(rng.uniform_range(1, 7));
        auto shifted = decode(misaligned_copy(bytes, misalign, storage));
        REQUIRE(shifted.ok());
        CHECK(*shifted == m);
      }
    }
  }
}

TEST_CASE("encoding is deterministic: equal messages give equal bytes", "[transport][property]") {
  Rng rng(static_cast<std::uint64_t>(Catch::rngSeed()));
  INFO("seed " << rng.seed());
  for (int i = 0; i < 200; ++i) {
    const std::size_t kind = static_cast<std::size_t>(rng.uniform(kMessageKinds));
    const Message m = random_message(rng, kind);
    const Message copy = m;
    CHECK(encode(m) == encode(copy));
  }
}

TEST_CASE("default-constructed messages round-trip", "[transport]") {
  Hello hello;
  hello.replica.assign(kReplicaWireBytes, '\0');
  const std::vector<Message> messages = {hello,         DeltaBatch{},  DeltaAck{},
                                         DigestQuery{}, DigestReply{}, BucketQuery{},
                                         BucketReply{}};
  for (const auto& m : messages) {
    INFO(message_name(m));
    auto d = decode(encode(m));
    REQUIRE(d.ok());
    CHECK(*d == m);
  }
}

TEST_CASE("messages at exactly the default limits are accepted", "[transport]") {
  const DecodeLimits limits;
  DeltaBatch batch;
  batch.specs.resize(limits.max_specs);
  for (auto& s : batch.specs) s.name.assign(limits.max_collection_name_bytes, 'n');
  batch.items.resize(limits.max_items);
  batch.items.front().collection.assign(limits.max_collection_name_bytes, 'c');
  auto d = decode(encode(batch));
  REQUIRE(d.ok());
  CHECK(*d == Message(batch));

  DigestReply reply;
  reply.indices.resize(limits.max_indices, 7);
  reply.digests.resize(limits.max_digests, 9);
  auto r = decode(encode(reply));
  REQUIRE(r.ok());
  CHECK(*r == Message(reply));
}

TEST_CASE("message_name gives one distinct short name per kind", "[transport]") {
  Rng rng(1);
  std::set<std::string> names;
  for (std::size_t kind = 0; kind < kMessageKinds; ++kind) {
    names.insert(message_name(random_message(rng, kind)));
  }
  CHECK(names == std::set<std::string>{"hello", "delta_batch", "delta_ack", "digest_query",
                                       "digest_reply", "bucket_query", "bucket_reply"});
  CHECK(std::string(message_name(DeltaAck{})) == "delta_ack");
}
