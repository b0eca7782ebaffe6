// sim/event_queue.hpp: the simulator's one event queue, ordered by (time, insertion sequence).
//
// Role: events scheduled for the same virtual time run in the order they were scheduled, so the
// order never depends on heap internals, pointer values or payload contents. That order, with
// one seeded Rng, is what makes a seed reproduce a run.
// Thread rules: one simulation thread. Ownership: the queue owns the queued payloads.
#pragma once

#include <cstdint>
#include <queue>
#include <utility>
#include <vector>

#include "common/assert.hpp"
#include "common/time.hpp"

namespace shoal::sim {

template <typename Payload>
class EventQueue {
 public:
  struct Item {
    MonoTime at;
    std::uint64_t seq = 0;
    Payload payload;
  };

  // Schedules `payload` at `at`; equal times keep insertion order.
  void push(MonoTime at, Payload payload) { heap_.push(Item{at, next_seq_++, std::move(payload)}); }
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  MonoTime next_time() const {
    SHOAL_ASSERT(!heap_.empty());
    return heap_.top().at;
  }
  // Removes and returns the earliest item. Precondition: !empty().
  Item pop() {
    SHOAL_ASSERT(!heap_.empty());
    // Moving the payload out of top() is safe: the moved-from item keeps its time and
    // sequence, which is all that pop() compares, and it is destroyed by pop().
    Item item = std::move(const_cast<Item&>(heap_.top()));  // NOLINT: pop() follows at once
    heap_.pop();
    return item;
  }

 private:
  struct Later {
    bool operator()(const Item& x, const Item& y) const noexcept {
      return x.at != y.at ? x.at > y.at : x.seq > y.seq;
    }
  };
  std::priority_queue<Item, std::vector<Item>, Later> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace shoal::sim
