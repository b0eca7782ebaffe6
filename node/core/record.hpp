// node/core/record.hpp: what a record holds (vector, metadata, embedding-model tag), the limits
// every input is checked against, the payload encoding stored in the CRDT, and metadata filters.
//
// Role: the one place where a record from an app, a file or a peer is validated. crdt/ treats the
// payload as opaque bytes; index/ sees only vectors and labels; this file connects them. The
// payload encoding is a versioned format (docs/storage.md, "Record payload"): changing it means a
// new version byte and a decoder that still reads the old one.
// Thread rules: values and pure functions.
#pragma once

#include <array>
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

// The metric is the index's (index/metric.hpp): one enum, whose numbers are no format. The
// node's encodings of it each have a conversion below; metric_name is index::metric_name.
using Metric = index::Metric;
using index::metric_name;
// "l2", "ip" or "cosine"; kUnknownName otherwise.
Result<Metric> parse_metric(std::string_view text);
// The identity since the node and the index share the enum; kept for its callers.
constexpr index::Metric to_index_metric(Metric m) noexcept { return m; }

// Catalogue byte (docs/node-format.md, collection entry). Stored: never renumber.
constexpr std::uint8_t metric_to_catalogue_byte(Metric m) noexcept {
  switch (m) {
    case Metric::kL2: return 0;
    case Metric::kInnerProduct: return 1;
    case Metric::kCosine: return 2;
  }
  return 0xff;
}
constexpr std::optional<Metric> metric_from_catalogue_byte(std::uint8_t b) noexcept {
  switch (b) {
    case 0: return Metric::kL2;
    case 1: return Metric::kInnerProduct;
    case 2: return Metric::kCosine;
    default: return std::nullopt;
  }
}
// Wire byte (transport::CollectionSpecWire::metric, the replicated catalogue). A protocol
// value: never renumber. Equal to the catalogue byte today, but a format of its own.
constexpr std::uint8_t metric_to_wire_byte(Metric m) noexcept {
  switch (m) {
    case Metric::kL2: return 0;
    case Metric::kInnerProduct: return 1;
    case Metric::kCosine: return 2;
  }
  return 0xff;
}
constexpr std::optional<Metric> metric_from_wire_byte(std::uint8_t b) noexcept {
  switch (b) {
    case 0: return Metric::kL2;
    case 1: return Metric::kInnerProduct;
    case 2: return Metric::kCosine;
    default: return std::nullopt;
  }
}

static_assert(metric_to_catalogue_byte(Metric::kL2) == 0 && metric_to_catalogue_byte(Metric::kInnerProduct) == 1 &&
              metric_to_catalogue_byte(Metric::kCosine) == 2);
static_assert(metric_from_catalogue_byte(0) == Metric::kL2 && metric_from_catalogue_byte(1) == Metric::kInnerProduct &&
              metric_from_catalogue_byte(2) == Metric::kCosine && !metric_from_catalogue_byte(3));
static_assert(metric_to_wire_byte(Metric::kL2) == 0 && metric_to_wire_byte(Metric::kInnerProduct) == 1 &&
              metric_to_wire_byte(Metric::kCosine) == 2);
static_assert(metric_from_wire_byte(0) == Metric::kL2 && metric_from_wire_byte(1) == Metric::kInnerProduct &&
              metric_from_wire_byte(2) == Metric::kCosine && !metric_from_wire_byte(3));

// Limits checked at the edge of the node. The defaults are the documented ones (docs/api.md).
struct Limits {
  std::size_t max_id_bytes = 256;
  std::size_t max_metadata_bytes = 40 * 1024;  // encoded size of all metadata of one record
  std::size_t max_metadata_keys = 256;
  std::size_t max_model_tag_bytes = 128;
  std::uint32_t max_dimension = 4096;
  std::size_t max_batch_records = 10'000;
  std::uint32_t max_k = 1000;
  std::size_t max_collection_name_bytes = 64;
  // Lets a test write what a store could hold before UTF-8 was enforced (ids, model tags and
  // metadata strings that are not UTF-8), to prove that readers still render such records.
  bool accept_invalid_utf8_for_testing = false;
};

// UTF-8 (RFC 3629, strict: no overlong forms, no surrogates, nothing above U+10FFFF).
// Returns the byte offset of the first byte that does not start or continue a valid sequence,
// or nullopt when all of `s` is valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view s) noexcept;
// Returns `s` with every maximal invalid subsequence replaced by U+FFFD (EF BF BD), so it can be
// printed as JSON. Valid input is returned unchanged. Readers use it: a store may hold strings
// written before validation existed, and reading them must never fail.
std::string to_valid_utf8(std::string_view s);
// Renders untrusted bytes for an error message: printable ASCII and valid multi-byte UTF-8 as
// is; invalid and control bytes as \xNN; at most `max_bytes` of input, then "...".
std::string escape_for_message(std::string_view s, std::size_t max_bytes = 48);
// kMalformed when `value` is not valid UTF-8, naming `field`, the rule, the first invalid byte
// and its offset, and the value seen (escaped): "metadata key must be valid UTF-8; byte 0xff at
// offset 2 of 3 is not (value 'ab\xff')".
Status validate_utf8(std::string_view field, std::string_view value);

// A metadata value: string, integer, float or bool.
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
// Checks a record id: 1..limit bytes, no NUL, valid UTF-8 (kMalformed naming the offset of the
// first invalid byte). Used for ids from apps and from peers (Node::upsert_batch,
// Node::on_delta_batch, the repair-reply handler).
Status validate_record_id(std::string_view id, const Limits& limits);
// Checks an id used only to look a record up (get, delete): 1..limit bytes, no NUL, but not
// UTF-8, so records stored before UTF-8 was enforced can still be read and deleted.
Status validate_record_id_for_lookup(std::string_view id, const Limits& limits);
// Checks a vector for a collection: dimension, finite values, and non-zero under cosine.
Status validate_vector(std::span<const float> v, std::uint32_t dimension, Metric metric);
// Checks everything in a record value against the collection and the limits, including the
// encoded metadata size, non-finite float metadata values, and that the model tag and every
// metadata key and string value are valid UTF-8 (kMalformed naming the field and the offset of
// the first invalid byte). The one check for records from apps and from peers alike.
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

// --- Evicted records (docs/tiers.md, "Eviction"; D49) ---
// A stub payload stands for a payload evicted once the cold-tier sink acknowledged it: the same
// entry (dot, clock) with the vector dropped and the BLAKE2b-256 digest of the whole payload
// kept, so the sink's copy can be fetched and checked (sink::FetchedRecord::digest):
//   u8 version=2 | u32 dim | 32 B digest | u16 model_len | model | u16 n_fields | fields (as v1)
// The dimension stays at the offset of version 1's, so node/core/vector_store.cpp's elided form
// (dimension 0xffffffff) can never be mistaken for a stub. decode_payload refuses a stub
// (kVersionMismatch): only readers that know stubs (decode_stub_payload) accept one.
using PayloadDigest = std::array<std::uint8_t, 32>;
inline constexpr std::uint8_t kStubPayloadVersion = 2;
struct StubPayload {
  std::uint32_t dimension = 0;  // of the evicted vector
  PayloadDigest digest{};       // BLAKE2b-256 of the evicted (version 1) payload
  RecordValue value;            // metadata and model; the vector is empty
};
bool is_stub_payload(std::string_view bytes) noexcept;
// The stub of a version 1 payload (kMalformed when `full` does not decode).
Result<std::string> make_stub_payload(std::string_view full, const PayloadDigest& digest);
// Decodes a stub strictly (kMalformed with the offset; kVersionMismatch for any other version).
Result<StubPayload> decode_stub_payload(std::string_view bytes);
// Checks a stub from a peer: its dimension is the collection's, and its metadata and model tag
// pass validate_record's rules.
Status validate_stub(const StubPayload& stub, std::uint32_t dimension, const Limits& limits);

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
// Parses a filter: the grammar in docs/api.md ("Filters"), in short
//   filter    = ws [ condition ws *( "," ws condition ws ) ]
//   condition = key ws ( "?" / op ws value )      op = "=" / "!=" / "<" / "<=" / ">" / ">="
//   key, value = quoted / bare      quoted = '"' *( char / '\"' / '\\' ) '"'
// Bare values type as int, then float, then true/false, else string; quoted values are strings.
// Anything else is kMalformed with "at byte N" (0-based) in the message; N is also written to
// `error_offset_or_null` when given. Keys and values must be valid UTF-8.
Result<Filter> parse_filter(std::string_view text, std::size_t* error_offset_or_null = nullptr);

}  // namespace shoal::node
