// Proves that a commit acknowledged by LmdbStore survives kill -9 and that batches are atomic: a
// child process (fork) commits numbered batches of 1..7 records plus a delta entry and a meta
// counter, writing each batch number to a pipe only after commit() returned OK; the parent
// SIGKILLs it after a random delay (seeded Rng; the seed is printed), reopens the directory and
// checks that it opens cleanly, that every acknowledged batch is fully present, and that no batch
// is partially present (counts match the last committed batch exactly). The kill moment is set
// by progress, not by the clock: the parent waits for a seeded number of acknowledgements (0 for
// one cycle in ten: a kill during open), then a seeded delay of up to 2 ms so the kill lands
// anywhere inside the next commit; a fast build and a sanitizer build that is 50x slower get the
// same number of commits, and no assertion depends on timing. The map starts at 1 MiB so growth
// also happens under the knife. SHOAL_KILL9_CYCLES overrides the cycle count
// (scripts/kill9-store.sh runs more).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>

#include "common/random.hpp"
#include "store_fixtures.hpp"

using namespace shoal;
using namespace shoal::store;
using namespace shoal::store::testing;

namespace {

int entries_in(std::uint64_t batch) { return 1 + static_cast<int>(batch % 7); }
std::string record_key(std::uint64_t batch, int j) {
  return encode_u64_be(batch) + encode_u64_be(static_cast<std::uint64_t>(j));
}
std::string record_value(std::uint64_t batch, int j) {
  std::string v(700 + static_cast<std::size_t>(j) * 100, static_cast<char>('a' + batch % 26));
  v.replace(0, 16, record_key(batch, j));
  return v;
}

// The child: commits batches forever, acknowledging each on `ack_fd`. Never returns.
[[noreturn]] void writer_child(const LmdbStoreOptions& o, int ack_fd) {
  auto opened = LmdbStore::open(o);
  if (!opened.ok()) ::_exit(10);
  LmdbStore& s = **opened;
  std::uint64_t last = 0;
  {
    auto r = s.begin_read();
    if (!r.ok()) ::_exit(11);
    auto v = (*r)->get(Table::kMeta, "last_batch");
    if (v.ok()) last = decode_u64_be(*v).value_or(0);
  }
  for (std::uint64_t b = last + 1;; ++b) {
    auto w = s.begin_write();
    if (!w.ok()) ::_exit(12);
    for (int j = 0; j < entries_in(b); ++j) {
      if (!(*w)->put(Table::kRecords, record_key(b, j), record_value(b, j)).ok()) ::_exit(13);
    }
    if (!(*w)->put(Table::kDeltas, encode_u64_be(b), "delta").ok()) ::_exit(14);
    if (!(*w)->put(Table::kMeta, "last_batch", encode_u64_be(b)).ok()) ::_exit(15);
    if (!(*w)->commit().ok()) ::_exit(16);
    w->reset();
    if (::write(ack_fd, &b, sizeof b) != static_cast<ssize_t>(sizeof b)) ::_exit(17);
    // A read transaction now and then, so some kills leave a stale reader slot.
    if (b % 3 == 0) {
      auto r = s.begin_read();
      if (!r.ok()) ::_exit(18);
      if (!(*r)->count(Table::kRecords).ok()) ::_exit(19);
    }
  }
}

}  // namespace

TEST_CASE("every acknowledged batch survives kill -9 and no batch is partial",
          "[store][lmdb][kill9]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  int cycles = 60;
  if (const char* env = std::getenv("SHOAL_KILL9_CYCLES")) cycles = std::atoi(env);
  Rng rng(seed);
  TempDir dir;
  LmdbStoreOptions o;
  o.path = dir.sub("env");
  o.map_size_initial_bytes = std::uint64_t{1} << 20;

  std::uint64_t committed = 0;  // the last batch found after the previous cycle
  std::uint64_t total_acked = 0;
  std::uint64_t total_waited = 0;
  int killed_before_any_ack = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    INFO("cycle " << cycle);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      writer_child(o, fds[1]);
    }
    ::close(fds[1]);
    // The kill point: after `wait_acks` acknowledgements (each 8-byte write is atomic on a pipe;
    // a read that ends early means the child died, which waitpid below reports), then a delay.
    const std::uint64_t wait_acks = rng.bernoulli(0.1) ? 0 : 1 + rng.uniform(30);
    const std::uint64_t delay_us = rng.uniform(2000);
    INFO("kill after " << wait_acks << " acknowledgements and " << delay_us << " us");
    std::uint64_t acked = 0;
    std::uint64_t b = 0;
    for (std::uint64_t seen = 0; seen < wait_acks; ++seen) {
      if (::read(fds[0], &b, sizeof b) != static_cast<ssize_t>(sizeof b)) break;
      acked = b;
    }
    timespec ts{0, static_cast<long>(delay_us * 1000)};
    ::nanosleep(&ts, nullptr);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    INFO("child exit status " << status);
    REQUIRE(WIFSIGNALED(status));  // the child only ends by our kill; an exit is a failure code
    while (::read(fds[0], &b, sizeof b) == static_cast<ssize_t>(sizeof b)) acked = b;
    ::close(fds[0]);
    if (wait_acks > 0) REQUIRE(acked >= committed + wait_acks);
    total_waited += wait_acks;
    if (acked == 0) ++killed_before_any_ack;

    auto opened = LmdbStore::open(o);
    INFO(opened.status().to_string());
    REQUIRE(opened.ok());
    auto r = must_read(**opened);
    std::uint64_t last = 0;
    auto lv = r->get(Table::kMeta, "last_batch");
    if (lv.ok()) last = decode_u64_be(*lv).value();
    INFO("acknowledged " << acked << ", committed " << last);
    REQUIRE(last >= committed);
    REQUIRE(last >= acked);
    // At most one batch committed but not acknowledged (killed between commit and write).
    if (acked != 0) REQUIRE(last <= acked + 1);
    std::uint64_t expected_records = 0;
    for (std::uint64_t i = 1; i <= last; ++i) expected_records += entries_in(i);
    REQUIRE(r->count(Table::kRecords).value() == expected_records);
    REQUIRE(r->count(Table::kDeltas).value() == last);
    // Full content of the batches that are new since the previous cycle.
    for (std::uint64_t i = committed + 1; i <= last; ++i) {
      for (int j = 0; j < entries_in(i); ++j) {
        REQUIRE(r->get(Table::kRecords, record_key(i, j)).value_or(std::string()) ==
                record_value(i, j));
      }
    }
    total_acked += acked > committed ? acked - committed : 0;
    committed = last;
  }
  // Every acknowledgement waited for is a batch that survived.
  CHECK(committed >= total_waited);
  // Printed so a run shows how much was exercised.
  WARN("kill9: " << cycles << " cycles, " << committed << " batches committed, " << total_acked
                 << " acknowledged, " << killed_before_any_ack
                 << " kills before the first ack, seed " << seed);
}
