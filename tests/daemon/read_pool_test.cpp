// Proves the local API's read pool (node/daemon/read_pool.hpp): every accepted job runs exactly
// once; with every thread busy, exactly queue_max jobs wait and the next submit is refused (the
// caller answers "busy"), deterministically (the running jobs are held on a latch, no timing);
// once the threads are free the waiting jobs run; the destructor drops jobs that never ran.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <condition_variable>
#include <mutex>

#include "node/daemon/read_pool.hpp"

namespace {

// Blocks the jobs that wait on it until open() is called; counts how many started.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open_ = false;
  int started = 0;
  void wait() {
    std::unique_lock lock(mu);
    ++started;
    cv.notify_all();
    cv.wait(lock, [&] { return open_; });
  }
  void wait_started(int n) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return started >= n; });
  }
  void open() {
    std::lock_guard lock(mu);
    open_ = true;
    cv.notify_all();
  }
};

}  // namespace

TEST_CASE("the read pool runs every accepted job once", "[daemon][read_pool]") {
  std::atomic<int> ran{0};
  {
    shoal::daemon::ReadPool pool(2, 1000);
    for (int i = 0; i < 500; ++i) REQUIRE(pool.submit([&] { ++ran; }));
    // A job submitted last runs after nothing else is queued on its thread; wait for all.
    Gate gate;
    REQUIRE(pool.submit([&] { gate.wait(); }));
    REQUIRE(pool.submit([&] { gate.wait(); }));
    gate.wait_started(2);
    gate.open();
  }
  CHECK(ran == 500);
}

TEST_CASE("a full read queue refuses the next job and accepts again once drained", "[daemon][read_pool]") {
  Gate gate;
  std::atomic<int> ran{0};
  shoal::daemon::ReadPool pool(2, 3);
  CHECK(pool.threads() == 2);
  CHECK(pool.queue_max() == 3);
  // Both threads hold a job on the gate: nothing is dequeued until it opens.
  REQUIRE(pool.submit([&] { gate.wait(); }));
  REQUIRE(pool.submit([&] { gate.wait(); }));
  gate.wait_started(2);
  CHECK(pool.submit([&] { ++ran; }));
  CHECK(pool.submit([&] { ++ran; }));
  CHECK(pool.submit([&] { ++ran; }));
  CHECK_FALSE(pool.submit([&] { ++ran; }));  // the fourth waiting job: busy
  gate.open();
  // Drained: once the three queued jobs ran, the pool accepts again (waiting on the count, not
  // on time: right after the gate opens the queue may still hold all three).
  while (ran.load() < 3) std::this_thread::yield();
  Gate done;
  REQUIRE(pool.submit([&] { done.wait(); }));
  REQUIRE(pool.submit([&] { done.wait(); }));
  done.wait_started(2);
  CHECK(ran == 3);
  done.open();
}

TEST_CASE("threads 0 means the hardware's concurrency, at least one", "[daemon][read_pool]") {
  shoal::daemon::ReadPool pool(0, 1);
  CHECK(pool.threads() >= 1);
}
