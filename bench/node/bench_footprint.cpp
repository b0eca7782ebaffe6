// bench_footprint: issue 16's memory, open, close and disk goals, through the C API with default
// settings (shoal_open with no options, shoal_collection_create: L2, int8 graph vectors with float
// re-ranking).
//
//   bench_footprint --fashion DATASET_DIR [--n N] [--work DIR] [--writes W] [--queries Q] [--keep]
//   bench_footprint --synthetic N --dim D [--seed S] [--work DIR] [--writes W] [--queries Q] [--keep]
//   bench_footprint (--fashion DIR | --synthetic N --dim D) --hnswlib-only   (the anchor's build alone)
//   --ef-construction E: build the collection (and the anchor) with efConstruction E instead of 200. Only
//   for building a directory whose open and disk are measured: the graph's size and layout do not
//   depend on it, its recall and the ingest time do; report it beside every figure it produced.
//   --no-anchor: skip raw hnswlib's build after the ingest (the ratio is then printed as nan).
//   --open-only: the open phase stops after the first answer, without closing (to profile open:
//   `perf record -g bench_footprint ... --keep --open-only --open-phase`); no disk figures.
//
// 1. Build: a fresh data directory gets the vectors through shoal_upsert_batch (1,000 per durable
//    batch), then shoal_close (timed: "close after ingest"); then raw hnswlib builds the same
//    vectors (M 16, efConstruction 200, 2 threads, as Shoal's defaults) as the ingest's anchor. With --keep an existing directory
//    built by the same command is reused.
// 2. Open, in a fresh process (this program re-executed with --open-phase), so that nothing of
//    the build (the dataset, freed heap) counts: shoal_open, then one shoal_search; the time from
//    before open to the first answer ("open to first answer"; the page cache is warm, the
//    directory was just written). Memory from /proc/self/status: RssAnon, RssFile, VmRSS and
//    VmHWM (the peak). The queries are read before the baseline is taken; the figures reported
//    are the node's share: each minus its value just before shoal_open.
//    Then Q queries (k 10, default ef) serve as a steady load; steady RSS is read after them.
//    Peak during open / steady = VmHWM after the first answer over VmRSS after the queries
//    (both including the small baseline). Reference for total RSS: the index's own memory
//    (shoal_collection_info index_bytes: int8 codes and graph, plus floats if the index still
//    keeps them) plus every float vector (n x d x 4, an upper bound of "the vectors touched").
//    Then W single durable upserts (new ids, existing vectors), then shoal_close ("close after W
//    writes"), then shoal_open and one search again ("reopen after W writes": the snapshot with
//    the W labels replayed; the index's bytes then, against those of the first open). Then W
//    upserts as one durable batch (new ids) and shoal_close at once ("close right after a batch
//    of W writes": the index queue still holds them), and an open to the first answer again.
// 3. Disk: the data directory's allocated bytes (st_blocks x 512, every file) over the raw vector
//    bytes n x d x 4.
// Goals (issue 16): anonymous RSS <= 100 MB and total RSS <= 1.2x the reference at 60k x 784;
// peak during open <= 1.1x steady; disk <= 1.5x raw at 60k x 784 and 1M x 128; open to first
// answer <= 1 s for 1M x 128 (synthetic clustered, seeded); close <= 0.2 s after 1,000 writes.
// Machine-readable lines start with "footprint ".
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "common/time.hpp"
#include "bench/ann/hnswlib_anchor.hpp"
#include "node/io/datasets.hpp"
#include "shoal.h"

using namespace shoal;

namespace {

constexpr char kCollection[] = "v";

[[noreturn]] void die(const char* what, int rc, const shoal_error& err) {
  std::fprintf(stderr, "bench_footprint: %s failed (0x%x): %s\n", what, rc, err.message);
  std::exit(1);
}

double seconds_since(MonoTime t0) { return (now_mono() - t0).seconds_f(); }

// Fields of /proc/self/status in bytes (they are given in kB).
struct ProcMem {
  double anon = 0, file = 0, rss = 0, hwm = 0;
};
ProcMem proc_mem() {
  std::ifstream in("/proc/self/status");
  std::string line;
  ProcMem m;
  auto field = [&](const char* name, double& out) {
    const std::size_t n = std::strlen(name);
    if (line.compare(0, n, name) == 0) out = std::atof(line.c_str() + n) * 1024.0;
  };
  while (std::getline(in, line)) {
    field("RssAnon:", m.anon);
    field("RssFile:", m.file);
    field("VmRSS:", m.rss);
    field("VmHWM:", m.hwm);
  }
  return m;
}

double mib(double b) { return b / (1024.0 * 1024.0); }

std::uint64_t dir_bytes(const std::string& dir) {
  std::uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) total += static_cast<std::uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

// Seeded clustered vectors: 100 centres uniform in [-1, 1]^d, points normal around them (sd 0.1).
io::VectorSet synthetic(std::size_t n, std::size_t dim, std::uint64_t seed) {
  Rng rng(seed);
  constexpr std::size_t kCentres = 100;
  std::vector<float> centres(kCentres * dim);
  for (float& c : centres) c = rng.uniform_float(-1.0f, 1.0f);
  io::VectorSet v;
  v.count = n;
  v.dimension = dim;
  v.data.resize(n * dim);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = rng.uniform(kCentres);
    for (std::size_t j = 0; j < dim; ++j) {
      v.data[i * dim + j] = centres[c * dim + j] + static_cast<float>(rng.normal(0.0, 0.1));
    }
  }
  return v;
}

struct Args {
  std::string fashion;
  std::size_t synthetic_n = 0;
  std::size_t dim = 0;
  std::size_t n = 0;  // fashion: how many base vectors (0: all 60,000)
  std::uint64_t seed = 42;
  std::string work = "/var/tmp/shoal-footprint";
  std::size_t writes = 1000;
  std::size_t queries = 1000;
  bool keep = false;
  bool open_phase = false;
  bool hnswlib_only = false;
  std::uint32_t ef_construction = 200;  // --ef-construction
  bool no_anchor = false;                // --no-anchor: skip raw hnswlib's build after the ingest
  bool open_only = false;                // --open-only: the open phase ends at the first answer
};

// The base vectors and the queries the command names.
void load(const Args& a, io::VectorSet* base, io::VectorSet* queries) {
  if (!a.fashion.empty()) {
    if (base != nullptr) {
      auto b = io::read_vectors(a.fashion + "/train-images-idx3-ubyte.gz", io::VectorFormat::kIdx, a.n);
      if (!b.ok()) {
        std::fprintf(stderr, "bench_footprint: %s\n", b.status().to_string().c_str());
        std::exit(1);
      }
      *base = std::move(*b);
    }
    auto q = io::read_vectors(a.fashion + "/t10k-images-idx3-ubyte.gz", io::VectorFormat::kIdx, a.queries);
    if (!q.ok()) {
      std::fprintf(stderr, "bench_footprint: %s\n", q.status().to_string().c_str());
      std::exit(1);
    }
    *queries = std::move(*q);
    return;
  }
  if (base != nullptr) *base = synthetic(a.synthetic_n, a.dim, a.seed);
  *queries = synthetic(a.queries, a.dim, a.seed + 1);
}

std::string id_of(std::size_t i) { return "r" + std::to_string(i); }

// The ingest's anchor: raw hnswlib building the same vectors with Shoal's default M and
// efConstruction on as many threads as Shoal's batch inserts use (NodeOptions::build_threads).
constexpr unsigned kAnchorThreads = 2;
double hnswlib_build_s(const io::VectorSet& base, std::uint32_t ef_construction) {
  const MonoTime t0 = now_mono();
  bench::HnswlibAnchor anchor(base.dimension, base.count, 16, ef_construction);
  anchor.build(base.row(0), base.count, kAnchorThreads);
  return seconds_since(t0);
}

void build(const Args& a, const std::string& dir) {
  io::VectorSet base, queries;
  load(a, &base, &queries);
  std::filesystem::remove_all(dir);
  shoal_error err{};
  shoal_db* db = nullptr;
  int rc = shoal_open(dir.c_str(), nullptr, &db, &err);
  if (rc != SHOAL_OK) die("shoal_open", rc, err);
  shoal_collection_options opts{};
  opts.struct_size = sizeof opts;
  opts.ef_construction = a.ef_construction;
  rc = shoal_collection_create_ex(db, kCollection, static_cast<std::uint32_t>(base.dimension), SHOAL_METRIC_L2, &opts,
                                  &err);
  if (rc != SHOAL_OK) die("shoal_collection_create_ex", rc, err);
  const MonoTime t0 = now_mono();
  constexpr std::size_t kBatch = 1000;
  std::vector<std::string> ids;
  std::vector<const char*> id_ptrs;
  std::vector<std::size_t> id_lens;
  for (std::size_t at = 0; at < base.count; at += kBatch) {
    const std::size_t n = std::min(kBatch, base.count - at);
    ids.clear();
    id_ptrs.clear();
    id_lens.clear();
    for (std::size_t i = 0; i < n; ++i) ids.push_back(id_of(at + i));
    for (const auto& s : ids) {
      id_ptrs.push_back(s.c_str());
      id_lens.push_back(s.size());
    }
    rc = shoal_upsert_batch(db, kCollection, n, id_ptrs.data(), id_lens.data(), base.row(at), base.dimension, nullptr,
                            nullptr, &err);
    if (rc != SHOAL_OK) die("shoal_upsert_batch", rc, err);
  }
  const double ingest_s = seconds_since(t0);
  const MonoTime tc = now_mono();
  shoal_close(db);
  const double close_s = seconds_since(tc);
  const double hnswlib_s = a.no_anchor ? std::nan("") : hnswlib_build_s(base, a.ef_construction);
  const double shoal_s = ingest_s + close_s;  // until every vector is indexed and the snapshot written
  std::printf("built %zu x %zu: ingest %.1f s, close after ingest %.2f s; raw hnswlib build (%u threads) %.1f s: "
              "(ingest + close) / hnswlib %.2fx\n",
              base.count, base.dimension, ingest_s, close_s, kAnchorThreads, hnswlib_s, shoal_s / hnswlib_s);
  std::printf("footprint build n=%zu dim=%zu ef_construction=%u ingest_s=%.2f close_after_ingest_s=%.3f "
              "hnswlib_build_s=%.2f ingest_over_hnswlib=%.3f\n",
              base.count, base.dimension, a.ef_construction, ingest_s, close_s, hnswlib_s, shoal_s / hnswlib_s);
  std::ofstream(dir + ".built") << base.count << " " << base.dimension << " " << a.ef_construction << "\n";
}

int open_phase(const Args& a, const std::string& dir) {
  io::VectorSet queries;
  load(a, nullptr, &queries);
  const std::size_t dim = queries.dimension;
  const ProcMem before = proc_mem();
  shoal_error err{};
  shoal_db* db = nullptr;
  shoal_hit hits[10];
  std::size_t count = 0;
  const MonoTime t0 = now_mono();
  int rc = shoal_open(dir.c_str(), nullptr, &db, &err);
  if (rc != SHOAL_OK) die("shoal_open", rc, err);
  rc = shoal_search(db, kCollection, queries.row(0), dim, 10, 0, nullptr, hits, 10, &count, &err);
  if (rc != SHOAL_OK) die("shoal_search", rc, err);
  const double first_s = seconds_since(t0);
  const ProcMem opened = proc_mem();
  if (a.open_only) {  // for profiling open: no queries, no writes, no close (the process ends)
    std::printf("open: first answer after %.3f s\n", first_s);
    std::fflush(stdout);
    std::_Exit(0);
  }
  for (std::size_t q = 0; q < queries.count; ++q) {
    rc = shoal_search(db, kCollection, queries.row(q), dim, 10, 0, nullptr, hits, 10, &count, &err);
    if (rc != SHOAL_OK) die("shoal_search", rc, err);
  }
  const ProcMem steady = proc_mem();
  shoal_collection_desc desc{};
  rc = shoal_collection_info(db, kCollection, &desc, sizeof desc, &err);
  if (rc != SHOAL_OK) die("shoal_collection_info", rc, err);
  const double n = static_cast<double>(desc.count);
  const std::uint64_t index_bytes = desc.index_bytes;
  const double float_bytes = n * static_cast<double>(dim) * 4.0;
  const double reference = static_cast<double>(desc.index_bytes) + float_bytes;
  const double anon = steady.anon - before.anon;
  const double total = steady.rss - before.rss;
  std::printf("open %.0f x %zu: first answer after %.3f s\n", n, dim, first_s);
  std::printf("steady after %zu queries: anonymous %.1f MiB, file-backed %.1f MiB, total %.1f MiB "
              "(index %.1f MiB + floats %.1f MiB = reference %.1f MiB; total/reference %.2f)\n",
              queries.count, mib(anon), mib(steady.file - before.file), mib(total), mib(static_cast<double>(desc.index_bytes)),
              mib(float_bytes), mib(reference), total / reference);
  std::printf("peak during open %.1f MiB, steady %.1f MiB: %.2fx\n", mib(opened.hwm), mib(steady.rss),
              opened.hwm / steady.rss);
  // Single durable writes, then close.
  std::vector<std::string> ids;
  for (std::size_t w = 0; w < a.writes; ++w) {
    const std::string id = "w" + std::to_string(w);
    rc = shoal_upsert(db, kCollection, id.data(), id.size(), queries.row(w % queries.count), dim, nullptr, nullptr, &err);
    if (rc != SHOAL_OK) die("shoal_upsert", rc, err);
  }
  const MonoTime tc = now_mono();
  shoal_close(db);
  const double close_s = seconds_since(tc);
  std::printf("close after %zu writes: %.3f s\n", a.writes, close_s);
  // Reopen: the snapshot with the W written labels replayed on it.
  const MonoTime tr = now_mono();
  rc = shoal_open(dir.c_str(), nullptr, &db, &err);
  if (rc != SHOAL_OK) die("shoal_open", rc, err);
  rc = shoal_search(db, kCollection, queries.row(0), dim, 10, 0, nullptr, hits, 10, &count, &err);
  if (rc != SHOAL_OK) die("shoal_search", rc, err);
  const double reopen_s = seconds_since(tr);
  rc = shoal_collection_info(db, kCollection, &desc, sizeof desc, &err);
  if (rc != SHOAL_OK) die("shoal_collection_info", rc, err);
  const double reopen_index = static_cast<double>(desc.index_bytes);
  std::printf("reopen after %zu writes: first answer after %.3f s, index %.1f MiB (was %.1f MiB)\n", a.writes,
              reopen_s, mib(reopen_index), mib(static_cast<double>(index_bytes)));
  // The same number of writes as one durable batch, then close at once: the index queue still
  // holds them (single durable writes leave the index thread time to keep up; a batch does not).
  {
    std::vector<std::string> bids;
    std::vector<const char*> bptrs;
    std::vector<std::size_t> blens;
    std::vector<float> bvecs;
    for (std::size_t w = 0; w < a.writes; ++w) {
      bids.push_back("bw" + std::to_string(w));
      const float* row = queries.row(w % queries.count);
      bvecs.insert(bvecs.end(), row, row + dim);
    }
    for (const auto& s : bids) {
      bptrs.push_back(s.c_str());
      blens.push_back(s.size());
    }
    rc = shoal_upsert_batch(db, kCollection, bids.size(), bptrs.data(), blens.data(), bvecs.data(), dim, nullptr,
                            nullptr, &err);
    if (rc != SHOAL_OK) die("shoal_upsert_batch", rc, err);
  }
  const MonoTime tb = now_mono();
  shoal_close(db);
  const double close_batch_s = seconds_since(tb);
  std::printf("close right after a batch of %zu writes: %.3f s\n", a.writes, close_batch_s);
  const MonoTime tb2 = now_mono();
  rc = shoal_open(dir.c_str(), nullptr, &db, &err);
  if (rc != SHOAL_OK) die("shoal_open", rc, err);
  rc = shoal_search(db, kCollection, queries.row(0), dim, 10, 0, nullptr, hits, 10, &count, &err);
  if (rc != SHOAL_OK) die("shoal_search", rc, err);
  const double reopen_batch_s = seconds_since(tb2);
  shoal_close(db);
  std::printf("reopen after that batch: first answer after %.3f s\n", reopen_batch_s);
  std::printf("footprint batch_close writes=%zu close_after_batch_s=%.3f reopen_after_batch_s=%.3f\n", a.writes,
              close_batch_s, reopen_batch_s);
  std::printf("footprint open n=%.0f dim=%zu first_answer_s=%.3f anon_mib=%.1f file_mib=%.1f total_mib=%.1f "
              "index_mib=%.1f total_over_reference=%.3f peak_mib=%.1f steady_mib=%.1f peak_over_steady=%.3f "
              "close_after_writes_s=%.3f writes=%zu reopen_first_answer_s=%.3f reopen_index_mib=%.1f\n",
              n, dim, first_s, mib(anon), mib(steady.file - before.file), mib(total),
              mib(static_cast<double>(desc.index_bytes)), total / reference, mib(opened.hwm), mib(steady.rss),
              opened.hwm / steady.rss, close_s, a.writes, reopen_s, mib(reopen_index));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_footprint: %s needs a value\n", s.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (s == "--fashion") a.fashion = next();
    else if (s == "--synthetic") a.synthetic_n = std::stoull(next());
    else if (s == "--dim") a.dim = std::stoull(next());
    else if (s == "--n") a.n = std::stoull(next());
    else if (s == "--seed") a.seed = std::stoull(next());
    else if (s == "--work") a.work = next();
    else if (s == "--writes") a.writes = std::stoull(next());
    else if (s == "--queries") a.queries = std::stoull(next());
    else if (s == "--keep") a.keep = true;
    else if (s == "--open-phase") a.open_phase = true;
    else if (s == "--hnswlib-only") a.hnswlib_only = true;
    else if (s == "--no-anchor") a.no_anchor = true;
    else if (s == "--open-only") a.open_only = true;
    else if (s == "--ef-construction") a.ef_construction = static_cast<std::uint32_t>(std::stoul(next()));
    else {
      std::fprintf(stderr,
                   "usage: bench_footprint (--fashion DIR [--n N] | --synthetic N --dim D [--seed S]) [--work DIR] "
                   "[--writes W] [--queries Q] [--keep] [--hnswlib-only] [--ef-construction E] [--no-anchor] [--open-only]\n");
      return 2;
    }
  }
  if (a.fashion.empty() && (a.synthetic_n == 0 || a.dim == 0)) {
    std::fprintf(stderr, "bench_footprint: give --fashion DIR or --synthetic N --dim D\n");
    return 2;
  }
  const std::string dir = a.work + "/node";
  if (a.open_phase) return open_phase(a, dir);
  if (a.hnswlib_only) {  // the anchor alone, for a directory built earlier with --keep
    io::VectorSet base, queries;
    load(a, &base, &queries);
    const double s = hnswlib_build_s(base, a.ef_construction);
    std::printf("footprint hnswlib n=%zu dim=%zu threads=%u hnswlib_build_s=%.2f\n", base.count, base.dimension,
                kAnchorThreads, s);
    return 0;
  }
  std::filesystem::create_directories(a.work);
  if (!a.keep || !std::filesystem::exists(dir + ".built")) build(a, dir);

  // The open phase in a fresh process: this program again.
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) args.emplace_back(argv[i]);
  args.emplace_back("--open-phase");
  std::vector<char*> cargv;
  for (auto& s : args) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execv("/proc/self/exe", cargv.data());
    std::_Exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "bench_footprint: the open phase failed\n");
    return 1;
  }
  std::size_t n = 0, dim = 0;
  std::uint32_t built_ef = 200;  // a .built file from before --ef-construction has two fields
  std::ifstream(dir + ".built") >> n >> dim >> built_ef;
  const double raw = static_cast<double>(n) * static_cast<double>(dim) * 4.0;
  const double disk = static_cast<double>(dir_bytes(dir));
  std::printf("directory built with efConstruction %u\n", built_ef);
  std::printf("disk: data directory %.1f MiB, raw vectors (%zu x %zu x 4) %.1f MiB: %.2fx\n", mib(disk), n, dim,
              mib(raw), disk / raw);
  for (const char* sub : {"store", "snapshots"}) {
    const std::string p = dir + "/" + sub;
    if (std::filesystem::exists(p)) std::printf("  %s: %.1f MiB\n", sub, mib(static_cast<double>(dir_bytes(p))));
  }
  for (const auto& e : std::filesystem::directory_iterator(dir + "/snapshots")) {
    std::printf("    %s: %.1f MiB\n", e.path().filename().c_str(),
                mib(static_cast<double>(std::filesystem::file_size(e.path()))));
  }
  std::printf("footprint disk n=%zu dim=%zu dir_mib=%.1f raw_mib=%.1f disk_over_raw=%.3f\n", n, dim, mib(disk), mib(raw),
              disk / raw);
  return 0;
}
