// node/daemon/read_pool.hpp: a fixed set of threads with a bounded queue, on which the local API
// serves its read calls (search, get, list, info, stats) off the loop thread (docs/decisions.md,
// D33), so that concurrent clients' searches run in parallel under SharedNode's shared lock.
//
// Thread rules: submit() from any thread; the jobs run on the pool's threads, each once, in
// submission order per thread. The destructor stops the threads after the jobs they are running
// and destroys the jobs still queued without running them (on the destroying thread).
// Invariant: at most `queue_max` jobs wait; submit() beyond that refuses and the caller answers
// "busy" (kOverloaded), so a flood of clients costs bounded memory and the loop never blocks.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace shoal::daemon {

class ReadPool {
 public:
  // `threads` 0: std::thread::hardware_concurrency() (at least 1).
  ReadPool(std::size_t threads, std::size_t queue_max) : queue_max_(queue_max) {
    if (threads == 0) threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
    threads_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~ReadPool() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      dropped.swap(queue_);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  // Queues `job`; false (and `job` is destroyed here) when queue_max jobs already wait.
  [[nodiscard]] bool submit(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      if (stop_ || queue_.size() >= queue_max_) return false;
      queue_.push_back(std::move(job));
    }
    cv_.notify_one();
    return true;
  }

  std::size_t threads() const noexcept { return threads_.size(); }
  std::size_t queue_max() const noexcept { return queue_max_; }

 private:
  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }

  const std::size_t queue_max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace shoal::daemon
