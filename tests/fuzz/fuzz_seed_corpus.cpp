// Writes seed corpora for the fuzz targets: encoded sync messages of every kind (for
// fuzz_transport_decode) and pairs of encoded CRDT deltas from a small random history (for
// fuzz_crdt_delta). Not a test; scripts/fuzz.sh runs it once before fuzzing.
// Usage: shoal_fuzz_seed_corpus <transport-dir> <crdt-dir>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "crdt/codec.hpp"
#include "crdt/or_map.hpp"
#include "transport/codec.hpp"

namespace {

using namespace shoal;

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string blob(Rng& rng, std::size_t max) {
  std::string s(static_cast<std::size_t>(rng.uniform(max + 1)), '\0');
  for (auto& c : s) c = static_cast<char>(rng.next_u32());
  return s;
}

std::vector<transport::Message> messages(Rng& rng) {
  using namespace shoal::transport;
  std::vector<Message> out;
  for (int i = 0; i < 4; ++i) {
    CollectionSpecWire spec{blob(rng, 10), rng.next_u32(), 1, 16, 200, 64, i % 2 == 0, -1.0f, 1.0f};
    out.push_back(Hello{std::string(kReplicaWireBytes, 'r'), kProtocolVersion, {spec, spec}});
    out.push_back(DeltaBatch{1, 5, {spec}, {DeltaItem{"c", blob(rng, 40)}, DeltaItem{"d", ""}}});
    out.push_back(DeltaAck{rng.next_u64()});
    out.push_back(DigestQuery{rng.next_u64(), "c", 1, {1, 2, 3}});
    out.push_back(DigestReply{rng.next_u64(), "c", true, 1, {1}, {5, 6, 7, 8}, 9, 12, 2, blob(rng, 30)});
    out.push_back(BucketQuery{rng.next_u64(), "c", {4, 5}});
    out.push_back(BucketReply{rng.next_u64(), "c", {4, 5}, blob(rng, 40)});
  }
  return out;
}

std::string delta_bytes(const crdt::Delta& d) {
  crdt::Bytes b;
  crdt::encode_delta(d, b);
  return std::string(b.begin(), b.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <transport-corpus-dir> <crdt-corpus-dir>\n", argv[0]);
    return 2;
  }
  Rng rng(20240601);
  int n = 0;
  for (const auto& m : messages(rng)) {
    write(std::string(argv[1]) + "/seed-" + std::to_string(n++), transport::encode(m));
  }

  // A few replicas making upserts and removes; pairs of their deltas (and joined batches).
  std::vector<crdt::ORMap> maps(3);
  std::vector<crdt::Delta> deltas;
  std::uint64_t clock = 1;
  for (int i = 0; i < 60; ++i) {
    const std::size_t r = static_cast<std::size_t>(rng.uniform(maps.size()));
    const std::string id = "rec-" + std::to_string(rng.uniform(6));
    crdt::ReplicaId self = crdt::replica_for_testing(r + 1);
    if (rng.uniform(3) != 0) {
      std::string payload = blob(rng, 8);
      auto d = maps[r].upsert(self, id, crdt::Bytes(payload.begin(), payload.end()),
                              crdt::Hlc::from_raw(++clock));
      if (d.ok()) deltas.push_back(*d);
    } else {
      auto d = maps[r].remove(id);
      if (d.ok()) deltas.push_back(*d);
    }
    if (!deltas.empty() && rng.uniform(4) == 0) {
      maps[(r + 1) % maps.size()].join(deltas.back());
    }
  }
  for (int i = 0; i < 40 && !deltas.empty(); ++i) {
    crdt::Delta a = deltas[static_cast<std::size_t>(rng.uniform(deltas.size()))];
    if (i % 3 == 0) a.join(deltas[static_cast<std::size_t>(rng.uniform(deltas.size()))]);
    const crdt::Delta& b = deltas[static_cast<std::size_t>(rng.uniform(deltas.size()))];
    const std::string ea = delta_bytes(a);
    std::string input;
    input.push_back(static_cast<char>(ea.size() & 0xff));
    input.push_back(static_cast<char>((ea.size() >> 8) & 0xff));
    input += ea;
    input += delta_bytes(b);
    write(std::string(argv[2]) + "/seed-" + std::to_string(i), input);
  }
  return 0;
}
