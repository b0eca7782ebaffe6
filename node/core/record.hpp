// node/core/record.hpp: what a record holds (vector, metadata, embedding-model tag), the limits
// every input is checked against, the payload encoding stored in the CRDT, and metadata filters.
//
// Role: the one place where a record from an app, a file or a peer is validated. crdt/ treats the
// payload as opaque bytes; index/ sees only vectors and labels; this file connects them. The
// payload encoding is a versioned format (docs/storage.md, "Record payload"): changing it means a
// new version byte and a decoder that still reads the old one.
// Thread rules: values and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/status.hpp"
#include "index/types.hpp"

namespace shoal::node {

enum class Metric : std::uint8_t { kL2 = 0, kInnerProduct = 1, kCosine = 2 };
std::string_view metric_name(Metric m) noexcept;
Result<Metric> parse_metric(std::string_view text);
// The index's number for a metric (index/ numbers its metrics in its snapshot format).
index::Metric to_index_metric(Metric m) noexcept;

// Limits checked at the edge of the node. The defaults are DESIGN.md section 2's.
struct Limits {
  std::size_t max_id_bytes = 256;
  std::size_t max_metadata_bytes = 40 * 1024;  // encoded size of all metadata of one record
  std::size_t max_metadata_keys = 256;
  std::size_t max_model_tag_bytes = 128;
  std::uint32_t max_dimension = 4096;
  std::size_t max_batch_records = 10'000;
  std::uint32_t max_k = 1000;
  std::size_t max_collection_name_bytes = 64;
};

// A metadata value: string, integer, float or bool (DESIGN.md section 2).
using MetaValue = std::variant<std::string, std::int64_t, double, bool>;

// Metadata as (key, value) pairs sorted by key with unique keys (normalize() makes it so).
struct Metadata {
  std::vector<std::pair<std::string, MetaValue>> fields;

  const MetaValue* find(std::string_view key) const noexcept;
  // Sorts by key; a later duplicate key replaces an earlier one.
  void normalize();
  friend bool operator==(const Metadata&, const Metadata&) = default;
};

struct RecordValue {
  std::vector<float> vector;
  Metadata metadata;
  std::string model;  // the embedding-model tag that produced the vector; may be empty
  friend bool operator==(const RecordValue&, const RecordValue&) = default;
};

// Checks a collection name: 1..limit bytes of [A-Za-z0-9_.-], not starting with '.'.
Status validate_collection_name(std::string_view name, const Limits& limits);
// Checks a record id: 1..limit bytes, no NUL.
Status validate_record_id(std::string_view id, const Limits& limits);
// Checks a vector for a collection: dimension, finite values, and non-zero under cosine.
Status validate_vector(std::span<const float> v, std::uint32_t dimension, Metric metric);
// Checks everything in a record value against the collection and the limits, including the
// encoded metadata size and non-finite float metadata values.
Status validate_record(const RecordValue& r, std::uint32_t dimension, Metric metric,
                       const Limits& limits);

// Payload encoding (version 1), little-endian:
//   u8 version=1 | u32 dim | dim x f32 | u16 model_len | model | u16 n_fields |
//   n x (u16 key_len | key | u8 type | value)   type 0 string (u32 len | bytes), 1 i64, 2 f64, 3 bool (u8)
std::string encode_payload(const RecordValue& r);
// Decodes and validates structure (lengths, types, sorted unique keys). Never crashes on
// arbitrary bytes; returns kMalformed / kVersionMismatch with the offset in the message.
Result<RecordValue> decode_payload(std::string_view bytes);
// Encoded size of the metadata part alone (what max_metadata_bytes limits).
std::size_t encoded_metadata_size(const Metadata& m) noexcept;

// A conjunction of conditions on metadata: every condition must hold.
struct Condition {
  enum class Op : std::uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kExists };
  std::string key;
  Op op = Op::kEq;
  MetaValue value;
};
struct Filter {
  std::vector<Condition> all;
  bool empty() const noexcept { return all.empty(); }
  bool matches(const Metadata& m) const noexcept;
};
// Parses "key=value,key>=3,flag=true,key?" (comma = and; ops = != < <= > >=; `key?` = exists).
// Values parse as int, then float, then bool (true/false), else string; quote with "..." to force
// a string. Errors name the offending condition.
Result<Filter> parse_filter(std::string_view text);

}  // namespace shoal::node
