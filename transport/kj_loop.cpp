// transport/kj_loop.cpp: the kj::EventPort that lets a Boost.Asio io_context drive kj (see
// kj_loop.hpp).
#include "transport/kj_loop.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>

namespace shoal::transport {
namespace asio = boost::asio;

// kj::EventPort has no virtual destructor; Impl is final and destroyed as itself.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"

struct KjLoop::Impl final : public kj::EventPort {
  Impl(asio::io_context& io_in, bool bound)
      : io(io_in), timer(clock_now()), asio_timer(io_in), loop(*this) {
    if (bound) scope.emplace(loop);
  }

  ~Impl() {
    *alive = false;
    asio_timer.cancel();
  }

  static kj::TimePoint clock_now() { return kj::systemPreciseMonotonicClock().now(); }

  // Only a WaitScope wait (tests' run_until does not use it) blocks here.
  bool wait() override {
    io.run_one();
    return false;
  }
  bool poll() override {
    io.poll();
    return false;
  }
  void setRunnable(bool r) override {
    runnable = r;
    // While a driver below runs the io_context on this thread, it runs kj's turn itself as soon
    // as the current handler returns: posting one would cost an Asio round (an epoll_wait and,
    // on this thread, nothing else) for every kj event, several per RPC call.
    if (r && driving == 0) post_turn();
  }
  void wake() const override {
    asio::post(io, [] {});
  }

  void post_turn() {
    if (turn_posted) return;
    turn_posted = true;
    asio::post(io, [this, a = alive] {
      if (!*a) return;
      turn_posted = false;
      turn();
    });
  }

  // Fires due kj timers, runs every queued kj event, and arms the Asio timer for the next kj one.
  void turn() {
    timer.advanceTo(clock_now());
    if (runnable) loop.run();
    arm();
  }

  void arm() {
    KJ_IF_MAYBE(next, timer.nextEvent()) {
      if (armed_for && *armed_for == *next) return;
      armed_for = *next;
      auto ns = (*next - clock_now()) / kj::NANOSECONDS;
      if (ns < 0) ns = 0;
      asio_timer.expires_after(std::chrono::nanoseconds(ns));
      asio_timer.async_wait([this, a = alive](const boost::system::error_code& ec) {
        if (!*a || ec == asio::error::operation_aborted) return;
        armed_for.reset();
        turn();
      });
    }
  }

  asio::io_context& io;
  kj::TimerImpl timer;
  asio::steady_timer asio_timer;
  std::optional<kj::TimePoint> armed_for;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  bool runnable = false;
  bool turn_posted = false;
  int driving = 0;  // > 0 inside run_one_until, poll or run_while (Driving)
  kj::EventLoop loop;
  // Bound: for the loop's life. Floating: while a thread is inside an Enter.
  std::optional<kj::WaitScope> scope;
};

#pragma GCC diagnostic pop

// Marks the loop as driven by this thread for a scope: kj events are run inline (Impl::
// setRunnable posts no turn). On leaving, events still queued get a posted turn, so whoever runs
// the io_context next (io.run(), another driver) runs them as before.
class KjLoop::Driving {
 public:
  explicit Driving(KjLoop::Impl& impl) : impl_(impl) { ++impl_.driving; }
  ~Driving() {
    if (--impl_.driving == 0 && impl_.runnable) impl_.post_turn();
  }
  Driving(const Driving&) = delete;
  Driving& operator=(const Driving&) = delete;
  // Runs kj's queued events now if there are any; true when it did.
  bool run_kj() {
    if (!impl_.runnable) return false;
    impl_.turn();
    return true;
  }

 private:
  KjLoop::Impl& impl_;
};

KjLoop::KjLoop(asio::io_context& io, Binding binding)
    : impl_(std::make_unique<Impl>(io, binding == Binding::kBound)) {}
KjLoop::~KjLoop() = default;

asio::io_context& KjLoop::io() noexcept { return impl_->io; }
kj::Timer& KjLoop::timer() noexcept { return impl_->timer; }
kj::WaitScope& KjLoop::wait_scope() noexcept { return *impl_->scope; }

KjLoop::Enter::Enter(KjLoop& loop) : loop_(loop) { loop_.impl_->scope.emplace(loop_.impl_->loop); }
KjLoop::Enter::~Enter() { loop_.impl_->scope.reset(); }

void KjLoop::poll() {
  Driving driving(*impl_);
  driving.run_kj();
  impl_->arm();
  if (impl_->io.stopped()) impl_->io.restart();
  impl_->io.poll();
  driving.run_kj();
  impl_->arm();
}

void KjLoop::run_now(kj::FunctionParam<void()> fn) {
  Driving driving(*impl_);
  fn();
  driving.run_kj();
  impl_->arm();
}

bool KjLoop::run_one_until(std::chrono::steady_clock::time_point deadline) {
  Driving driving(*impl_);
  // kj's queued events count as the one handler, and cost no trip through the io_context.
  if (driving.run_kj()) return true;
  impl_->arm();
  if (impl_->io.stopped()) impl_->io.restart();
  const bool ran = impl_->io.run_one_until(deadline) != 0;
  // What the handler made ready (a read's answer) runs now, not after another Asio round.
  driving.run_kj();
  impl_->arm();
  return ran;
}

bool KjLoop::run_while(const std::function<bool()>& done, std::size_t max_turns) {
  Driving driving(*impl_);
  // A timer registered outside a kj turn (by the caller, before running) is armed here.
  impl_->arm();
  for (std::size_t turns = 0; !done() && turns < max_turns; ++turns) {
    if (driving.run_kj()) {
      impl_->arm();
      continue;
    }
    if (impl_->io.stopped()) impl_->io.restart();
    if (impl_->io.run_one() == 0) {
      impl_->io.restart();
      impl_->arm();
      if (driving.run_kj()) continue;
      if (impl_->io.run_one() == 0) break;  // nothing left that could change anything
    }
    impl_->arm();
  }
  return done();
}

void KjLoop::kick() { impl_->post_turn(); }

void KjLoop::post(std::function<void()> fn) {
  asio::post(impl_->io, [a = impl_->alive, fn = std::move(fn)] {
    if (*a) fn();
  });
}

}  // namespace shoal::transport
