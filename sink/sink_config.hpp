// sink/sink_config.hpp: shoal-sink's configuration file (TOML, read with toml++), in the style of
// shoald's (node/daemon/config.hpp): every key known, every value checked, and one Status that
// names, for every problem, the file, line and column, the key, the value seen and what was
// expected:
//   /etc/shoal/shoal-sink.toml:3:1: key sink.listen = "0.0.0.0:99999": port must be 0..65535
// docs/sink.md lists every key; packaging/shoal-sink.toml (the package's conffile) shows each one.
//
// Invariants of a SinkConfig returned by parse_sink_config: data_dir and certificate are absolute
// (relative paths are taken relative to the file's directory); store.kind is "lmdb" or "s3", and
// "s3" has endpoint, bucket, access key id and secret; numbers are in their documented ranges.
// Thread rules: values and free functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/log.hpp"
#include "common/status.hpp"
#include "sink/sink_service.hpp"

namespace shoal::sink {

struct SinkConfig {
  std::string path;
  // [sink]
  std::string data_dir;      // sink.data_dir, required: identity.key and the LMDB objects
  std::string certificate;   // sink.certificate, required: the sink's certificate (role sink)
  std::string listen_address = "0.0.0.0";  // sink.listen = "ADDR:PORT"
  std::uint16_t listen_port = 7420;
  LogLevel log_level = LogLevel::kInfo;    // sink.log_level
  std::uint32_t compact_interval_s = 3600; // sink.compact_interval_s, 0..604800; 0: never
  // [store]
  std::string store_kind = "lmdb";         // store.kind: "lmdb" | "s3"
  std::uint64_t lmdb_map_size_mb = 1024;   // store.lmdb_map_size_mb, 1..16777216
  std::string s3_endpoint;                 // store.s3_endpoint ("http://127.0.0.1:9000")
  std::string s3_region = "us-east-1";     // store.s3_region
  std::string s3_bucket;                   // store.s3_bucket
  std::string s3_access_key_id;            // store.s3_access_key_id
  std::string s3_secret_access_key;        // store.s3_secret_access_key (the file should be 0600)
  bool s3_create_bucket = false;           // store.s3_create_bucket
  // [limits]
  SinkLimits limits;  // limits.max_collections, max_k, max_fetch_ids, max_upload_bytes
};

// Parses `text` as the file `path`. Statuses: kInvalidArgument listing every problem;
// kMalformed for a TOML syntax error (with its position); kUnknownName for an unknown key.
[[nodiscard]] Result<SinkConfig> parse_sink_config(std::string_view text, const std::string& path);
// The largest configuration file load_sink_config reads (as shoald's, kMaxConfigBytes).
inline constexpr std::size_t kMaxSinkConfigBytes = std::size_t{1} << 20;
// Reads and parses `path`. Statuses: kIo naming the file and the OS reason when it cannot be
// read; kTooLarge above kMaxSinkConfigBytes; parse_sink_config's.
[[nodiscard]] Result<SinkConfig> load_sink_config(const std::string& path);

}  // namespace shoal::sink
