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
    if (r) post_turn();
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
  kj::EventLoop loop;
  // Bound: for the loop's life. Floating: while a thread is inside an Enter.
  std::optional<kj::WaitScope> scope;
};

#pragma GCC diagnostic pop

KjLoop::KjLoop(asio::io_context& io, Binding binding)
    : impl_(std::make_unique<Impl>(io, binding == Binding::kBound)) {}
KjLoop::~KjLoop() = default;

asio::io_context& KjLoop::io() noexcept { return impl_->io; }
kj::Timer& KjLoop::timer() noexcept { return impl_->timer; }
kj::WaitScope& KjLoop::wait_scope() noexcept { return *impl_->scope; }

KjLoop::Enter::Enter(KjLoop& loop) : loop_(loop) { loop_.impl_->scope.emplace(loop_.impl_->loop); }
KjLoop::Enter::~Enter() { loop_.impl_->scope.reset(); }

void KjLoop::poll() {
  impl_->arm();
  if (impl_->io.stopped()) impl_->io.restart();
  impl_->io.poll();
  impl_->arm();
}

bool KjLoop::run_one_until(std::chrono::steady_clock::time_point deadline) {
  impl_->arm();
  if (impl_->io.stopped()) impl_->io.restart();
  const bool ran = impl_->io.run_one_until(deadline) != 0;
  impl_->arm();
  return ran;
}

bool KjLoop::run_while(const std::function<bool()>& done, std::size_t max_turns) {
  // A timer registered outside a kj turn (by the caller, before running) is armed here.
  impl_->arm();
  for (std::size_t turns = 0; !done() && turns < max_turns; ++turns) {
    if (impl_->io.stopped()) impl_->io.restart();
    if (impl_->io.run_one() == 0) {
      impl_->io.restart();
      impl_->arm();
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
