// Proves the simulator's building blocks behave as docs/sim.md says: the event queue orders by
// (time, insertion), and the network model's partitions, heal, loss-free delivery and bounded
// queues do what the checkers rely on. Fixed seeds.
#include <catch2/catch.hpp>

#include "sim/event_queue.hpp"
#include "sim/network.hpp"

using namespace shoal;
using namespace shoal::sim;

TEST_CASE("events at one time run in insertion order, earlier times first", "[sim]") {
  EventQueue<int> q;
  q.push(MonoTime::from_ns(5), 1);
  q.push(MonoTime::from_ns(3), 2);
  q.push(MonoTime::from_ns(5), 3);
  q.push(MonoTime::from_ns(3), 4);
  std::vector<int> order;
  while (!q.empty()) order.push_back(q.pop().payload);
  CHECK(order == std::vector<int>{2, 4, 1, 3});
}

TEST_CASE("a loss-free network delivers each message once, within the link's delay", "[sim]") {
  Network net({0, 0, 1}, NetworkFaults{}, Rng(1));
  for (int i = 0; i < 100; ++i) {
    LinkFate hot = net.send(0, 1, MonoTime());
    REQUIRE(hot.deliveries.size() == 1);
    CHECK(hot.deliveries[0] >= MonoTime() + Duration::millis(1));
    CHECK(hot.deliveries[0] <= MonoTime() + Duration::micros(7500));
    LinkFate warm = net.send(0, 2, MonoTime());
    REQUIRE(warm.deliveries.size() == 1);
    CHECK(warm.deliveries[0] >= MonoTime() + Duration::millis(10));
    CHECK(net.deliver(0, 1));
    CHECK(net.deliver(0, 2));
  }
  CHECK(net.in_flight() == 0);
}

TEST_CASE("partition shapes cut the links they name, and heal reopens everything", "[sim]") {
  Network net({0, 0, 1, 1, 2}, NetworkFaults{0.3, 0.5, 0.2}, Rng(2));
  for (int round = 0; round < 20; ++round) {
    for (int s = 0; s < 5; ++s) {
      const auto shape = static_cast<PartitionShape>(s);
      net.partition(shape);
      std::size_t cut = 0, detected = 0;
      for (std::uint32_t a = 0; a < 5; ++a) {
        CHECK_FALSE(net.cut(a, a));
        for (std::uint32_t b = 0; b < 5; ++b) {
          cut += net.cut(a, b) ? 1 : 0;
          detected += net.detected_cut(a, b) ? 1 : 0;
        }
      }
      CHECK(cut > 0);
      if (shape == PartitionShape::kSilentOneWay) {
        CHECK(detected == 0);
        CHECK(cut == 4);
      } else if (shape == PartitionShape::kOneWay) {
        CHECK(detected == 4);
      } else if (shape == PartitionShape::kIsolateOne) {
        CHECK(detected == 8);
      }
      if (shape != PartitionShape::kOneWay && shape != PartitionShape::kSilentOneWay) {
        for (std::uint32_t a = 0; a < 5; ++a) {
          for (std::uint32_t b = 0; b < 5; ++b) CHECK(net.cut(a, b) == net.cut(b, a));
        }
      }
    }
  }
  net.heal();
  for (std::uint32_t a = 0; a < 5; ++a) {
    for (std::uint32_t b = 0; b < 5; ++b) CHECK_FALSE(net.cut(a, b));
  }
  // Healed: no loss or duplication is left.
  for (int i = 0; i < 200; ++i) CHECK(net.send(1, 3, MonoTime()).deliveries.size() == 1);
}

TEST_CASE("a link holds a bounded number of undelivered messages", "[sim]") {
  Network net({0, 0}, NetworkFaults{}, Rng(3));
  std::size_t sent = 0;
  for (std::uint32_t i = 0; i < kMaxInFlightPerLink + 50; ++i) sent += net.send(0, 1, MonoTime()).deliveries.size();
  CHECK(sent == kMaxInFlightPerLink);
  CHECK(net.queue_drops() == 50);
  CHECK(net.max_in_flight() == kMaxInFlightPerLink);
}
