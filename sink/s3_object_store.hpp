// sink/s3_object_store.hpp: the ObjectStore on an S3-compatible service (AWS S3, MinIO, Ceph
// RGW), through libcurl.
//
// Role: the sink's cloud object store. Requests are signed by libcurl's CURLOPT_AWS_SIGV4 (no
// signing code of ours). Because curl 7.88 neither adds x-amz-content-sha256 nor sorts or
// encodes query strings, this store sends x-amz-content-sha256 = the payload's SHA-256
// (libsodium) on every request and builds every query already sorted by name with names and
// values percent-encoded as SigV4 canonicalises them (RFC 3986 unreserved characters kept).
// URLs are path-style: <endpoint>/<bucket>/<percent-encoded key>. list() uses ListObjectsV2
// (list-type=2) and follows continuation tokens; keys come back sorted bytewise.
//
// Statuses (see sink/object_store.hpp): HTTP 403/401 -> kUnauthenticated naming the key id and
// the service's error code; 404 -> kNotFound (kNoSuchRecord for a missing key); connection
// refused, timeouts and resets -> kUnavailable with curl's reason; 429 and 503 (SlowDown) ->
// kOverloaded; any other HTTP status -> kIo naming the status and the service's error code and
// message.
//
// Thread rules: any thread, concurrently: each request uses its own curl easy handle.
// Ownership: the options (including the secret) are copied into the store.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "sink/object_store.hpp"

namespace shoal::sink {

struct S3Options {
  std::string endpoint;  // scheme, host and port, no trailing slash: "http://127.0.0.1:9000"
  std::string region = "us-east-1";
  std::string bucket;
  std::string access_key_id;
  std::string secret_access_key;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{120'000};
  std::uint32_t list_page_keys = 1000;  // max-keys per ListObjectsV2 page (1..1000)
  Limits limits{};
  bool trace = false;  // curl's verbose trace of each request on stderr (never the secret)
};

class S3ObjectStore final : public ObjectStore {
 public:
  // Checks the options (kInvalidArgument naming the field); makes no request.
  static Result<std::unique_ptr<S3ObjectStore>> create(S3Options options);

  // Creates the bucket; OK when it already exists and is ours.
  Status create_bucket();

  Status put(std::string_view key, std::string_view bytes) override;
  Result<std::string> get(std::string_view key) override;
  Result<std::vector<std::string>> list(std::string_view prefix) override;
  Status remove(std::string_view key) override;
  const Limits& limits() const noexcept override { return options_.limits; }
  std::string_view kind() const noexcept override { return "s3"; }

  // Exposed for tests: SigV4 URI encoding (unreserved kept; '/' kept when keep_slash).
  static std::string uri_encode(std::string_view s, bool keep_slash);
  // Exposed for tests: the ListObjectsV2 query, sorted and encoded.
  static std::string list_query(std::string_view prefix, std::string_view continuation_token,
                                std::uint32_t max_keys);

 private:
  explicit S3ObjectStore(S3Options options) : options_(std::move(options)) {}
  struct Response {
    long http = 0;
    std::string body;
  };
  Result<Response> request(const char* method, const std::string& path, const std::string& query,
                           std::string_view body, std::string_view context);
  Status http_error(const Response& response, std::string_view context) const;

  const S3Options options_;
};

}  // namespace shoal::sink
