// tests/sink/s3_object_store_test.cpp: the S3 object store against moto_server, which checks
// every request's SigV4 signature. Run through run_s3_tests.sh, which starts moto, creates an IAM
// user with an access key and exports SHOAL_S3_ENDPOINT, SHOAL_S3_KEY_ID and SHOAL_S3_SECRET.
// Proves: the contract (upload, list across pages with a prefix that needs encoding, fetch,
// remove, bounds); a wrong secret is refused with kUnauthenticated (so the signing is real);
// objects written here read back with boto3 byte for byte, and objects boto3 writes read here.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "sink/s3_object_store.hpp"
#include "sink/segment.hpp"
#include "tests/sink/object_store_contract.hpp"

namespace shoal::sink {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    FAIL(std::string(name) + " is not set: run this binary through tests/sink/run_s3_tests.sh");
  }
  return v;
}

S3Options options(const std::string& bucket) {
  S3Options o;
  o.endpoint = env("SHOAL_S3_ENDPOINT");
  o.bucket = bucket;
  o.access_key_id = env("SHOAL_S3_KEY_ID");
  o.secret_access_key = env("SHOAL_S3_SECRET");
  o.limits.max_object_bytes = std::size_t{1} << 20;
  o.list_page_keys = 3;  // the contract's 10-key listing takes four pages
  o.trace = std::getenv("SHOAL_S3_TRACE") != nullptr;
  return o;
}

std::unique_ptr<S3ObjectStore> make_store(const std::string& bucket) {
  auto store = S3ObjectStore::create(options(bucket));
  REQUIRE(store.ok());
  Status st = (*store)->create_bucket();
  INFO(st.to_string());
  REQUIRE(st.ok());
  return std::move(*store);
}

std::string run_ns() {
  return "run-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "-";
}

// Runs a python3 boto3 snippet with the client `s3` bound to moto; returns its exit status.
int boto3(const std::string& body) {
  const std::string script =
      "import boto3, os, sys\n"
      "s3 = boto3.client('s3', endpoint_url=os.environ['SHOAL_S3_ENDPOINT'], "
      "region_name='us-east-1', aws_access_key_id=os.environ['SHOAL_S3_KEY_ID'], "
      "aws_secret_access_key=os.environ['SHOAL_S3_SECRET'])\n" + body;
  char path[] = "/tmp/shoal_s3_boto3_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  { std::ofstream(path) << script; }
  const int rc = std::system(("python3 " + std::string(path)).c_str());
  std::remove(path);
  return rc;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("s3 object store contract against moto_server", "[sink][s3]") {
  auto store = make_store("shoal-contract");
  testing::run_object_store_contract(*store, {run_ns(), "odd dir with spaces~_.-", "~"});
}

TEST_CASE("s3 object store: a wrong secret is refused with kUnauthenticated", "[sink][s3]") {
  auto good = make_store("shoal-auth");
  REQUIRE(good->put("auth/object", "bytes").ok());
  S3Options o = options("shoal-auth");
  o.secret_access_key = "not-the-secret";
  auto bad = S3ObjectStore::create(o);
  REQUIRE(bad.ok());
  for (Status st : {(*bad)->put("auth/object2", "x"), (*bad)->get("auth/object").status(),
                    (*bad)->list("auth/").status(), (*bad)->remove("auth/object")}) {
    INFO(st.to_string());
    CHECK(st.code() == Code::kUnauthenticated);
    CHECK(st.message().find(o.access_key_id) != std::string::npos);
    CHECK(st.message().find("not-the-secret") == std::string::npos);
  }
  // Nothing the refused requests asked for happened.
  CHECK(*good->get("auth/object") == "bytes");
  CHECK(good->get("auth/object2").status().code() == Code::kNotFound);
  // An unknown key id is refused the same way.
  o = options("shoal-auth");
  o.access_key_id = "AKIANOSUCHKEY0000000";
  auto unknown = S3ObjectStore::create(o);
  REQUIRE(unknown.ok());
  CHECK((*unknown)->get("auth/object").status().code() == Code::kUnauthenticated);
  // A missing bucket is kNotFound, not an authentication failure.
  auto nobucket = S3ObjectStore::create(options("shoal-no-such-bucket"));
  REQUIRE(nobucket.ok());
  CHECK((*nobucket)->get("x").status().code() == Code::kNotFound);
}

TEST_CASE("s3 object store: objects match boto3's view byte for byte", "[sink][s3]") {
  auto store = make_store("shoal-boto3");
  const std::string ns = run_ns();
  const std::string key = ns + "segments/col one/seg 1.bin";
  const std::string bytes = testing::binary_bytes(300'000, 42) + std::string(5, '\0');
  REQUIRE(store->put(key, bytes).ok());

  char dir[] = "/tmp/shoal_s3_cmp_XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string out = std::string(dir) + "/fetched";
  const std::string theirs = std::string(dir) + "/theirs";
  // boto3 fetches ours; boto3 writes an object of its own for us to fetch; boto3 lists.
  { std::ofstream(theirs, std::ios::binary) << testing::binary_bytes(70'000, 43); }
  const int rc = boto3(
      "obj = s3.get_object(Bucket='shoal-boto3', Key=" + std::string("'") + key + "')\n"
      "open('" + out + "', 'wb').write(obj['Body'].read())\n"
      "s3.put_object(Bucket='shoal-boto3', Key='" + ns + "from boto3/x y', "
      "Body=open('" + theirs + "', 'rb').read())\n"
      "keys = [o['Key'] for o in s3.list_objects_v2(Bucket='shoal-boto3', Prefix='" + ns +
      "')['Contents']]\n"
      "sys.exit(0 if keys == sorted(['" + key + "', '" + ns + "from boto3/x y']) else 3)\n");
  REQUIRE(rc == 0);
  CHECK(read_file(out) == bytes);
  auto got = store->get(ns + "from boto3/x y");
  REQUIRE(got.ok());
  CHECK(*got == read_file(theirs));
  auto listed = store->list(ns);
  REQUIRE(listed.ok());
  CHECK(listed->size() == 2);
  std::system(("rm -rf " + std::string(dir)).c_str());
  for (const auto& k : *listed) REQUIRE(store->remove(k).ok());
}

TEST_CASE("s3 object store: a segment uploads and decodes back", "[sink][s3]") {
  auto store = make_store("shoal-segments");
  Segment seg;
  seg.collection = "docs";
  for (int i = 0; i < 50; ++i) {
    SegmentRecord r;
    r.id = "rec-" + std::to_string(1000 + i);
    SegmentEntry e;
    e.dot.replica.fill(static_cast<std::uint8_t>(i));
    e.dot.counter = static_cast<std::uint64_t>(i + 1);
    e.hlc = 1'700'000'000'000ull + static_cast<std::uint64_t>(i);
    e.payload = testing::binary_bytes(512, static_cast<unsigned>(i));
    r.entries.push_back(e);
    seg.records.push_back(std::move(r));
  }
  auto bytes = encode_segment(seg);
  REQUIRE(bytes.ok());
  const std::string key = run_ns() + "docs/000001.seg";
  REQUIRE(store->put(key, *bytes).ok());
  auto got = store->get(key);
  REQUIRE(got.ok());
  auto decoded = decode_segment(*got);
  REQUIRE(decoded.ok());
  CHECK(*decoded == seg);
  REQUIRE(store->remove(key).ok());
}

}  // namespace
}  // namespace shoal::sink
