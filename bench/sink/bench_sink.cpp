// bench/sink/bench_sink.cpp: upload throughput of S3ObjectStore::put against its anchor, a raw
// libcurl PUT loop of the same bytes (one reused easy handle, the same CURLOPT_AWS_SIGV4 signing
// and x-amz-content-sha256 header), in the same run, against the same server. Run it through
// bench/sink/run.sh, which starts a signature-checking moto_server on loopback (the test
// recipe, tests/sink/run_s3_tests.sh). Goal (issue 15): store >= 0.8x raw.
//
// Usage: bench_sink [objects=200] [object_bytes=262144] [rounds=3]
// Rounds alternate the order (store first, then raw first) so neither side always runs on a
// warmer server; the figure is the median of the rounds' ratios.
#include <curl/curl.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sink/s3_object_store.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) {
    std::fprintf(stderr, "bench_sink: %s is not set; run bench/sink/run.sh\n", name);
    std::exit(2);
  }
  return v;
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(d, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, d, sizeof d);
  return hex;
}

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

// The anchor: PUT each object with one reused handle; returns seconds, or < 0 on failure.
double raw_loop(const std::string& endpoint, const std::string& bucket, const std::string& id,
                const std::string& secret, const std::string& prefix,
                const std::vector<std::string>& objects) {
  CURL* h = curl_easy_init();
  const auto start = Clock::now();
  for (std::size_t i = 0; i < objects.size(); ++i) {
    const std::string url = endpoint + "/" + bucket + "/" + prefix + std::to_string(i);
    const std::string sha = "x-amz-content-sha256: " + sha256_hex(objects[i]);
    curl_slist* headers = curl_slist_append(nullptr, sha.c_str());
    headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(h, CURLOPT_USERNAME, id.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, secret.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(objects[i].size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, objects[i].data());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &discard);
    const CURLcode rc = curl_easy_perform(h);
    long http = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK || http != 200) {
      std::fprintf(stderr, "raw PUT failed: curl %d, HTTP %ld\n", static_cast<int>(rc), http);
      curl_easy_cleanup(h);
      return -1;
    }
  }
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  curl_easy_cleanup(h);
  return s;
}

double store_loop(shoal::sink::ObjectStore& store, const std::string& prefix,
                  const std::vector<std::string>& objects) {
  const auto start = Clock::now();
  for (std::size_t i = 0; i < objects.size(); ++i) {
    shoal::Status st = store.put(prefix + std::to_string(i), objects[i]);
    if (!st.ok()) {
      std::fprintf(stderr, "store put failed: %s\n", st.to_string().c_str());
      return -1;
    }
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t count = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 200;
  const std::size_t size = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 262144;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
  if (sodium_init() < 0) return 1;
  shoal::sink::S3Options o;
  o.endpoint = env("SHOAL_S3_ENDPOINT");
  o.bucket = "shoal-bench";
  o.access_key_id = env("SHOAL_S3_KEY_ID");
  o.secret_access_key = env("SHOAL_S3_SECRET");
  auto store = shoal::sink::S3ObjectStore::create(o);
  if (!store.ok() || !(*store)->create_bucket().ok()) {
    std::fprintf(stderr, "bench_sink: cannot reach the S3 server at %s\n", o.endpoint.c_str());
    return 1;
  }
  std::vector<std::string> objects(count, std::string(size, '\0'));
  std::uint64_t x = 88172645463325252ull;
  for (auto& obj : objects) {
    for (auto& c : obj) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      c = static_cast<char>(x);
    }
  }
  const double mib = static_cast<double>(count * size) / (1024.0 * 1024.0);
  std::printf("bench_sink: %zu objects x %zu bytes (%.1f MiB) per loop, %d rounds, moto_server at %s\n",
              count, size, mib, rounds, o.endpoint.c_str());
  std::vector<double> ratios;
  for (int r = 0; r < rounds; ++r) {
    const std::string p = "r" + std::to_string(r);
    double ts = 0;
    double tr = 0;
    if (r % 2 == 0) {
      ts = store_loop(**store, p + "-store-", objects);
      tr = raw_loop(o.endpoint, o.bucket, o.access_key_id, o.secret_access_key, p + "-raw-", objects);
    } else {
      tr = raw_loop(o.endpoint, o.bucket, o.access_key_id, o.secret_access_key, p + "-raw-", objects);
      ts = store_loop(**store, p + "-store-", objects);
    }
    if (ts < 0 || tr < 0) return 1;
    ratios.push_back(tr / ts);
    std::printf("round %d: store %.1f MiB/s (%.0f puts/s), raw curl %.1f MiB/s (%.0f puts/s), "
                "store/raw %.2f\n", r, mib / ts, static_cast<double>(count) / ts, mib / tr,
                static_cast<double>(count) / tr, tr / ts);
    auto keys = (*store)->list(p + "-");
    if (keys.ok()) {
      for (const auto& k : *keys) (void)(*store)->remove(k);
    }
  }
  std::sort(ratios.begin(), ratios.end());
  std::printf("store/raw throughput, median of %d rounds: %.2f (goal >= 0.80)\n", rounds,
              ratios[ratios.size() / 2]);
  return 0;
}
