// Proves crash safety of the whole node: a writer process (kill9_writer) is killed with SIGKILL
// at random moments, 50 times; after each kill the data directory reopens cleanly, every
// acknowledged batch is fully present (but the records whose delete was acknowledged), no batch
// is partially present, and the index holds every present record's vector. The kill moments come
// from the seed (printed) and are set by progress, not by the clock: the parent waits until the
// writer has acknowledged a seeded number of batches (0 to 3; 0 kills it while it opens), then a
// seeded delay of up to 20 ms so the kill lands anywhere in what follows. A Release build and a
// sanitizer build many times slower make the same progress, and no assertion depends on timing.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <time.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "common/random.hpp"
#include "node/runtime/data_dir.hpp"
#include "tests/node/kill9_common.hpp"

extern char** environ;

using namespace shoal;

namespace {

// Runs the writer until it has printed `acks` acknowledgements ("a <batch>" lines, or with
// `threads` writer threads "m <thread> <n>" lines), waits `delay_us` more, kills it with SIGKILL
// and returns everything it printed. The writer ends only by this kill: an exit of its own (an
// error) fails the test.
// With `closing`, the writer runs its closing mode (a quick close and a reopen every 3 batches).
std::string run_and_kill(const std::string& dir, std::uint64_t seed, std::uint64_t first,
                         std::uint64_t acks, std::uint64_t delay_us, unsigned threads = 0, bool closing = false) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  const std::string s = std::to_string(seed), f = std::to_string(first),
                    th = closing ? std::string("close") : std::to_string(threads);
  std::string prog = SHOAL_KILL9_WRITER;
  char* argv[] = {prog.data(), const_cast<char*>(dir.c_str()), const_cast<char*>(s.c_str()),
                  const_cast<char*>(f.c_str()), threads == 0 && !closing ? nullptr : const_cast<char*>(th.c_str()),
                  nullptr};
  const char mark = threads == 0 ? 'a' : 'm';
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, prog.c_str(), &fa, nullptr, argv, environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  auto acks_in = [mark](const std::string& text) {
    std::uint64_t n = 0;
    for (std::size_t pos = 0; pos < text.size();) {
      const std::size_t eol = text.find('\n', pos);
      if (eol == std::string::npos) break;  // a line still being written
      n += text[pos] == mark ? 1 : 0;
      pos = eol + 1;
    }
    return n;
  };
  // Blocking reads: progress, not time, decides. A writer that exits early gives end of file.
  while (acks_in(out) < acks) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  timespec ts{0, static_cast<long>(delay_us * 1000)};
  ::nanosleep(&ts, nullptr);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  for (;;) {  // what it printed before it died
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  INFO("writer output: " << out);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
  REQUIRE(acks_in(out) >= acks);
  return out;
}

}  // namespace

TEST_CASE("a node killed with SIGKILL at random points loses no acknowledged write", "[node][kill9]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("shoal-kill9-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  std::set<std::uint64_t> acked, deleted;
  std::uint64_t first = 0;
  std::uint64_t waited = 0;
  for (int cycle = 0; cycle < 50; ++cycle) {
    INFO("cycle " << cycle);
    const std::uint64_t acks = rng.uniform(4);
    const std::uint64_t delay_us = rng.uniform(20000);
    INFO("killed after " << acks << " acknowledgements and " << delay_us << " us");
    const std::string out = run_and_kill(dir, seed, first, acks, delay_us);
    waited += acks;
    std::istringstream lines(out);
    char kind = 0;
    std::uint64_t b = 0;
    while (lines >> kind >> b) (kind == 'a' ? acked : deleted).insert(b);

    auto d = node::open_data_dir(dir, {});
    REQUIRE(d.ok());
    auto& n = (*d)->node();
    // Every batch the writer may have started in this cycle, acknowledged or not.
    const std::uint64_t last = acked.empty() ? first + 1 : *acked.rbegin() + 2;
    for (std::uint64_t batch = first; batch <= last; ++batch) {
      const std::uint64_t size = kill9::batch_size(seed, batch);
      std::uint64_t present = 0;
      for (std::uint64_t i = 1; i < size; ++i) present += n.get("k", kill9::record_id(batch, i)).ok() ? 1 : 0;
      const bool first_present = n.get("k", kill9::record_id(batch, 0)).ok();
      INFO("batch " << batch << " size " << size << " present " << present);
      if (acked.count(batch) != 0) {
        CHECK(present == size - 1);
        // Record 0's delete may have committed without its acknowledgement reaching us; an
        // acknowledged delete must have taken effect.
        if (deleted.count(batch) != 0) CHECK_FALSE(first_present);
      } else {
        CHECK((present == 0 || present == size - 1));  // all or nothing
      }
      if (size > 1 && present > 0) {
        // The index holds the record's vector: a filter selecting only it takes the exact path.
        auto f = node::parse_filter("batch=" + std::to_string(batch) + ",i=1");
        REQUIRE(f.ok());
        auto hits = n.search("k", kill9::vector_of(batch, 1), node::SearchOptions{1, 64, *f});
        REQUIRE(hits.ok());
        REQUIRE(hits->size() == 1);
        CHECK(hits->at(0).id == kill9::record_id(batch, 1));
        CHECK(hits->at(0).distance == 0.0f);
      }
    }
    // Next cycle starts past anything this one could have written.
    first = last + 1;
  }
  // Every acknowledgement waited for was checked above; the seed decides how many there were.
  CHECK(acked.size() >= waited);
  std::filesystem::remove_all(dir);
}

// Issue 16: with group commit, writers on 8 threads share commits; each must still be durable
// before its acknowledgement. The writer runs 8 threads of single upserts and is killed by
// progress (after a seeded number of acknowledgements, 0 to 299, then a seeded delay of up to
// 20 ms), 12 times. After each kill: every acknowledged record is present, with its vector, and
// the index answers for it; each thread's records form a prefix (a thread starts a write only
// after the previous one was acknowledged, so at most one unacknowledged write per thread may
// have landed).
TEST_CASE("a node with 8 writer threads killed with SIGKILL loses no acknowledged write", "[node][kill9]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  constexpr unsigned kThreads = 8;
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("shoal-kill9-mt-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  std::uint64_t checked = 0, waited = 0;
  for (std::uint64_t cycle = 0; cycle < 12; ++cycle) {
    INFO("cycle " << cycle);
    const std::uint64_t acks = rng.uniform(300);
    const std::uint64_t delay_us = rng.uniform(20000);
    INFO("killed after " << acks << " acknowledgements and " << delay_us << " us");
    const std::string out = run_and_kill(dir, seed, cycle, acks, delay_us, kThreads);
    waited += acks;
    std::map<std::uint64_t, std::set<std::uint64_t>> acked;  // thread -> acknowledged n
    std::istringstream lines(out);
    char kind = 0;
    std::uint64_t t = 0, n = 0;
    while (lines >> kind >> t >> n) {
      REQUIRE(kind == 'm');
      acked[t].insert(n);
    }
    auto d = node::open_data_dir(dir, {});
    REQUIRE(d.ok());
    auto& node = (*d)->node();
    for (std::uint64_t th = 0; th < kThreads; ++th) {
      const auto& mine = acked[th];
      const std::uint64_t upto = mine.empty() ? 0 : *mine.rbegin() + 1;  // acknowledged: [0, upto)
      INFO("thread " << th << " acknowledged " << mine.size() << " writes");
      CHECK(mine.size() == upto);  // acknowledgements come in order per thread
      for (std::uint64_t i = 0; i < upto; ++i) {
        const std::string id = kill9::thread_record_id(cycle, th, i);
        INFO(id);
        REQUIRE(node.get("k", id).ok());
        auto f = node::parse_filter("first=" + std::to_string(cycle) + ",t=" + std::to_string(th) +
                                    ",n=" + std::to_string(i));
        REQUIRE(f.ok());
        auto hits = node.search("k", kill9::vector_of(cycle * 64 + th, i), node::SearchOptions{1, 64, *f});
        REQUIRE(hits.ok());
        REQUIRE(hits->size() == 1);
        CHECK(hits->at(0).id == id);
        CHECK(hits->at(0).distance == 0.0f);
        ++checked;
      }
      // The one write in flight at the kill may or may not have landed; nothing after it.
      CHECK_FALSE(node.get("k", kill9::thread_record_id(cycle, th, upto + 1)).ok());
    }
  }
  // Every acknowledgement waited for was checked above; the seed decides how many there were.
  CHECK(checked >= waited);
  std::filesystem::remove_all(dir);
}

// D65: a close that keeps the snapshot leaves the index queue behind (the writes are committed
// and named in index_dirty). The writer closes and reopens every 3 batches with its index thread
// paused, so each close leaves those batches queued, and is killed by progress (after a seeded 0
// to 11 acknowledged batches, then up to 20 ms: while writing, closing, or replaying at open), 20
// times. After each kill: every acknowledged batch is whole, no batch is partly there, and an
// unfiltered search by each present record's distinct vector finds it at distance 0 (the graph
// holds it); once any close has returned, the index came from the snapshot (its catch-up matched
// the store), not from a rebuild.
TEST_CASE("a node killed after quick closes that left the index queue behind loses nothing", "[node][kill9]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("shoal-kill9-close-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  std::set<std::uint64_t> acked;
  std::uint64_t first = 0, waited = 0, closes = 0;
  for (int cycle = 0; cycle < 20; ++cycle) {
    INFO("cycle " << cycle);
    const std::uint64_t acks = rng.uniform(12);
    const std::uint64_t delay_us = rng.uniform(20000);
    INFO("killed after " << acks << " acknowledgements and " << delay_us << " us");
    const std::string out = run_and_kill(dir, seed, first, acks, delay_us, 0, true);
    waited += acks;
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("a ", 0) == 0) acked.insert(std::stoull(line.substr(2)));
      if (line == "c") ++closes;
    }
    auto d = node::open_data_dir(dir, {});
    REQUIRE(d.ok());
    auto& n = (*d)->node();
    if (closes > 0) CHECK(n.open_report().index_source.at("k") == "snapshot");
    const std::uint64_t last = acked.empty() ? first + 1 : *acked.rbegin() + 2;
    for (std::uint64_t batch = first; batch <= last; ++batch) {
      const std::uint64_t size = kill9::batch_size(seed, batch);
      std::uint64_t present = 0;
      for (std::uint64_t i = 0; i < size; ++i) present += n.get("k", kill9::record_id(batch, i)).ok() ? 1 : 0;
      INFO("batch " << batch << " size " << size << " present " << present);
      if (acked.count(batch) != 0) {
        CHECK(present == size);
      } else {
        CHECK((present == 0 || present == size));  // all or nothing
      }
      for (std::uint64_t i = 0; i < present; ++i) {
        node::SearchOptions o;
        o.k = 1;
        o.ef = 256;
        auto hits = n.search("k", kill9::distinct_vector(batch, i), o);
        REQUIRE(hits.ok());
        REQUIRE(hits->size() == 1);
        CHECK(hits->at(0).id == kill9::record_id(batch, i));
        CHECK(hits->at(0).distance == 0.0f);
      }
    }
    first = last + 1;
  }
  CHECK(acked.size() >= waited);
  INFO("closes " << closes);
  std::filesystem::remove_all(dir);
}
