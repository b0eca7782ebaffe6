// Proves that RwLock prefers writers: once a writer waits, no new reader gets in (so a stream of
// overlapping readers cannot starve it), and the writer gets the lock as soon as the readers
// already inside leave. No timing: each step waits for an observable state, not for a duration.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "common/rw_lock.hpp"

using shoal::RwLock;

TEST_CASE("a waiting writer shuts out new readers and gets the lock next", "[common][rwlock]") {
  RwLock lock;
  lock.lock_shared();  // a reader inside
  std::atomic<bool> writer_in{false};
  std::thread writer([&] {
    std::unique_lock g(lock);
    writer_in = true;
  });
  // While no writer waits, a second reader gets in; once the writer waits, none does. Poll for
  // that moment (it comes as soon as the writer thread blocks in lock()).
  for (;;) {
    if (!lock.try_lock_shared()) break;
    lock.unlock_shared();
    std::this_thread::yield();
  }
  CHECK_FALSE(writer_in.load());
  CHECK_FALSE(lock.try_lock_shared());  // still shut out: the writer is waiting
  lock.unlock_shared();                 // the last reader leaves
  writer.join();
  CHECK(writer_in.load());
  CHECK(lock.try_lock_shared());  // and readers come back after it
  lock.unlock_shared();
}

TEST_CASE("readers share the lock; a writer excludes them", "[common][rwlock]") {
  RwLock lock;
  lock.lock_shared();
  CHECK(lock.try_lock_shared());
  CHECK_FALSE(lock.try_lock());
  lock.unlock_shared();
  lock.unlock_shared();
  CHECK(lock.try_lock());
  CHECK_FALSE(lock.try_lock_shared());
  lock.unlock();
}
