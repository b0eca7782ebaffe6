// tests/sink/sink_s3_test.cpp: the sink service on the S3 object store, against a
// signature-checking moto_server that tests/sink/run_s3_tests.sh starts (it exits 77, skipped,
// when moto_server or boto3 is absent). Proves the same contract as on LMDB through real signed
// HTTP: uploads are acknowledged with objects the bucket holds; cold search equals exact search
// over the node's records; a delete after upload leaves cold search and, after compaction, every
// object in the bucket; a sink reopened on the bucket has the same state.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "sink/s3_object_store.hpp"
#include "sink_fixture.hpp"

using namespace shoal;
using namespace shoal::sink_test;

namespace {

constexpr const char* kColl = "photos";

std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') FAIL(std::string(name) + " is not set: run this binary through tests/sink/run_s3_tests.sh");
  return v;
}

std::unique_ptr<sink::S3ObjectStore> bucket(const std::string& name) {
  sink::S3Options o;
  o.endpoint = env("SHOAL_S3_ENDPOINT");
  o.bucket = name;
  o.access_key_id = env("SHOAL_S3_KEY_ID");
  o.secret_access_key = env("SHOAL_S3_SECRET");
  auto s = sink::S3ObjectStore::create(o);
  REQUIRE(s.ok());
  Status st = (*s)->create_bucket();
  INFO(st.to_string());
  REQUIRE(st.ok());
  return std::move(*s);
}

}  // namespace

TEST_CASE("the sink on S3: acks, cold search == exact search, delete then compaction, reopen", "[sink][s3]") {
  const std::uint64_t seed = Catch::rngSeed() == 0 ? 42 : Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  TestNode n(1);
  fill(*n, kColl, 8, node::Metric::kL2, 150, rng);
  auto store = bucket("shoal-sink-service");
  std::string victim_payload;
  {
    auto sink = sink::SinkService::open(*store);
    REQUIRE(sink.ok());
    for (const auto& seg : segments_of(*n, kColl, 40)) {
      auto ack = (*sink)->upload_segment(seg, 1);
      REQUIRE(ack.ok());
      auto back = store->get(ack->key);
      REQUIRE(back.ok());
      CHECK(*back == seg);
    }
    auto state = n->crdt_state_for_testing(kColl);
    REQUIRE(state.ok());
    const crdt::Entry* w = state->winner("r0100");
    victim_payload.assign(w->payload.begin(), w->payload.end());
    REQUIRE((*sink)->apply_delta(kColl, delete_delta(*n, kColl, "r0100"), 2).ok());
    std::vector<float> q(8, 0.1f);
    for (std::uint32_t k : {1u, 10u, 200u}) {
      auto cold = (*sink)->cold_search(kColl, q, k, node::Metric::kL2);
      REQUIRE(cold.ok());
      const Exact exact = exact_search(*n, kColl, q, k, node::Metric::kL2);
      REQUIRE(cold->hits.size() == exact.ids.size());
      for (std::size_t i = 0; i < exact.ids.size(); ++i) CHECK(cold->hits[i].id == exact.ids[i]);
    }
    auto report = (*sink)->compact();
    INFO(report.status().to_string());
    REQUIRE(report.ok());
    CHECK(report->objects_removed == 5);  // four segments and the delta
  }
  auto keys = store->list("");
  REQUIRE(keys.ok());
  CHECK(keys->size() == 2);  // the compacted segment and the context
  for (const auto& k : *keys) {
    auto v = store->get(k);
    REQUIRE(v.ok());
    CHECK(v->find(victim_payload) == std::string::npos);
  }
  auto reopened = sink::SinkService::open(*store);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->status().records == 149);
  CHECK((*reopened)->status().store_kind == "s3");
}
