// Proves that decode() is total on hostile input: at least 20,000 inputs per run (random
// messages truncated, bit-flipped, word-overwritten, spliced, or pure noise behind a plausible
// segment table, decoded under default and under tight limits) each give either a non-OK Status
// or a message that keeps every limit and round-trips through encode and decode again. A crash,
// assertion or escaped exception fails the run (run it under ASan+UBSan too).
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "message_gen.hpp"
#include "transport/codec.hpp"

using namespace shoal;
using namespace shoal::transport;
using namespace shoal::transport::testing;

namespace {

bool names_ok(const std::vector<CollectionSpecWire>& specs, const DecodeLimits& l) {
  if (specs.size() > l.max_specs) return false;
  for (const auto& s : specs) {
    if (s.name.size() > l.max_collection_name_bytes) return false;
  }
  return true;
}

// The limits a decoded message must keep.
bool within_limits(const Message& m, const DecodeLimits& l) {
  const std::size_t name_max = l.max_collection_name_bytes;
  if (const auto* h = std::get_if<Hello>(&m)) {
    return h->replica.size() == kReplicaWireBytes && names_ok(h->collections, l);
  }
  if (const auto* b = std::get_if<DeltaBatch>(&m)) {
    if (!names_ok(b->specs, l) || b->items.size() > l.max_items) return false;
    for (const auto& it : b->items) {
      if (it.collection.size() > name_max || it.delta.size() > l.max_payload_bytes) return false;
    }
    return true;
  }
  if (const auto* q = std::get_if<DigestQuery>(&m)) {
    return q->collection.size() <= name_max && q->indices.size() <= l.max_indices;
  }
  if (const auto* r = std::get_if<DigestReply>(&m)) {
    return r->collection.size() <= name_max && r->indices.size() <= l.max_indices &&
           r->digests.size() <= l.max_digests && r->context.size() <= l.max_payload_bytes;
  }
  if (const auto* q = std::get_if<BucketQuery>(&m)) {
    return q->collection.size() <= name_max && q->buckets.size() <= l.max_indices;
  }
  if (const auto* r = std::get_if<BucketReply>(&m)) {
    return r->collection.size() <= name_max && r->buckets.size() <= l.max_indices &&
           r->slice.size() <= l.max_payload_bytes;
  }
  return true;  // DeltaAck
}

// Small messages mostly, so mutations hit structure rather than payload bytes.
std::string seed_message(Rng& rng) {
  Message m = random_message(rng, static_cast<std::size_t>(rng.uniform(kMessageKinds)));
  return encode(m);
}

std::string mutate(Rng& rng, std::string bytes) {
  switch (rng.uniform(6)) {
    case 0:  // truncate
      bytes.resize(static_cast<std::size_t>(rng.uniform(bytes.size() + 1)));
      break;
    case 1: {  // flip 1..8 bits anywhere
      const auto flips = rng.uniform_range(1, 8);
      for (std::int64_t i = 0; i < flips && !bytes.empty(); ++i) {
        const auto pos = static_cast<std::size_t>(rng.uniform(bytes.size()));
        bytes[pos] = static_cast<char>(bytes[pos] ^ (1 << rng.uniform(8)));
      }
      break;
    }
    case 2: {  // flip bits past the segment table only, so capnp's pointer checks are reached
      const std::size_t start = std::min<std::size_t>(bytes.size(), 8);
      const auto flips = rng.uniform_range(1, 4);
      for (std::int64_t i = 0; i < flips && bytes.size() > start; ++i) {
        const auto pos = start + static_cast<std::size_t>(rng.uniform(bytes.size() - start));
        bytes[pos] = static_cast<char>(bytes[pos] ^ (1 << rng.uniform(8)));
      }
      break;
    }
    case 3: {  // overwrite whole words (pointers) with random or extreme values
      const std::size_t words = bytes.size() / 8;
      const auto n = rng.uniform_range(1, 3);
      for (std::int64_t i = 0; i < n && words > 1; ++i) {
        const auto w = 1 + static_cast<std::size_t>(rng.uniform(words - 1));
        std::uint64_t v = rng.next_u64();
        if (rng.bernoulli(0.3)) v = ~std::uint64_t{0} >> rng.uniform(64);
        std::memcpy(bytes.data() + 8 * w, &v, 8);
      }
      break;
    }
    case 4: {  // splice two messages at random points
      const std::string other = seed_message(rng);
      const auto a = static_cast<std::size_t>(rng.uniform(bytes.size() + 1));
      const auto b = static_cast<std::size_t>(rng.uniform(other.size() + 1));
      bytes = bytes.substr(0, a) + other.substr(b);
      break;
    }
    default: {  // noise behind a segment table that matches its length
      const std::size_t words = static_cast<std::size_t>(rng.uniform(64)) + 1;
      bytes = random_bytes(rng, 8 * (words + 1));
      const std::uint64_t header = std::uint64_t{words} << 32;
      std::memcpy(bytes.data(), &header, 8);
      break;
    }
  }
  return bytes;
}

}  // namespace

TEST_CASE("random, truncated and bit-flipped inputs decode to a Status or a valid message",
          "[transport][property]") {
  Rng rng(static_cast<std::uint64_t>(Catch::rngSeed()));
  INFO("seed " << rng.seed());
  DecodeLimits tight;
  tight.max_indices = 64;
  tight.max_digests = 64;
  tight.max_items = 8;
  tight.max_specs = 4;
  tight.max_collection_name_bytes = 8;
  tight.max_payload_bytes = 64;
  tight.traversal_limit_words = 512;
  tight.nesting_limit = 5;

  constexpr int kInputs = 24000;
  int accepted = 0;
  std::string base = seed_message(rng);
  for (int i = 0; i < kInputs; ++i) {
    if (i % 16 == 0) base = seed_message(rng);
    std::string input = mutate(rng, base);
    if (rng.bernoulli(0.3)) input = mutate(rng, input);  // sometimes two mutations
    const DecodeLimits limits = rng.bernoulli(0.25) ? tight : DecodeLimits{};
    // Misaligned inputs half the time.
    std::vector<std::uint64_t> storage;
    const std::string_view view =
        misaligned_copy(input, static_cast<std::size_t>(rng.uniform(2)) * 3, storage);
    auto r = decode(view, limits);
    if (!r.ok()) {
      REQUIRE_FALSE(r.status().message().empty());
      continue;
    }
    ++accepted;
    INFO("input " << i << ", kind " << message_name(*r));
    REQUIRE(within_limits(*r, limits));
    // Compared as bytes: a flipped float may be NaN, which operator== would call unequal.
    const std::string reencoded = encode(*r);
    auto again = decode(reencoded, limits);
    REQUIRE(again.ok());
    REQUIRE(encode(*again) == reencoded);
  }
  // Bit flips in payload bytes leave valid messages: some inputs must get through.
  CHECK(accepted > 0);
}
