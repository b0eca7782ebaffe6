// bench/sink/bench_cold_search.cpp: cold-search latency through the Sink capability, and the
// bytes the sink stores per record against the payload bytes (issue 15's bench).
//
// The path measured is the one a member calls: a real loopback link (TCP, the Noise XX handshake
// with certificates, the sealed channel, Cap'n Proto RPC) to a SinkServer (the code shoal-sink
// runs, started in this process) over its default store, LMDB in a temporary directory, with its
// state env on LMDB beside it (as shoal-sink: cold search scans the env's vectors). Records
// are Fashion-MNIST training images (784-d, the node's payload encoding with two metadata
// fields), uploaded as segments; queries are test images, k = 10, L2. The anchor, in the same
// run: exact search (index::exact_knn with the same kernels) over the same vectors in this
// process, so the ratio is what the RPC, the link and the sink's own bookkeeping cost.
//
// Usage: bench_cold_search [records=10000] [queries=300] [segment_records=1000]
// Prints p50/p99 of both sides (and of SinkService::cold_search called in-process, to separate
// the sink's work from the link's), their ratio, and bytes stored per record (before and after a
// compaction, with 1% of the records deleted) against payload bytes per record.
#include <boost/asio/io_context.hpp>
#include <capnp/message.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "crdt/codec.hpp"
#include "index/exact_index.hpp"
#include "index/kernels.hpp"
#include "node/core/record.hpp"
#include "node/io/datasets.hpp"
#include "security/certificate.hpp"
#include "sink/lmdb_object_store.hpp"
#include "sink/sink_server.hpp"
#include "transport/link.hpp"
#include "transport/rpc.capnp.h"
#include "transport/sink.capnp.h"

using namespace shoal;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kColl = "fmnist";

security::Identity identity() {
  std::array<std::uint8_t, security::kSeedBytes> seed{};
  randombytes_buf(seed.data(), seed.size());
  auto id = security::Identity::from_seed(seed);
  if (!id.ok()) std::abort();
  return std::move(*id);
}

std::vector<std::uint8_t> certify(const security::Identity& authority, const security::TrustAnchor& anchor,
                                  const security::Identity& device, security::DeviceRole role) {
  security::Certificate c;
  c.role = role;
  c.mesh_id = anchor.mesh_id;
  c.device_key = device.public_key();
  c.serial = 1;
  const std::int64_t now_s = now_wall().ns() / 1'000'000'000;
  c.not_before_s = now_s - 3600;
  c.not_after_s = now_s + 24 * 3600;
  c.grants = {{"*", security::kReadWrite}};
  auto issued = security::issue_certificate(c, authority);
  auto bytes = security::encode_certificate(*issued);
  return *bytes;
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

capnp::Data::Reader bytes_of(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n_records = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10000;
  const std::size_t n_queries = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 300;
  const std::size_t per_segment = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 1000;
  if (sodium_init() < 0) return 1;
  const std::string dir_ds = "/usr/share/datasets/fashion-mnist/";
  auto train = io::read_vectors(dir_ds + "train-images-idx3-ubyte.gz", io::VectorFormat::kIdx, n_records);
  auto test = io::read_vectors(dir_ds + "t10k-images-idx3-ubyte.gz", io::VectorFormat::kIdx, n_queries);
  if (!train.ok() || !test.ok()) {
    std::fprintf(stderr, "bench_cold_search: Fashion-MNIST not found under %s (dataset-fashion-mnist)\n", dir_ds.c_str());
    return 77;
  }
  const std::size_t dim = train->dimension;

  // The sink on LMDB, served on loopback.
  const auto tmp = std::filesystem::temp_directory_path() / ("shoal-bench-cold-" + std::to_string(::getpid()));
  std::filesystem::remove_all(tmp);
  sink::LmdbObjectStore::Options lo;
  lo.map_size_bytes = std::uint64_t{4} << 30;
  auto store = sink::LmdbObjectStore::open(tmp.string(), lo);
  if (!store.ok()) return 1;
  // The state env on LMDB beside the objects, as shoal-sink keeps it (D60).
  const std::string state_dir = tmp.string() + "-state";
  std::filesystem::remove_all(state_dir);
  auto state = sink::open_state_env(state_dir);
  if (!state.ok()) return 1;
  auto service = sink::SinkService::open(**store, {}, state->store.get());
  if (!service.ok()) return 1;
  boost::asio::io_context io;
  transport::KjLoop loop(io);
  const security::Identity authority = identity();
  security::TrustAnchor anchor;
  randombytes_buf(anchor.mesh_id.data(), anchor.mesh_id.size());
  anchor.authorities = {authority.public_key()};
  const security::Identity sink_id = identity();
  sink::SinkCredentials creds;
  creds.identity = &sink_id;
  creds.certificate = certify(authority, anchor, sink_id, security::DeviceRole::kSink);
  creds.anchor = anchor;
  auto server = sink::SinkServer::start(loop, **service, std::move(creds), {}, nullptr);
  if (!server.ok()) return 1;

  const security::Identity me = identity();
  security::RevocationSet none;
  transport::LinkSecurity sec;
  sec.identity = &me;
  sec.certificate = certify(authority, anchor, me, security::DeviceRole::kMember);
  sec.anchor = &anchor;
  sec.revocations = [&]() -> const security::RevocationSet& { return none; };
  sec.trusted_now = [] { return now_wall(); };
  auto link = loop.run_until(transport::dial(loop, "127.0.0.1", (*server)->port(), sec, {}));
  auto intro = link->peer_bootstrap().castAs<transport::rpc::Gate>().introduceRequest();
  const std::string rid = crdt::replica_for_testing(7).encode();
  intro.getIntro().setReplica(bytes_of(rid));
  intro.getIntro().setMinProtocol(1);
  intro.getIntro().setMaxProtocol(1);
  auto sinkcap = loop.run_until(intro.send()).getSink();

  // Records as the node stores them: one entry each, the node's payload encoding.
  std::uint64_t payload_bytes = 0;
  std::vector<std::string> ids;
  crdt::RecordMap part;
  const crdt::ReplicaId writer = crdt::replica_for_testing(1);
  std::uint64_t counter = 0;
  const auto up0 = Clock::now();
  auto flush = [&] {
    if (part.empty()) return;
    auto seg = sink::encode_segment(sink::records_to_segment(kColl, part));
    auto req = sinkcap.uploadSegmentRequest();
    req.setSegment(bytes_of(*seg));
    loop.run_until(req.send());
    part.clear();
  };
  for (std::size_t i = 0; i < train->count; ++i) {
    node::RecordValue v;
    v.vector.assign(train->row(i), train->row(i) + dim);
    v.metadata.fields.emplace_back("label", static_cast<std::int64_t>(i % 10));
    v.metadata.fields.emplace_back("source", std::string("fashion-mnist"));
    const std::string payload = node::encode_payload(v);
    payload_bytes += payload.size();
    char id[32];
    std::snprintf(id, sizeof id, "img%06zu", i);
    ids.push_back(id);
    crdt::Entry e;
    e.dot = crdt::Dot{writer, ++counter};
    e.clock = crdt::Hlc::from_raw(1'000'000 + counter);
    e.payload.assign(payload.begin(), payload.end());
    part.emplace(id, crdt::Entries{std::move(e)});
    if (part.size() >= per_segment) flush();
  }
  flush();
  const double upload_s = std::chrono::duration<double>(Clock::now() - up0).count();

  // Cold search through RPC, and the exact-search anchor over the same vectors.
  std::vector<double> rpc_ms, exact_ms, service_ms;
  std::size_t mismatches = 0;
  const auto& kernels = index::best_kernels();
  const std::span<const float> base(train->data.data(), train->count * dim);
  for (std::size_t q = 0; q < test->count; ++q) {
    std::vector<float> query(test->row(q), test->row(q) + dim);
    auto t0 = Clock::now();
    auto req = sinkcap.coldSearchRequest();
    req.setCollection(kColl);
    auto ql = req.initQuery(static_cast<unsigned>(dim));
    for (unsigned i = 0; i < dim; ++i) ql.set(i, query[i]);
    req.setK(10);
    req.setMetric(node::metric_to_wire_byte(node::Metric::kL2));
    auto resp = loop.run_until(req.send());
    rpc_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    t0 = Clock::now();
    auto exact = index::exact_knn(kernels, node::Metric::kL2, base, dim, query, 10);
    exact_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    t0 = Clock::now();
    auto direct = (*service)->cold_search(kColl, query, 10, node::Metric::kL2);
    service_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!direct.ok()) return 1;
    auto hits = resp.getHits();
    for (unsigned i = 0; i < hits.size() && i < exact.size(); ++i) {
      const std::string got(reinterpret_cast<const char*>(hits[i].getId().begin()), hits[i].getId().size());
      if (got != ids[exact[i].label]) ++mismatches;
    }
  }

  auto status_resp = loop.run_until(sinkcap.statusRequest().send());
  auto st = status_resp.getStatus();
  const double stored_per = static_cast<double>(st.getBytesStored()) / static_cast<double>(train->count);
  const double payload_per = static_cast<double>(payload_bytes) / static_cast<double>(train->count);
  // 1% deleted, then compaction: what the store holds afterwards per live record.
  std::size_t deleted = 0;
  for (std::size_t i = 0; i < train->count; i += 100) {
    crdt::Delta d;
    d.records.emplace(ids[i], crdt::Entries{});
    d.context.add(crdt::Dot{writer, i + 1});
    crdt::Bytes b;
    crdt::encode_delta(d, b);
    auto req = sinkcap.pushDeltaRequest();
    req.setCollection(kColl);
    req.setDelta(capnp::Data::Reader(b.data(), b.size()));
    loop.run_until(req.send());
    ++deleted;
  }
  auto report = (*service)->compact();
  auto after = (*service)->status();
  const double stored_after = static_cast<double>(after.bytes_stored) / static_cast<double>(after.records);

  std::printf("bench_cold_search: %s, %zu records x %zu-d (Fashion-MNIST), %zu queries, k=10, l2, store %s, "
              "segments of %zu records, kernels %s\n",
              "loopback link (Noise + Cap'n Proto RPC) to SinkServer", train->count, dim, test->count,
              std::string((*store)->kind()).c_str(), per_segment, std::string(index::isa_name(kernels.isa)).c_str());
  std::printf("upload: %.2f s (%.0f records/s, %.1f MiB/s of segments)\n", upload_s,
              static_cast<double>(train->count) / upload_s,
              static_cast<double>(st.getBytesStored()) / upload_s / (1 << 20));
  std::printf("cold search (RPC)   p50 %.3f ms  p99 %.3f ms\n", pct(rpc_ms, 0.50), pct(rpc_ms, 0.99));
  std::printf("SinkService::cold_search in-process (no link) p50 %.3f ms  p99 %.3f ms\n", pct(service_ms, 0.50),
              pct(service_ms, 0.99));
  std::printf("exact search anchor p50 %.3f ms  p99 %.3f ms\n", pct(exact_ms, 0.50), pct(exact_ms, 0.99));
  std::printf("ratio cold/exact    p50 %.2f  p99 %.2f\n", pct(rpc_ms, 0.50) / pct(exact_ms, 0.50),
              pct(rpc_ms, 0.99) / pct(exact_ms, 0.99));
  std::printf("results differing from exact: %zu of %zu\n", mismatches, test->count * 10);
  std::printf("bytes per record: payload %.1f, stored %.1f (ratio %.3f); after deleting %zu and compacting "
              "(%s): stored %.1f per live record (ratio %.3f)\n",
              payload_per, stored_per, stored_per / payload_per, deleted,
              report.ok() ? "ok" : report.status().to_string().c_str(), stored_after, stored_after / payload_per);
  link->close();
  server->reset();
  std::filesystem::remove_all(tmp);
  std::filesystem::remove_all(state_dir);
  return mismatches == 0 ? 0 : 1;
}
