// tests/transport/message_gen.hpp: random sync messages for the transport tests. Not a test
// itself. Every generated message is within the default DecodeLimits, so it must round-trip.
// Byte strings are arbitrary bytes (NULs included), lengths include 0 and the exact limits, and
// some payloads are large enough that the encoder spills into several segments.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "transport/codec.hpp"
#include "transport/messages.hpp"

namespace shoal::transport::testing {

inline constexpr std::size_t kMessageKinds = std::variant_size_v<Message>;

// A fixed seed list (regressions and CI stability) plus this run's --rng-seed.
inline std::vector<std::uint64_t> test_seeds() {
  return {1, 2, 0x5eed, static_cast<std::uint64_t>(Catch::rngSeed())};
}

inline std::string random_bytes(Rng& rng, std::size_t len) {
  std::string s(len, '\0');
  for (auto& c : s) c = static_cast<char>(rng.next_u32());
  return s;
}

// A length in [0, max]: often small, sometimes exactly max.
inline std::size_t random_len(Rng& rng, std::size_t max) {
  const std::uint64_t pick = rng.uniform(10);
  if (pick == 0) return 0;
  if (pick == 1) return max;
  if (pick < 8) return static_cast<std::size_t>(rng.uniform(std::min<std::size_t>(max, 16) + 1));
  return static_cast<std::size_t>(rng.uniform(max + 1));
}

inline std::string random_name(Rng& rng) {
  return random_bytes(rng, random_len(rng, DecodeLimits{}.max_collection_name_bytes));
}

// CRDT payloads: mostly small, 1 in 16 is up to 64 KiB (several Cap'n Proto segments).
inline std::string random_payload(Rng& rng) {
  if (rng.uniform(16) == 0) return random_bytes(rng, static_cast<std::size_t>(rng.uniform(65537)));
  return random_bytes(rng, random_len(rng, 200));
}

template <typename T>
std::vector<T> random_values(Rng& rng, std::size_t max) {
  std::vector<T> v(random_len(rng, max));
  for (auto& x : v) x = static_cast<T>(rng.next_u64());
  return v;
}

inline CollectionSpecWire random_spec(Rng& rng) {
  CollectionSpecWire s;
  s.name = random_name(rng);
  s.dimension = rng.next_u32();
  s.metric = static_cast<std::uint8_t>(rng.next_u32());
  s.m = rng.next_u32();
  s.ef_construction = rng.next_u32();
  s.ef_search = rng.next_u32();
  s.quantize = rng.bernoulli(0.5);
  // Finite floats only: NaN != NaN would break the equality check, not the codec.
  s.quant_min = rng.uniform_float(-1e6f, 1e6f);
  s.quant_max = rng.uniform_float(-1e6f, 1e6f);
  return s;
}

inline std::vector<CollectionSpecWire> random_specs(Rng& rng) {
  std::vector<CollectionSpecWire> v(random_len(rng, 40));
  for (auto& s : v) s = random_spec(rng);
  return v;
}

// A random message of kind `kind` (the variant index).
inline Message random_message(Rng& rng, std::size_t kind) {
  switch (kind) {
    case 0: {
      Hello m;
      m.replica = random_bytes(rng, kReplicaWireBytes);
      m.protocol_version = rng.next_u32();
      m.collections = random_specs(rng);
      m.catalogue = random_bytes(rng, rng.uniform(64));
      m.revocations = random_bytes(rng, rng.uniform(64));
      for (std::uint64_t i = rng.uniform(4); i > 0; --i) {
        m.your_counters.push_back({random_name(rng), rng.next_u64(), std::nullopt});
        if (rng.uniform(2) == 0) m.your_counters.back().incarnation = rng.next_u32();  // and senders without it
      }
      return m;
    }
    case 1: {
      DeltaBatch m;
      m.first_seq = rng.next_u64();
      m.last_seq = rng.next_u64();
      m.specs = random_specs(rng);
      m.items.resize(random_len(rng, 60));
      for (auto& it : m.items) {
        it.collection = random_name(rng);
        it.delta = random_payload(rng);
      }
      return m;
    }
    case 2: return DeltaAck{rng.next_u64()};
    case 3: {
      DigestQuery m;
      m.session = rng.next_u64();
      m.collection = random_name(rng);
      m.level = rng.next_u32();
      m.indices = random_values<std::uint32_t>(rng, 3000);
      return m;
    }
    case 4: {
      DigestReply m;
      m.session = rng.next_u64();
      m.collection = random_name(rng);
      m.has_collection = rng.bernoulli(0.5);
      m.level = rng.next_u32();
      m.indices = random_values<std::uint32_t>(rng, 500);
      m.digests = random_values<std::uint64_t>(rng, 3000);
      m.root = rng.next_u64();
      m.leaf_bits = rng.next_u32();
      m.fanout_bits = rng.next_u32();
      m.context = random_payload(rng);
      return m;
    }
    case 5: {
      BucketQuery m;
      m.session = rng.next_u64();
      m.collection = random_name(rng);
      m.buckets = random_values<std::uint32_t>(rng, 3000);
      return m;
    }
    default: {
      BucketReply m;
      m.session = rng.next_u64();
      m.collection = random_name(rng);
      m.buckets = random_values<std::uint32_t>(rng, 3000);
      m.slice = random_payload(rng);
      return m;
    }
  }
}

// `bytes` placed at an offset of `misalign` bytes (0..7) from an 8-byte boundary; the returned
// view lives as long as `storage`.
inline std::string_view misaligned_copy(std::string_view bytes, std::size_t misalign,
                                        std::vector<std::uint64_t>& storage) {
  storage.assign(bytes.size() / 8 + 2, 0);
  char* base = reinterpret_cast<char*>(storage.data()) + misalign;
  std::copy(bytes.begin(), bytes.end(), base);
  return std::string_view(base, bytes.size());
}

}  // namespace shoal::transport::testing
