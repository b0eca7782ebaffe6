// tests/transport/local_link_test.cpp: the local link's per-call fast paths (D55) keep every value
// exact. It proves, over a real Unix socket (listen_local / connect_local on one KjLoop) with
// capnp-rpc on top, that:
// - a query of 784 floats crosses whole (put_floats and floats_of copy the list's bytes at once);
// - an answer larger than its size hint crosses as a multi-segment message (the plain framer
//   writes the segment table and segments straight into the frame) and arrives exact;
// - a float list a sender laid out as a struct list (which capnp readers must accept) is still
//   read element by element, with the same values;
// - with hold_finishes on (the client library during a search, D63), the Finish for an answer
//   is sealed but not sent until the next call, which carries it in front, while a call itself is
//   never held (a tiny one is answered); turning it off sends what is held.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <capnp/message.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "transport/kj_loop.hpp"
#include "transport/local_link.hpp"
#include "transport/node_api.capnp.h"
#include "transport/node_api_convert.hpp"

namespace shoal::transport {
namespace {

// kj's Server classes have no virtual destructor; this one is owned by kj::heap as itself.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
// Answers a search with one hit per query element, the element as its distance, and a size hint
// of one word, so that the answer cannot fit its first segment.
class EchoNode final : public api::Node::Server {
 public:
  kj::Promise<void> search(SearchContext ctx) override {
    const std::vector<float> query = floats_of(ctx.getParams().getQuery());
    auto hits = ctx.getResults(capnp::MessageSize{1, 0}).initHits(static_cast<unsigned>(query.size()));
    for (unsigned i = 0; i < query.size(); ++i) {
      const std::string id = "hit-" + std::to_string(i);
      hits[i].setId(data_of(id));
      hits[i].setDistance(query[i]);
    }
    return kj::READY_NOW;
  }
};
#pragma GCC diagnostic pop

std::string socket_path() { return "/tmp/shoal-local-link-test-" + std::to_string(::getpid()) + ".sock"; }

}  // namespace

TEST_CASE("a search's query and a multi-segment answer cross a local link exact", "[transport]") {
  boost::asio::io_context io;
  KjLoop loop(io);
  std::vector<kj::Own<LocalLink>> served;
  auto listener = listen_local(
      loop, socket_path(), LinkOptions{}, LocalListenerOptions{},
      [&](kj::Own<LocalLink> link) {
        link->serve(kj::heap<EchoNode>());
        served.push_back(kj::mv(link));
      },
      nullptr);
  REQUIRE(listener.ok());
  auto client = loop.run_until(connect_local(loop, socket_path(), LinkOptions{}));
  auto node = client->peer_bootstrap().castAs<api::Node>();

  std::vector<float> query(784);
  for (std::size_t i = 0; i < query.size(); ++i) query[i] = static_cast<float>(i) * 0.25f - 17.5f;
  query[3] = -0.0f;
  query[5] = std::nanf("");
  auto req = node.searchRequest(search_params_size(2, query.size(), 0));
  req.setCollection("fm");
  put_floats(req.initQuery(static_cast<unsigned>(query.size())), query);
  // The request as built holds the values exactly.
  const std::vector<float> built = floats_of(req.asReader().getQuery());
  REQUIRE(built.size() == query.size());
  CHECK(std::memcmp(built.data(), query.data(), query.size() * sizeof(float)) == 0);

  auto response = loop.run_until(req.send());
  auto hits = response.getHits();
  REQUIRE(hits.size() == query.size());
  bool exact = true;
  for (unsigned i = 0; i < hits.size(); ++i) {
    const float d = hits[i].getDistance();
    exact = exact && std::memcmp(&d, &query[i], sizeof d) == 0 &&
            bytes_of(hits[i].getId()) == "hit-" + std::to_string(i);
  }
  CHECK(exact);
  CHECK(std::signbit(hits[3].getDistance()));
  CHECK(std::isnan(hits[5].getDistance()));
  node = nullptr;
  client = nullptr;
  served.clear();
}

TEST_CASE("a float list laid out as a struct list is read element by element with the same values",
          "[transport]") {
  // An upgraded list: each element a struct whose first data word holds the float, as capnp
  // writes List(Float32) when a schema later turned the element into a struct.
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<api::Value>();
  auto orphan = message.getOrphanage().newOrphan<capnp::List<api::Hit>>(3);
  auto as_structs = orphan.get();
  const float values[3] = {1.5f, -2.25f, 1e30f};
  for (unsigned i = 0; i < 3; ++i) {
    // Hit's first data field (distance) sits at offset 0 of its data section: the float.
    capnp::AnyStruct::Builder any(as_structs[i]);
    std::memcpy(any.getDataSection().begin(), &values[i], sizeof(float));
  }
  // Value.vector is the struct's first pointer.
  capnp::toAny(root).getPointerSection()[0].adopt(kj::mv(orphan));
  const std::vector<float> read = floats_of(root.asReader().getVector());
  REQUIRE(read.size() == 3);
  CHECK(read[0] == values[0]);
  CHECK(read[1] == values[1]);
  CHECK(read[2] == values[2]);
}

}  // namespace shoal::transport

namespace shoal::transport {

TEST_CASE("a held Finish goes out with the next call or when holding stops, and no call is held", "[transport]") {
  boost::asio::io_context io;
  KjLoop loop(io);
  std::vector<kj::Own<LocalLink>> served;
  auto listener = listen_local(
      loop, socket_path(), LinkOptions{}, LocalListenerOptions{},
      [&](kj::Own<LocalLink> link) {
        link->serve(kj::heap<EchoNode>());
        served.push_back(kj::mv(link));
      },
      nullptr);
  REQUIRE(listener.ok());
  auto client = loop.run_until(connect_local(loop, socket_path(), LinkOptions{}));
  auto node = client->peer_bootstrap().castAs<api::Node>();
  const std::vector<float> query{1.5f, -2.0f};
  auto search = [&] {
    auto req = node.searchRequest();
    put_floats(req.initQuery(static_cast<unsigned>(query.size())), query);
    return loop.run_until(req.send()).getHits().size();
  };
  // Runs what the dropped answer queued (capnp-rpc writes its Finish on a later kj turn).
  auto settle = [&] {
    for (int i = 0; i < 4; ++i) loop.poll();
  };

  // Without holding, dropping an answer sends its Finish: one more message and its bytes out.
  REQUIRE(search() == query.size());
  settle();
  LinkStats before = client->stats();
  REQUIRE(search() == query.size());
  settle();
  LinkStats after = client->stats();
  const std::uint64_t call_bytes_with_finish = after.bytes_out - before.bytes_out;
  CHECK(after.messages_out - before.messages_out == 2);  // the call and its Finish

  // Holding: the Finish is sealed (counted) but no byte of it leaves.
  client->hold_finishes(true);
  before = client->stats();
  REQUIRE(search() == query.size());
  settle();
  after = client->stats();
  CHECK(after.messages_out - before.messages_out == 2);
  const std::uint64_t call_bytes = after.bytes_out - before.bytes_out;
  CHECK(call_bytes < call_bytes_with_finish);
  const std::uint64_t finish_bytes = call_bytes_with_finish - call_bytes;

  // The next call carries the held Finish in front of it (same bytes as unheld, in one send),
  // and is answered: a call is never held, even a tiny one (stats, which EchoNode does not
  // implement, so its answer is an error).
  before = client->stats();
  bool stats_answered = false;
  loop.run_until(node.statsRequest().send().then([&](auto&&) { stats_answered = true; },
                                                  [&](kj::Exception&&) { stats_answered = true; }));
  CHECK(stats_answered);
  settle();
  after = client->stats();
  CHECK(after.bytes_out - before.bytes_out > finish_bytes);
  const std::uint64_t served_in = served.at(0)->stats().messages_in;

  // Turning holding off sends the stats call's held Finish at once.
  before = client->stats();
  client->hold_finishes(false);
  after = client->stats();
  CHECK(after.bytes_out - before.bytes_out == finish_bytes);
  CHECK(after.messages_out == before.messages_out);
  // The server gets it: one more message.
  loop.run_while([&] { return served.at(0)->stats().messages_in == served_in + 1; }, 1000);
  CHECK(served.at(0)->stats().messages_in == served_in + 1);
  node = nullptr;
  client = nullptr;
  served.clear();
}

}  // namespace shoal::transport
