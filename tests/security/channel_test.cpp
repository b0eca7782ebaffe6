// Proves the sealed channel (security/channel.hpp): messages round trip and the frames are a
// deterministic function of the keys and inputs; every single-bit flip of 100 recorded frames is
// rejected and closes the session, with no payload handed out; replayed, reordered, dropped and
// truncated frames close it too, as does a stream ending without a close frame; after an error
// every call fails; a hostile length is refused before any allocation; rekeying happens on the
// message budget and on the time budget, and both sides stay in step.
#include <catch2/catch.hpp>

#include "mesh_fixture.hpp"
#include "security/channel.hpp"

using namespace shoal;
using namespace shoal::security;
using namespace shoal::security::test;

namespace {

// A pair of channels over fixed keys (as after a Split()).
std::pair<Channel, Channel> channel_pair(std::uint64_t seed, ChannelLimits limits = {}) {
  Rng rng(seed);
  auto k1 = random_bytes<32>(rng);
  auto k2 = random_bytes<32>(rng);
  noise::TransportKeys a;
  noise::TransportKeys b;
  a.send.initialize_key(k1);
  b.receive.initialize_key(k1);
  a.receive.initialize_key(k2);
  b.send.initialize_key(k2);
  return {Channel(std::move(a), limits, MonoTime()), Channel(std::move(b), limits, MonoTime())};
}

// 100 frames of random payloads (0..300 bytes), each as its own byte string.
std::vector<std::vector<std::uint8_t>> record_frames(Channel& sender, Rng& rng) {
  std::vector<std::vector<std::uint8_t>> frames;
  for (int i = 0; i < 100; ++i) {
    std::vector<std::uint8_t> f;
    REQUIRE(sender.seal(random_vector(rng, rng.uniform(301)), MonoTime(), f).ok());
    frames.push_back(std::move(f));
  }
  return frames;
}

}  // namespace

TEST_CASE("sealed messages round trip and frames are deterministic given the inputs", "[security][channel]") {
  auto [a, b] = channel_pair(1);
  auto [a2, b2] = channel_pair(1);
  Rng rng(5);
  for (int i = 0; i < 50; ++i) {
    auto msg = random_vector(rng, rng.uniform(2000));
    std::vector<std::uint8_t> w1;
    std::vector<std::uint8_t> w2;
    REQUIRE(a.seal(msg, MonoTime(), w1).ok());
    REQUIRE(a2.seal(msg, MonoTime(), w2).ok());
    CHECK(w1 == w2);
    CHECK(w1.size() == msg.size() + kFrameOverheadBytes);
    REQUIRE(b.receive(w1).ok());
    std::vector<std::uint8_t> got;
    REQUIRE(*b.next(got));
    CHECK(got == msg);
  }
  std::vector<std::uint8_t> close;
  REQUIRE(a.seal_close(close).ok());
  REQUIRE(b.receive(close).ok());
  std::vector<std::uint8_t> got;
  CHECK_FALSE(*b.next(got));
  CHECK(b.peer_closed());
  CHECK(b.end_of_stream().ok());
}

TEST_CASE("every bit flip of 100 recorded frames is rejected and closes the session", "[security][channel][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  auto [a, b_template_unused] = channel_pair(seed);
  (void)b_template_unused;
  const auto frames = record_frames(a, rng);
  std::size_t flips = 0;
  std::size_t decoded = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const auto& frame = frames[i];
    for (std::size_t bit = 0; bit < frame.size() * 8; ++bit) {
      // A fresh receiver that has accepted frames 0..i-1, then sees frame i with one bit flipped.
      // Re-opening the prefix for every bit would cost O(n^2): instead set the receive nonce.
      noise::TransportKeys keys;
      Rng krng(seed);
      auto k1 = random_bytes<32>(krng);
      keys.receive.initialize_key(k1);
      keys.receive.set_nonce(i);
      Channel b(std::move(keys), {}, MonoTime());
      auto copy = frame;
      copy[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
      ++flips;
      Status st = b.receive(copy);
      std::vector<std::uint8_t> got;
      if (st.ok()) {
        auto r = b.next(got);
        if (r.ok()) {
          // A flip in the length can leave the frame incomplete: then the stream ends truncated.
          if (*r) ++decoded;
          CHECK_FALSE(b.end_of_stream().ok());
        }
      }
      CHECK(b.is_closed());
      CHECK(b.receive(frame).detail() == Detail::kSessionClosed);
    }
    // The unflipped frame opens at that position.
    noise::TransportKeys keys;
    Rng krng(seed);
    auto k1 = random_bytes<32>(krng);
    keys.receive.initialize_key(k1);
    keys.receive.set_nonce(i);
    Channel b(std::move(keys), {}, MonoTime());
    auto copy = frame;
    auto r = b.open_frame(copy);
    CHECK(r.ok());
  }
  CHECK(decoded == 0);
  CHECK(flips > 100 * 8 * kFrameOverheadBytes);
}

TEST_CASE("replayed, reordered, dropped and truncated frames close the session", "[security][channel]") {
  Rng rng(9);
  auto [a, b] = channel_pair(2);
  const auto frames = record_frames(a, rng);
  std::vector<std::uint8_t> got;
  auto feed = [&](Channel& c, const std::vector<std::uint8_t>& f) -> Status {
    SHOAL_RETURN_IF_ERROR(c.receive(f));
    auto r = c.next(got);
    if (!r.ok()) return std::move(r).take_status();
    return *r ? ok_status() : Status(Detail::kTruncated, "incomplete");
  };
  REQUIRE(feed(b, frames[0]).ok());
  REQUIRE(feed(b, frames[1]).ok());
  SECTION("replay") {
    CHECK(feed(b, frames[1]).detail() == Detail::kDecryptFailed);
  }
  SECTION("reorder") {
    CHECK(feed(b, frames[3]).detail() == Detail::kDecryptFailed);
  }
  SECTION("a frame cut short, with its length corrected") {
    auto f = frames[2];
    f.resize(f.size() - 1);
    put_frame_length(f.data(), static_cast<std::uint32_t>(f.size() - 4));
    CHECK(feed(b, f).detail() == Detail::kDecryptFailed);
  }
  SECTION("a frame cut short, then the stream ends") {
    auto f = frames[2];
    f.resize(f.size() - 3);
    REQUIRE(b.receive(f).ok());
    CHECK_FALSE(*b.next(got));
    CHECK(b.end_of_stream().detail() == Detail::kTruncated);
  }
  SECTION("the stream ends at a frame boundary without a close frame") {
    CHECK(b.end_of_stream().detail() == Detail::kTruncated);
  }
  SECTION("data after the close frame") {
    Channel& sender = a;
    std::vector<std::uint8_t> w;
    // frames 0..99 were sealed; b has opened 0 and 1. Feed 2..99, then close, then junk.
    for (std::size_t i = 2; i < frames.size(); ++i) REQUIRE(feed(b, frames[i]).ok());
    REQUIRE(sender.seal_close(w).ok());
    REQUIRE(b.receive(w).ok());
    CHECK_FALSE(*b.next(got));
    CHECK(b.receive(frames[0]).ok());
    CHECK(b.next(got).status().detail() == Detail::kMalformed);
  }
  CHECK(b.is_closed());
  CHECK(b.receive(frames[2]).detail() == Detail::kSessionClosed);
  CHECK(b.next(got).status().detail() == Detail::kSessionClosed);
  std::vector<std::uint8_t> out;
  CHECK(b.seal(got, MonoTime(), out).detail() == Detail::kSessionClosed);
}

TEST_CASE("a hostile frame length is refused before any allocation", "[security][channel]") {
  auto [a, b] = channel_pair(3);
  (void)a;
  std::vector<std::uint8_t> header = {0xff, 0xff, 0xff, 0xf0};
  CHECK(b.receive(header).detail() == Detail::kTooLarge);
  CHECK(b.is_closed());
  auto [a2, b2] = channel_pair(3);
  (void)a2;
  std::vector<std::uint8_t> tiny = {0, 0, 0, 5, 1, 2, 3, 4, 5};
  CHECK(b2.receive(tiny).detail() == Detail::kMalformed);
  // The sender refuses payloads above the cap without closing.
  auto [a3, b3] = channel_pair(3, ChannelLimits{1000, 1u << 16, Duration::seconds(600)});
  (void)b3;
  std::vector<std::uint8_t> big(1001);
  std::vector<std::uint8_t> out;
  CHECK(a3.seal(big, MonoTime(), out).detail() == Detail::kTooLarge);
  CHECK_FALSE(a3.is_closed());
}

TEST_CASE("channels rekey on the message budget and on the time budget, in step", "[security][channel]") {
  ChannelLimits limits;
  limits.rekey_after_messages = 10;
  limits.rekey_after = Duration::seconds(60);
  auto [a, b] = channel_pair(4, limits);
  Rng rng(4);
  MonoTime now;
  std::vector<std::uint8_t> got;
  for (int i = 0; i < 95; ++i) {
    std::vector<std::uint8_t> w;
    auto msg = random_vector(rng, 64);
    REQUIRE(a.seal(msg, now, w).ok());
    REQUIRE(b.receive(w).ok());
    REQUIRE(*b.next(got));
    CHECK(got == msg);
  }
  CHECK(a.rekeys_sent() == 9);
  CHECK(b.rekeys_received() == 9);
  // Time budget: 61 s later the next frame rekeys, whatever the count.
  now += Duration::seconds(61);
  std::vector<std::uint8_t> w;
  REQUIRE(a.seal(got, now, w).ok());
  REQUIRE(b.receive(w).ok());
  REQUIRE(*b.next(got));
  CHECK(a.rekeys_sent() == 10);
  CHECK(b.rekeys_received() == 10);
  // A frame sealed under the old key after a rekey no longer opens: the key really changed.
  auto [a2, b2] = channel_pair(4, limits);
  (void)b2;
  std::vector<std::uint8_t> stale;
  for (int i = 0; i < 10; ++i) REQUIRE(a2.seal(got, MonoTime(), stale).ok());
  std::vector<std::uint8_t> w2;
  REQUIRE(a.seal(got, now, w2).ok());
  CHECK(w2 != std::vector<std::uint8_t>(stale.end() - static_cast<std::ptrdiff_t>(w2.size()), stale.end()));
}
