// transport/node_api_convert.cpp: see node_api_convert.hpp.
#include "transport/node_api_convert.hpp"

#include <capnp/any.h>

#include <bit>
#include <cstring>

namespace shoal::transport {

namespace {

// The bytes of a list of Float32 elements as laid out on the wire (packed little-endian IEEE
// floats), or an empty span when the list is laid out otherwise (a sender may write any list as a
// struct list, which readers must accept) or the host is not little-endian. A search's query is
// 784 floats: copying them one element at a time, each through capnp's bounds checks, cost about
// 6,000 instructions per call in the client and 12,000 in the daemon (callgrind, D55).
std::span<const std::uint8_t> float_bytes(capnp::List<float>::Reader list) {
  if constexpr (std::endian::native != std::endian::little) return {};
  capnp::AnyList::Reader any(list);
  if (any.getElementSize() != capnp::ElementSize::FOUR_BYTES) return {};
  auto raw = any.getRawBytes();
  if (raw.size() != std::size_t{list.size()} * sizeof(float)) return {};
  return {raw.begin(), raw.size()};
}

}  // namespace

void put_metadata(capnp::List<api::MetaField>::Builder list, const MetaFieldsWire& fields) {
  unsigned i = 0;
  for (const auto& [key, value] : fields) {
    auto f = list[i++];
    f.setKey(key);
    auto u = f.initValue();
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            u.setText(v);
          } else if constexpr (std::is_same_v<T, std::int64_t>) {
            u.setInt(v);
          } else if constexpr (std::is_same_v<T, double>) {
            u.setFloat(v);
          } else {
            u.setBool(v);
          }
        },
        value);
  }
}

MetaFieldsWire metadata_of(capnp::List<api::MetaField>::Reader list) {
  MetaFieldsWire m;
  m.reserve(list.size());
  for (auto f : list) {
    MetaValueWire v;
    auto u = f.getValue();
    switch (u.which()) {
      case api::MetaField::Value::TEXT: v = std::string(text_of(u.getText())); break;
      case api::MetaField::Value::INT: v = u.getInt(); break;
      case api::MetaField::Value::FLOAT: v = u.getFloat(); break;
      case api::MetaField::Value::BOOL: v = u.getBool(); break;
    }
    m.emplace_back(std::string(text_of(f.getKey())), std::move(v));
  }
  return m;
}

void put_floats(capnp::List<float>::Builder list, std::span<const float> values) {
  // The list was just made by initList (FOUR_BYTES, values.size() elements) in a message this
  // thread builds: its raw bytes are that builder's own writable segment memory.
  auto raw = float_bytes(list.asReader());
  if (!raw.empty() && raw.size() == values.size_bytes()) {
    std::memcpy(const_cast<std::uint8_t*>(raw.data()), values.data(), raw.size());
    return;
  }
  for (unsigned i = 0; i < values.size(); ++i) list.set(i, values[i]);
}

std::vector<float> floats_of(capnp::List<float>::Reader list) {
  std::vector<float> out;
  auto raw = float_bytes(list);
  if (!raw.empty()) {
    out.resize(list.size());
    std::memcpy(out.data(), raw.data(), raw.size());
    return out;
  }
  out.reserve(list.size());
  for (float x : list) out.push_back(x);
  return out;
}

void put_value(api::Value::Builder b, std::span<const float> vector, const MetaFieldsWire& metadata,
               const std::string& model) {
  put_floats(b.initVector(static_cast<unsigned>(vector.size())), vector);
  put_metadata(b.initMetadata(static_cast<unsigned>(metadata.size())), metadata);
  b.setModel(model);
}

ValueWire value_of(api::Value::Reader r) {
  ValueWire v;
  v.vector = floats_of(r.getVector());
  v.metadata = metadata_of(r.getMetadata());
  v.model.assign(text_of(r.getModel()));
  return v;
}

}  // namespace shoal::transport
