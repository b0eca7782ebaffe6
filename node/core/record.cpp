#include "node/core/record.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

#include "common/log.hpp"

namespace shoal::node {

static_assert(std::endian::native == std::endian::little,
              "payload encoding assumes a little-endian host; add byte swaps for big-endian");

std::string_view metric_name(Metric m) noexcept {
  switch (m) {
    case Metric::kL2: return "l2";
    case Metric::kInnerProduct: return "ip";
    case Metric::kCosine: return "cosine";
  }
  return "?";
}

Result<Metric> parse_metric(std::string_view text) {
  for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    if (text == metric_name(m)) return m;
  }
  return Status(Detail::kUnknownName,
                str_cat("unknown metric '", text, "'; expected l2, ip or cosine"));
}

const MetaValue* Metadata::find(std::string_view key) const noexcept {
  auto it = std::lower_bound(fields.begin(), fields.end(), key,
                             [](const auto& f, std::string_view k) { return f.first < k; });
  if (it == fields.end() || it->first != key) return nullptr;
  return &it->second;
}

void Metadata::normalize() {
  std::stable_sort(fields.begin(), fields.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<std::string, MetaValue>> out;
  out.reserve(fields.size());
  for (auto& f : fields) {
    if (!out.empty() && out.back().first == f.first) {
      out.back().second = std::move(f.second);
    } else {
      out.push_back(std::move(f));
    }
  }
  fields = std::move(out);
}

Status validate_collection_name(std::string_view name, const Limits& limits) {
  if (name.empty() || name.size() > limits.max_collection_name_bytes) {
    return Status(Detail::kTooLarge, str_cat("collection name must be 1..",
                                             limits.max_collection_name_bytes, " bytes, got ",
                                             name.size()));
  }
  if (name.front() == '.') {
    return Status(Detail::kMalformed, "collection name must not start with '.'");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) {
      return Status(Detail::kMalformed,
                    str_cat("collection name may hold only [A-Za-z0-9_.-], got byte 0x",
                            std::hex, static_cast<int>(static_cast<unsigned char>(c))));
    }
  }
  return {};
}

Status validate_record_id(std::string_view id, const Limits& limits) {
  if (id.empty() || id.size() > limits.max_id_bytes) {
    return Status(Detail::kTooLarge, str_cat("record id must be 1..", limits.max_id_bytes,
                                             " bytes, got ", id.size()));
  }
  if (id.find('\0') != std::string_view::npos) {
    return Status(Detail::kMalformed, "record id must not contain NUL bytes");
  }
  return {};
}

Status validate_vector(std::span<const float> v, std::uint32_t dimension, Metric metric) {
  if (v.size() != dimension) {
    return Status(Detail::kDimensionMismatch,
                  str_cat("vector has dimension ", v.size(), ", collection has ", dimension));
  }
  // NaN/Inf and the zero vector under cosine: the index's own check, so the node and the index
  // can never disagree on what a valid vector is.
  return index::validate_vector(v, dimension, to_index_metric(metric));
}

index::Metric to_index_metric(Metric m) noexcept {
  switch (m) {
    case Metric::kL2: return index::Metric::kL2;
    case Metric::kInnerProduct: return index::Metric::kInnerProduct;
    case Metric::kCosine: return index::Metric::kCosine;
  }
  return index::Metric::kL2;
}

namespace {

constexpr std::uint8_t kPayloadVersion = 1;

std::size_t value_size(const MetaValue& v) noexcept {
  switch (v.index()) {
    case 0: return 4 + std::get<0>(v).size();
    case 1: return 8;
    case 2: return 8;
    default: return 1;
  }
}

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

// Bounds-checked little-endian reader over untrusted bytes.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  template <typename T>
  bool get(T& v) {
    if (b_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool bytes(std::size_t n, std::string_view& out) {
    if (b_.size() - pos_ < n) return false;
    out = b_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  std::size_t pos() const { return pos_; }
  bool done() const { return pos_ == b_.size(); }

 private:
  std::string_view b_;
  std::size_t pos_ = 0;
};

Status malformed(const Reader& r, std::string_view what) {
  return Status(Detail::kMalformed, str_cat("record payload: ", what, " at byte ", r.pos()));
}

}  // namespace

std::size_t encoded_metadata_size(const Metadata& m) noexcept {
  std::size_t n = 2;
  for (const auto& [k, v] : m.fields) n += 2 + k.size() + 1 + value_size(v);
  return n;
}

Status validate_record(const RecordValue& r, std::uint32_t dimension, Metric metric,
                       const Limits& limits) {
  SHOAL_RETURN_IF_ERROR(validate_vector(r.vector, dimension, metric));
  if (r.model.size() > limits.max_model_tag_bytes) {
    return Status(Detail::kTooLarge, str_cat("model tag is ", r.model.size(), " bytes, limit ",
                                             limits.max_model_tag_bytes));
  }
  if (r.metadata.fields.size() > limits.max_metadata_keys) {
    return Status(Detail::kTooLarge, str_cat("metadata has ", r.metadata.fields.size(),
                                             " keys, limit ", limits.max_metadata_keys));
  }
  const std::size_t meta = encoded_metadata_size(r.metadata);
  if (meta > limits.max_metadata_bytes) {
    return Status(Detail::kTooLarge, str_cat("metadata encodes to ", meta, " bytes, limit ",
                                             limits.max_metadata_bytes));
  }
  for (std::size_t i = 0; i < r.metadata.fields.size(); ++i) {
    const auto& [k, v] = r.metadata.fields[i];
    if (k.empty() || k.size() > 0xffff) {
      return Status(Detail::kTooLarge, str_cat("metadata key must be 1..65535 bytes, got ",
                                               k.size()));
    }
    if (i > 0 && !(r.metadata.fields[i - 1].first < k)) {
      return Status(Detail::kMalformed,
                    str_cat("metadata keys must be unique and sorted; '", k, "' is out of order"));
    }
    if (const double* d = std::get_if<double>(&v); d != nullptr && !std::isfinite(*d)) {
      return Status(Detail::kNonFinite, str_cat("metadata '", k, "' is ", *d,
                                                "; only finite values are allowed"));
    }
  }
  return {};
}

std::string encode_payload(const RecordValue& r) {
  SHOAL_ASSERT(r.model.size() <= 0xffff && r.metadata.fields.size() <= 0xffff);
  std::string out;
  out.reserve(1 + 4 + r.vector.size() * 4 + 2 + r.model.size() +
              encoded_metadata_size(r.metadata));
  put<std::uint8_t>(out, kPayloadVersion);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(r.vector.size()));
  if (!r.vector.empty()) out.append(reinterpret_cast<const char*>(r.vector.data()), r.vector.size() * sizeof(float));
  put<std::uint16_t>(out, static_cast<std::uint16_t>(r.model.size()));
  out += r.model;
  put<std::uint16_t>(out, static_cast<std::uint16_t>(r.metadata.fields.size()));
  for (const auto& [k, v] : r.metadata.fields) {
    put<std::uint16_t>(out, static_cast<std::uint16_t>(k.size()));
    out += k;
    put<std::uint8_t>(out, static_cast<std::uint8_t>(v.index()));
    switch (v.index()) {
      case 0:
        put<std::uint32_t>(out, static_cast<std::uint32_t>(std::get<0>(v).size()));
        out += std::get<0>(v);
        break;
      case 1: put<std::int64_t>(out, std::get<1>(v)); break;
      case 2: put<double>(out, std::get<2>(v)); break;
      default: put<std::uint8_t>(out, std::get<3>(v) ? 1 : 0); break;
    }
  }
  return out;
}

Result<RecordValue> decode_payload(std::string_view bytes) {
  Reader r(bytes);
  std::uint8_t version = 0;
  if (!r.get(version)) return malformed(r, "empty payload");
  if (version != kPayloadVersion) {
    return Status(Detail::kVersionMismatch,
                  str_cat("record payload version ", int{version}, ", this build reads 1"));
  }
  RecordValue out;
  std::uint32_t dim = 0;
  if (!r.get(dim)) return malformed(r, "truncated dimension");
  std::string_view raw;
  if (dim > bytes.size() / 4 || !r.bytes(std::size_t{dim} * 4, raw)) {
    return malformed(r, str_cat("vector of dimension ", dim, " does not fit"));
  }
  out.vector.resize(dim);
  // memcpy with a null pointer is undefined even for 0 bytes (an empty vector has no data).
  if (!raw.empty()) std::memcpy(out.vector.data(), raw.data(), raw.size());
  std::uint16_t model_len = 0;
  std::string_view model;
  if (!r.get(model_len) || !r.bytes(model_len, model)) return malformed(r, "truncated model tag");
  out.model = std::string(model);
  std::uint16_t n = 0;
  if (!r.get(n)) return malformed(r, "truncated metadata count");
  out.metadata.fields.reserve(std::min<std::size_t>(n, bytes.size()));
  for (std::uint16_t i = 0; i < n; ++i) {
    std::uint16_t klen = 0;
    std::string_view key;
    std::uint8_t type = 0;
    if (!r.get(klen) || !r.bytes(klen, key) || !r.get(type)) {
      return malformed(r, "truncated metadata key");
    }
    if (key.empty() || (!out.metadata.fields.empty() && !(out.metadata.fields.back().first < key))) {
      return malformed(r, "metadata keys not sorted and unique");
    }
    MetaValue v;
    switch (type) {
      case 0: {
        std::uint32_t len = 0;
        std::string_view s;
        if (!r.get(len) || !r.bytes(len, s)) return malformed(r, "truncated string value");
        v = std::string(s);
        break;
      }
      case 1: {
        std::int64_t x = 0;
        if (!r.get(x)) return malformed(r, "truncated int value");
        v = x;
        break;
      }
      case 2: {
        double x = 0;
        if (!r.get(x)) return malformed(r, "truncated float value");
        v = x;
        break;
      }
      case 3: {
        std::uint8_t x = 0;
        if (!r.get(x) || x > 1) return malformed(r, "bad bool value");
        v = x == 1;
        break;
      }
      default: return malformed(r, str_cat("unknown metadata type ", int{type}));
    }
    out.metadata.fields.emplace_back(std::string(key), std::move(v));
  }
  if (!r.done()) return malformed(r, "trailing bytes");
  return out;
}

namespace {

// Compares two metadata values: numbers compare numerically across int and float; otherwise the
// types must match. Returns nullopt when they are not comparable.
std::optional<int> compare(const MetaValue& a, const MetaValue& b) noexcept {
  auto as_number = [](const MetaValue& v, double& out) {
    if (auto* i = std::get_if<std::int64_t>(&v)) { out = static_cast<double>(*i); return true; }
    if (auto* d = std::get_if<double>(&v)) { out = *d; return true; }
    return false;
  };
  if (a.index() == 1 && b.index() == 1) {
    auto x = std::get<1>(a), y = std::get<1>(b);
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  double x = 0, y = 0;
  if (as_number(a, x) && as_number(b, y)) return x < y ? -1 : (x > y ? 1 : 0);
  if (a.index() != b.index()) return std::nullopt;
  if (a.index() == 0) {
    int c = std::get<0>(a).compare(std::get<0>(b));
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  bool p = std::get<3>(a), q = std::get<3>(b);
  return p == q ? 0 : (p ? 1 : -1);
}

}  // namespace

bool Filter::matches(const Metadata& m) const noexcept {
  for (const auto& c : all) {
    const MetaValue* v = m.find(c.key);
    if (v == nullptr) return false;
    if (c.op == Condition::Op::kExists) continue;
    auto cmp = compare(*v, c.value);
    if (!cmp) {
      if (c.op == Condition::Op::kNe) continue;
      return false;
    }
    bool ok = false;
    switch (c.op) {
      case Condition::Op::kEq: ok = *cmp == 0; break;
      case Condition::Op::kNe: ok = *cmp != 0; break;
      case Condition::Op::kLt: ok = *cmp < 0; break;
      case Condition::Op::kLe: ok = *cmp <= 0; break;
      case Condition::Op::kGt: ok = *cmp > 0; break;
      case Condition::Op::kGe: ok = *cmp >= 0; break;
      case Condition::Op::kExists: ok = true; break;
    }
    if (!ok) return false;
  }
  return true;
}

namespace {

MetaValue parse_value(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
    return std::string(s.substr(1, s.size() - 2));
  }
  std::int64_t i = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return i;
  double d = 0;
  auto [q, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec2 == std::errc() && q == s.data() + s.size() && !s.empty() && std::isfinite(d)) return d;
  if (s == "true") return true;
  if (s == "false") return false;
  return std::string(s);
}

}  // namespace

Result<Filter> parse_filter(std::string_view text) {
  Filter f;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view cond = text.substr(start, end - start);
    start = end + 1;
    if (cond.empty()) {
      if (end == text.size() && f.all.empty() && text.empty()) break;
      return Status(Detail::kMalformed, str_cat("empty condition in filter '", text, "'"));
    }
    Condition c;
    if (cond.back() == '?') {
      c.key = std::string(cond.substr(0, cond.size() - 1));
      c.op = Condition::Op::kExists;
    } else {
      static constexpr std::pair<std::string_view, Condition::Op> kOps[] = {
          {"!=", Condition::Op::kNe}, {"<=", Condition::Op::kLe}, {">=", Condition::Op::kGe},
          {"=", Condition::Op::kEq},  {"<", Condition::Op::kLt},  {">", Condition::Op::kGt}};
      std::size_t best = std::string_view::npos;
      std::size_t best_len = 0;
      for (const auto& [tok, op] : kOps) {
        std::size_t p = cond.find(tok);
        if (p != std::string_view::npos && (p < best || (p == best && tok.size() > best_len))) {
          best = p;
          best_len = tok.size();
          c.op = op;
        }
      }
      if (best == std::string_view::npos) {
        return Status(Detail::kMalformed,
                      str_cat("condition '", cond, "' has no operator (= != < <= > >= or ?)"));
      }
      c.key = std::string(cond.substr(0, best));
      c.value = parse_value(cond.substr(best + best_len));
    }
    if (c.key.empty()) {
      return Status(Detail::kMalformed, str_cat("condition '", cond, "' has no key"));
    }
    f.all.push_back(std::move(c));
    if (end == text.size()) break;
  }
  return f;
}

}  // namespace shoal::node
