// sink/s3_object_store.cpp: the ObjectStore on S3 through libcurl's SigV4 (see the header).
#include "sink/s3_object_store.hpp"

#include <curl/curl.h>
#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <utility>

namespace shoal::sink {

namespace {

std::once_flag g_init;

void global_init() {
  std::call_once(g_init, [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    // libsodium's hash needs no initialisation, but its CPU-feature probe is done here once.
    if (sodium_init() < 0) std::abort();
  });
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return std::string(hex, crypto_hash_sha256_BYTES * 2);
}

// Decodes XML's five named entities and numeric ASCII references (keys are printable ASCII).
std::string xml_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const std::size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s[i];
      continue;
    }
    const std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (ent.size() > 1 && ent[0] == '#') {
      unsigned long code = 0;
      try {
        code = ent[1] == 'x' ? std::stoul(std::string(ent.substr(2)), nullptr, 16)
                             : std::stoul(std::string(ent.substr(1)), nullptr, 10);
      } catch (...) {
        code = '?';
      }
      out += code < 0x80 ? static_cast<char>(code) : '?';
    } else {
      out.append(s.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

// The raw text of the first <tag>...</tag> at or after *from; moves *from past it. Empty with a
// null data() when there is none. S3's XML has no attributes on these elements.
std::string_view xml_tag(std::string_view xml, std::string_view tag, std::size_t* from) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  const std::size_t a = xml.find(open, *from);
  if (a == std::string_view::npos) return {};
  const std::size_t b = xml.find(close, a + open.size());
  if (b == std::string_view::npos) return {};
  *from = b + close.size();
  return xml.substr(a + open.size(), b - a - open.size());
}

// The first <tag>'s text, entities decoded; "" when absent.
std::string xml_first(std::string_view xml, std::string_view tag) {
  std::size_t from = 0;
  return xml_unescape(xml_tag(xml, tag, &from));
}

struct Sink {
  std::string* body;
  std::size_t cap;
  bool overflow = false;
};

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const std::size_t len = size * n;
  if (sink->body->size() + len > sink->cap) {
    sink->overflow = true;
    return 0;
  }
  sink->body->append(data, len);
  return len;
}

}  // namespace

std::string S3ObjectStore::uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string S3ObjectStore::list_query(std::string_view prefix, std::string_view token,
                                      std::uint32_t max_keys) {
  // Sorted by parameter name, as SigV4's canonical query string is.
  std::string q;
  if (!token.empty()) q += "continuation-token=" + uri_encode(token, false) + "&";
  q += "list-type=2&max-keys=" + std::to_string(max_keys);
  if (!prefix.empty()) q += "&prefix=" + uri_encode(prefix, false);
  return q;
}

Result<std::unique_ptr<S3ObjectStore>> S3ObjectStore::create(S3Options options) {
  auto need = [](const std::string& v, const char* name) -> Status {
    if (v.empty()) return Status(Detail::kOutOfRange, std::string("S3 option ") + name + " is empty");
    return ok_status();
  };
  SHOAL_RETURN_IF_ERROR(need(options.endpoint, "endpoint"));
  SHOAL_RETURN_IF_ERROR(need(options.region, "region"));
  SHOAL_RETURN_IF_ERROR(need(options.bucket, "bucket"));
  SHOAL_RETURN_IF_ERROR(need(options.access_key_id, "access_key_id"));
  SHOAL_RETURN_IF_ERROR(need(options.secret_access_key, "secret_access_key"));
  if (options.endpoint.rfind("http://", 0) != 0 && options.endpoint.rfind("https://", 0) != 0) {
    return Status(Detail::kMalformed, "S3 endpoint must start with http:// or https://",
                  options.endpoint);
  }
  while (!options.endpoint.empty() && options.endpoint.back() == '/') options.endpoint.pop_back();
  if (options.list_page_keys == 0 || options.list_page_keys > 1000) {
    return Status(Detail::kOutOfRange, "S3 list_page_keys must be 1..1000, not " +
                                           std::to_string(options.list_page_keys));
  }
  for (char c : options.bucket) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
      return Status(Detail::kMalformed, "S3 bucket names use a-z, 0-9, '-' and '.'",
                    options.bucket);
    }
  }
  global_init();
  return std::unique_ptr<S3ObjectStore>(new S3ObjectStore(std::move(options)));
}

Result<S3ObjectStore::Response> S3ObjectStore::request(const char* method, const std::string& path,
                                                       const std::string& query,
                                                       std::string_view body,
                                                       std::string_view context) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) return Status(Code::kInternal, "curl_easy_init failed");
  CURL* h = curl.get();
  const std::string url = options_.endpoint + path + (query.empty() ? "" : "?" + query);
  const std::string sigv4 = "aws:amz:" + options_.region + ":s3";
  const std::string content_sha = "x-amz-content-sha256: " + sha256_hex(body);
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, content_sha.c_str());
  // No "Expect:" override: curl would sign the empty header it then does not send.
  const bool is_put = std::string_view(method) == "PUT";
  if (is_put) headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers,
                                                                           &curl_slist_free_all);
  Response response;
  Sink sink{&response.body, options_.limits.max_object_bytes + (std::size_t{1} << 20)};
  char errbuf[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  if (options_.trace) curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(h, CURLOPT_USERNAME, options_.access_key_id.c_str());
  curl_easy_setopt(h, CURLOPT_PASSWORD, options_.secret_access_key.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.count()));
  if (is_put) {
    // The body as POSTFIELDS, so curl's SigV4 hashes the same bytes we declare.
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  } else if (std::string_view(method) == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  }
  const CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    std::string reason = errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc);
    if (sink.overflow) {
      return Status(Detail::kTooLarge, "S3 response above " + std::to_string(sink.cap) + " bytes",
                    std::string(context));
    }
    switch (rc) {
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
        return Status(Code::kUnavailable, "S3 " + std::string(method) + " to " +
                                              options_.endpoint + " failed: " + reason,
                      std::string(context));
      default:
        return Status(Code::kIo, "S3 " + std::string(method) + " failed: " + reason,
                      std::string(context));
    }
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.http);
  return response;
}

Status S3ObjectStore::http_error(const Response& response, std::string_view context) const {
  const std::string code = xml_first(response.body, "Code");
  const std::string message = xml_first(response.body, "Message");
  const std::string what = "HTTP " + std::to_string(response.http) +
                           (code.empty() ? "" : " " + code) +
                           (message.empty() ? "" : ": " + message);
  if (response.http == 401 || response.http == 403) {
    return Status(Code::kUnauthenticated,
                  "the S3 service refused access key id '" + options_.access_key_id + "' (" +
                      what + ")",
                  std::string(context));
  }
  if (response.http == 404) {
    if (code == "NoSuchBucket") {
      return Status(Code::kNotFound, "no such S3 bucket '" + options_.bucket + "' (" + what + ")",
                    std::string(context));
    }
    return Status(Detail::kNoSuchRecord, "no such object (" + what + ")", std::string(context));
  }
  if (response.http == 429 || response.http == 503) {
    return Status(Code::kOverloaded, "the S3 service asks to slow down (" + what + ")",
                  std::string(context));
  }
  return Status(Code::kIo, "S3 request failed: " + what, std::string(context));
}

Status S3ObjectStore::create_bucket() {
  std::string body;
  if (options_.region != "us-east-1") {
    body = "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
           "<LocationConstraint>" + options_.region + "</LocationConstraint>"
           "</CreateBucketConfiguration>";
  }
  SHOAL_ASSIGN_OR_RETURN(Response r, request("PUT", "/" + options_.bucket, "", body, options_.bucket));
  if (r.http / 100 == 2) return ok_status();
  if (r.http == 409 && xml_first(r.body, "Code") == "BucketAlreadyOwnedByYou") return ok_status();
  if (r.http == 409) {
    return Status(Detail::kAlreadyExists, "S3 bucket '" + options_.bucket + "' exists: " +
                                              xml_first(r.body, "Code"), options_.bucket);
  }
  return http_error(r, options_.bucket);
}

Status S3ObjectStore::put(std::string_view key, std::string_view bytes) {
  SHOAL_RETURN_IF_ERROR(check_key(key, options_.limits));
  SHOAL_RETURN_IF_ERROR(check_object_size(bytes.size(), options_.limits));
  const std::string path = "/" + options_.bucket + "/" + uri_encode(key, true);
  SHOAL_ASSIGN_OR_RETURN(Response r, request("PUT", path, "", bytes, key));
  if (r.http / 100 == 2) return ok_status();
  return http_error(r, key);
}

Result<std::string> S3ObjectStore::get(std::string_view key) {
  SHOAL_RETURN_IF_ERROR(check_key(key, options_.limits));
  const std::string path = "/" + options_.bucket + "/" + uri_encode(key, true);
  SHOAL_ASSIGN_OR_RETURN(Response r, request("GET", path, "", {}, key));
  if (r.http / 100 == 2) return std::move(r.body);
  return http_error(r, key);
}

Status S3ObjectStore::remove(std::string_view key) {
  SHOAL_RETURN_IF_ERROR(check_key(key, options_.limits));
  const std::string path = "/" + options_.bucket + "/" + uri_encode(key, true);
  SHOAL_ASSIGN_OR_RETURN(Response r, request("DELETE", path, "", {}, key));
  if (r.http / 100 == 2) return ok_status();
  if (r.http == 404 && xml_first(r.body, "Code") != "NoSuchBucket") return ok_status();
  return http_error(r, key);
}

Result<std::vector<std::string>> S3ObjectStore::list(std::string_view prefix) {
  SHOAL_RETURN_IF_ERROR(check_prefix(prefix, options_.limits));
  std::vector<std::string> keys;
  std::string token;
  const std::string path = "/" + options_.bucket;
  for (;;) {
    const std::string query = list_query(prefix, token, options_.list_page_keys);
    SHOAL_ASSIGN_OR_RETURN(Response r, request("GET", path, query, {}, prefix));
    if (r.http / 100 != 2) return http_error(r, prefix);
    std::size_t from = 0;
    for (;;) {
      std::string_view contents = xml_tag(r.body, "Contents", &from);
      if (contents.data() == nullptr) break;
      std::size_t at = 0;
      std::string key = xml_unescape(xml_tag(contents, "Key", &at));
      if (key.compare(0, prefix.size(), prefix) != 0) {
        return Status(Code::kIo, "S3 listed key '" + key + "' outside the prefix",
                      std::string(prefix));
      }
      if (keys.size() == options_.limits.max_list_keys) {
        return Status(Detail::kTooLarge,
                      "more than " + std::to_string(options_.limits.max_list_keys) +
                          " keys under the prefix", std::string(prefix));
      }
      keys.push_back(std::move(key));
    }
    if (xml_first(r.body, "IsTruncated") != "true") break;
    std::string next = xml_first(r.body, "NextContinuationToken");
    if (next.empty() || next == token) {
      return Status(Code::kIo, "S3 list is truncated without a new continuation token",
                    std::string(prefix));
    }
    token = std::move(next);
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

}  // namespace shoal::sink
