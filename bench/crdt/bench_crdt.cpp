// bench_crdt: the figures issue 3 asks for, measured on one thread with fixed seeds.
//   - joins per second of 1-record deltas and of 1,000-record deltas into a 100,000-record map;
//   - the node's per-record path (decode stored entries, join, encode) per record;
//   - the cost of a digest-tree update per write (record digest + O(depth) tree update);
//   - CRDT metadata bytes per live record beyond the payload, as stored (encode_entries) and as
//     shipped in a delta (per record, beyond payload and id).
// Prints a table, then one machine-readable line per figure: "BENCH <name> <value> <unit>".
#include <cstdio>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "common/time.hpp"
#include "crdt/codec.hpp"
#include "crdt/or_map.hpp"

using namespace shoal;
using namespace shoal::crdt;

namespace {

constexpr std::size_t kRecords = 100'000;
constexpr std::size_t kPayloadBytes = 128;

std::string id_of(std::uint64_t i) { return "record-" + std::to_string(i); }

Bytes payload(Rng& rng) {
  Bytes b(kPayloadBytes);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng.next_u32());
  return b;
}

struct Figure {
  std::string name;
  double value;
  std::string unit;
};

double seconds_since(MonoTime t0) { return (now_mono() - t0).seconds_f(); }

// Keeps the optimiser from discarding measured work.
volatile std::uint64_t g_sink = 0;

}  // namespace

int main() {
  Rng rng(42);
  const ReplicaId a = replica_for_testing(1), b = replica_for_testing(2);
  std::vector<Figure> figures;

  // Base state on both replicas.
  ORMap source, target;
  std::uint64_t clock = 1;
  for (std::size_t i = 0; i < kRecords; ++i) {
    auto d = source.upsert(a, id_of(i), payload(rng), Hlc::from_raw(clock++));
    if (!d.ok()) return 1;
  }
  target.join_state(source);

  // 1-record deltas: overwrites of random records, joined one by one.
  {
    const std::size_t n = 200'000;
    std::vector<Delta> deltas;
    deltas.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      auto d = source.upsert(a, id_of(rng.uniform(kRecords)), payload(rng), Hlc::from_raw(clock++));
      deltas.push_back(std::move(d).value());
    }
    const MonoTime t0 = now_mono();
    for (const Delta& d : deltas) g_sink = g_sink + (target.join(d) ? 1 : 0);
    const double s = seconds_since(t0);
    figures.push_back({"join_1_record_delta_per_s", static_cast<double>(n) / s, "joins/s"});
  }

  // 1,000-record deltas: batches of 1,000 overwrites joined into one delta.
  {
    const std::size_t batches = 200, per = 1000;
    std::vector<Delta> deltas(batches);
    for (auto& batch : deltas) {
      for (std::size_t i = 0; i < per; ++i) {
        auto d =
            source.upsert(a, id_of(rng.uniform(kRecords)), payload(rng), Hlc::from_raw(clock++));
        batch.join(*d);
      }
    }
    const MonoTime t0 = now_mono();
    for (const Delta& d : deltas) g_sink = g_sink + (target.join(d) ? 1 : 0);
    const double s = seconds_since(t0);
    figures.push_back(
        {"join_1000_record_delta_per_s", static_cast<double>(batches) / s, "joins/s"});
    figures.push_back({"join_1000_record_delta_records_per_s",
                       static_cast<double>(batches * per) / s, "records/s"});
    // Encoding and decoding those deltas (what sync does around a join).
    std::vector<Bytes> wire(batches);
    const MonoTime t1 = now_mono();
    for (std::size_t i = 0; i < batches; ++i) encode_delta(deltas[i], wire[i]);
    const double enc = seconds_since(t1);
    const MonoTime t2 = now_mono();
    for (const Bytes& w : wire) g_sink = g_sink + (decode_delta(w).ok() ? 1 : 0);
    const double dec = seconds_since(t2);
    figures.push_back({"encode_1000_record_delta_us", enc * 1e6 / batches, "us/delta"});
    figures.push_back({"decode_1000_record_delta_us", dec * 1e6 / batches, "us/delta"});
  }
  const bool converged = target == source;

  // The node's per-record path: stored bytes -> decode -> join -> encode.
  {
    const std::size_t n = 200'000;
    std::vector<Bytes> stored;
    std::vector<Delta> deltas;
    CausalContext local_ctx = target.context();
    for (std::size_t i = 0; i < 1000; ++i) {
      const std::string id = id_of(i);
      Bytes bytes;
      encode_entries(*target.find(id), bytes);
      stored.push_back(std::move(bytes));
      deltas.push_back(*source.upsert(a, id, payload(rng), Hlc::from_raw(clock++)));
    }
    const MonoTime t0 = now_mono();
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t k = i % 1000;
      auto local = decode_entries(stored[k]);
      const Delta& d = deltas[k];
      Entries entries = std::move(local).value();
      join_entries(entries, local_ctx, d.records.begin()->second, d.context);
      Bytes out;
      encode_entries(entries, out);
      g_sink = g_sink + out.size();
    }
    const double s = seconds_since(t0);
    figures.push_back(
        {"node_record_decode_join_encode_ns", s * 1e9 / static_cast<double>(n), "ns/record"});
  }

  // Digest update per write.
  {
    DigestTree tree;
    const std::size_t n = 1'000'000;
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < 1000; ++i) ids.push_back(id_of(i));
    Entries before{Entry{Dot{a, 1}, Hlc::from_raw(1), {}}};
    Entries after{Entry{Dot{a, 2}, Hlc::from_raw(2), {}}};
    const MonoTime t0 = now_mono();
    for (std::size_t i = 0; i < n; ++i) {
      before[0].dot.counter = i + 1;
      after[0].dot.counter = i + 2;
      tree.update_record(ids[i % ids.size()], before, after);
    }
    const double s = seconds_since(t0);
    g_sink = g_sink + tree.root();
    figures.push_back({"digest_update_per_write_ns", s * 1e9 / static_cast<double>(n), "ns/write"});
    const MonoTime t1 = now_mono();
    for (std::size_t i = 0; i < n; ++i) tree.update(static_cast<std::uint32_t>(i & 4095), i, i + 1);
    const double s2 = seconds_since(t1);
    figures.push_back(
        {"digest_tree_update_only_ns", s2 * 1e9 / static_cast<double>(n), "ns/write"});
  }

  // Metadata bytes per live record (single-entry records, as almost all are).
  {
    double stored_overhead = 0, delta_overhead = 0;
    std::size_t n = 0;
    for (const auto& [id, entries] : target.records()) {
      if (entries.size() != 1) continue;
      Bytes bytes;
      encode_entries(entries, bytes);
      stored_overhead += static_cast<double>(bytes.size() - entries[0].payload.size());
      ++n;
    }
    stored_overhead /= static_cast<double>(n);
    // Per record inside a 1,000-record delta: (delta bytes - payloads - ids) / records.
    Delta batch;
    for (std::size_t i = 0; i < 1000; ++i) {
      const std::string id = id_of(i);
      batch.join(*source.upsert(b, id, payload(rng), Hlc::from_raw(clock++)));
    }
    Bytes wire;
    encode_delta(batch, wire);
    std::size_t payload_and_ids = 0;
    for (const auto& [id, entries] : batch.records) {
      payload_and_ids += id.size();
      for (const Entry& e : entries) payload_and_ids += e.payload.size();
    }
    delta_overhead = static_cast<double>(wire.size() - payload_and_ids) / 1000.0;
    Bytes ctx;
    encode_context(target.context(), ctx);
    figures.push_back({"metadata_bytes_per_live_record_stored", stored_overhead, "bytes"});
    figures.push_back({"metadata_bytes_per_record_in_delta", delta_overhead, "bytes"});
    figures.push_back({"context_bytes_total", static_cast<double>(ctx.size()), "bytes"});
  }

  std::printf("bench_crdt: %zu live records, %zu-byte payloads, one thread, converged=%s\n\n",
              kRecords, kPayloadBytes, converged ? "yes" : "NO");
  std::printf("%-42s %16s  %s\n", "figure", "value", "unit");
  for (const Figure& f : figures)
    std::printf("%-42s %16.1f  %s\n", f.name.c_str(), f.value, f.unit.c_str());
  std::printf("\n");
  for (const Figure& f : figures)
    std::printf("BENCH %s %.3f %s\n", f.name.c_str(), f.value, f.unit.c_str());
  return converged ? 0 : 1;
}
