// transport/node_api_convert.hpp: the one place where the local API's values
// (transport/node_api.capnp) and the collection spec (sync.capnp) are converted to and from plain
// C++ values, for both ends of the local API: the daemon (node/daemon/local_api.cpp) and the
// client library (node/client/client.cpp).
//
// Role: translation only, no validation: the node validates what it is given (ids, dimensions,
// UTF-8, limits) exactly as for an embedded app, so a bad value gets the same typed error in
// both modes. Transport sits below node/, so the values here are transport's own: MetaFieldsWire
// is the same type as node::Metadata::fields (both ends static_assert it).
// The collection spec (sync.capnp's CollectionSpec, which node_api.capnp reuses) is converted in
// one place for the sync messages and the local API alike: write() / read() in
// transport/codec_wire.hpp, to and from CollectionSpecWire (node::to_wire / node::from_wire map
// that to node::CollectionSpec). A field added to the spec is added there.
// Thread rules: pure functions on the readers and builders given; no state.
// Ownership: readers returned by data_of / text views borrow the argument's bytes.
#pragma once

#include <capnp/blob.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "transport/messages.hpp"
#include "transport/codec_wire.hpp"
#include "transport/node_api.capnp.h"

namespace shoal::transport {

// A metadata value (text, integer, float, bool) and a record's metadata, in order.
using MetaValueWire = std::variant<std::string, std::int64_t, double, bool>;
using MetaFieldsWire = std::vector<std::pair<std::string, MetaValueWire>>;

// A record's value as the local API carries it (api::Value).
struct ValueWire {
  std::vector<float> vector;
  MetaFieldsWire metadata;
  std::string model;
};

inline std::string_view text_of(capnp::Text::Reader t) { return std::string_view(t.cStr(), t.size()); }
inline std::string_view bytes_of(capnp::Data::Reader d) {
  return std::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}
// Borrows `s`'s bytes.
inline capnp::Data::Reader data_of(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

void put_metadata(capnp::List<api::MetaField>::Builder list, const MetaFieldsWire& fields);
MetaFieldsWire metadata_of(capnp::List<api::MetaField>::Reader list);

// Initialises b's vector and metadata lists and sets the model.
void put_value(api::Value::Builder b, std::span<const float> vector, const MetaFieldsWire& metadata,
               const std::string& model);
ValueWire value_of(api::Value::Reader r);

// Copies whole (one memcpy) when the list is laid out as packed Float32 on a little-endian host,
// element by element otherwise.
void put_floats(capnp::List<float>::Builder list, std::span<const float> values);
std::vector<float> floats_of(capnp::List<float>::Reader list);

// First-segment sizes for the search call's messages (the `sizeHint` of searchRequest and of
// getResults). Without one capnp-rpc allocates and zeroes 8 KiB for every message; with one it
// allocates about what the message takes (D55). An estimate that falls short only costs a second
// segment, so these count generously: a text or data field as its bytes plus one word, each
// struct as six words.
inline std::uint64_t blob_words(std::size_t bytes) noexcept { return bytes / 8 + 2; }
inline capnp::MessageSize search_params_size(std::size_t collection_bytes, std::size_t dim,
                                             std::size_t filter_bytes) noexcept {
  return capnp::MessageSize{8 + blob_words(collection_bytes) + (dim * sizeof(float) + 7) / 8 + blob_words(filter_bytes),
                            0};
}
// A hit: its id, model and metadata fields (each key and text value).
inline std::uint64_t hit_words(std::size_t id_bytes, std::size_t model_bytes, const MetaFieldsWire& metadata) noexcept {
  std::uint64_t w = 6 + blob_words(id_bytes) + blob_words(model_bytes);
  for (const auto& [key, value] : metadata) {
    w += 6 + blob_words(key.size());
    if (const auto* t = std::get_if<std::string>(&value)) w += blob_words(t->size());
  }
  return w;
}
// A freshness entry: its replica id and device label.
inline std::uint64_t freshness_words(std::size_t replica_bytes, std::size_t device_bytes) noexcept {
  return 6 + blob_words(replica_bytes) + blob_words(device_bytes);
}

}  // namespace shoal::transport
