// transport/kj_loop.hpp: Cap'n Proto's event loop (kj) run on a Boost.Asio io_context.
//
// Role: one thread, one loop (docs/architecture.md, "Transport"). Asio owns every socket and
// timer; capnp-rpc needs a kj::EventLoop. A kj::EventPort adapter lets the io_context drive it:
// when kj has work, setRunnable(true) posts a handler that runs the kj loop, except while a
// thread is inside run_one_until, poll or run_while, which run kj's events inline between Asio
// handlers (no Asio round, so no epoll_wait, per kj event: D46); wake() (kj events
// from other threads) posts an empty handler; kj timers are kept by a kj::TimerImpl that one Asio
// steady_timer advances. Code on the loop thread uses kj promises and `timer()` freely; nothing
// blocks.
// Ownership: construct on the thread that runs `io`, keep it alive while any kj object made on
// this loop exists (declare it before them), destroy it on the same thread.
// Thread rules: every method on the loop's thread, except post(). A loop made with kFloating has no
// thread of its own: a thread uses it only inside a KjLoop::Enter scope, one thread at a time (the
// owner serialises them, e.g. with a mutex), and kj objects of the loop are made, used and
// destroyed only inside such scopes (the client library's calls run the loop on the app's own
// thread this way, D41). Known gap: events queued on kj's
// cross-thread executor (kj::Executor::executeAsync, cross-thread fulfillers) are not run by this
// port, so they never complete; hand results to the loop with post() instead (the local API's
// read pool does, D38).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

#include <kj/async.h>
#include <kj/debug.h>
#include <kj/function.h>
#include <kj/timer.h>

namespace boost::asio {
class io_context;
}

namespace shoal::transport {

class KjLoop {
 public:
  // kBound: the constructing thread is the loop's for its whole life. kFloating: see Enter.
  enum class Binding { kBound, kFloating };
  explicit KjLoop(boost::asio::io_context& io, Binding binding = Binding::kBound);
  ~KjLoop();
  KjLoop(const KjLoop&) = delete;
  KjLoop& operator=(const KjLoop&) = delete;

  boost::asio::io_context& io() noexcept;
  // kj timers (timeouts, backoff, keepalive) on the io_context's clock.
  kj::Timer& timer() noexcept;
  kj::WaitScope& wait_scope() noexcept;
  // For tests: runs the io_context until `promise` settles (or throws its exception).
  template <typename T>
  T run_until(kj::Promise<T>&& promise);
  // Runs the io_context until `done()` is true or `max_turns` handlers have run; returns done().
  bool run_while(const std::function<bool()>& done, std::size_t max_turns);
  // Schedules a kj turn (fires due timers, arms the next one): call after registering a kj timer
  // from outside a kj callback (from an Asio handler or another thread's post).
  void kick();
  // Runs `fn` on the loop's thread soon. The one method safe from any thread.
  void post(std::function<void()> fn);
  // Runs one Asio handler (kj turns included), waiting until `deadline` at most; false when none
  // ran. For a floating loop's current thread (inside Enter).
  bool run_one_until(std::chrono::steady_clock::time_point deadline);
  // Runs every handler that is ready now, without waiting (inside Enter for a floating loop).
  void poll();
  // Runs `fn` on this thread as the loop's driver, then the kj events it queued, at once: kj events
  // queued outside a driver would cost a posted Asio turn (D55). On the loop's thread (inside Enter
  // for a floating loop).
  void run_now(kj::FunctionParam<void()> fn);

  // Makes a floating loop the calling thread's current kj loop for the scope's life. Precondition:
  // no other thread is inside an Enter of this loop, and this thread is in no kj loop's scope.
  class Enter {
   public:
    explicit Enter(KjLoop& loop);
    ~Enter();
    Enter(const Enter&) = delete;
    Enter& operator=(const Enter&) = delete;

   private:
    KjLoop& loop_;
  };

 private:
  struct Impl;
  class Driving;
  std::unique_ptr<Impl> impl_;
};

template <typename T>
T KjLoop::run_until(kj::Promise<T>&& promise) {
  bool settled = false;
  kj::Maybe<kj::Exception> error;
  kj::Maybe<T> value;
  auto p = promise.then([&](T v) { value = kj::mv(v); settled = true; },
                        [&](kj::Exception&& e) { error = kj::mv(e); settled = true; }).eagerlyEvaluate(nullptr);
  run_while([&] { return settled; }, std::size_t(-1));
  KJ_IF_MAYBE(e, error) { kj::throwFatalException(kj::mv(*e)); }
  KJ_IF_MAYBE(v, value) { return kj::mv(*v); }
  KJ_FAIL_REQUIRE("promise did not settle");
}

template <>
inline void KjLoop::run_until(kj::Promise<void>&& promise) {
  bool settled = false;
  kj::Maybe<kj::Exception> error;
  auto p = promise.then([&]() { settled = true; },
                        [&](kj::Exception&& e) { error = kj::mv(e); settled = true; }).eagerlyEvaluate(nullptr);
  run_while([&] { return settled; }, std::size_t(-1));
  KJ_IF_MAYBE(e, error) { kj::throwFatalException(kj::mv(*e)); }
}

}  // namespace shoal::transport
