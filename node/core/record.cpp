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

Result<Metric> parse_metric(std::string_view text) {
  for (Metric m : index::kAllMetrics) {
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

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid; on 0, `*bad_len`
// is the length of the maximal invalid subpart (at least 1), which U+FFFD replaces as a whole.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t* bad_len) noexcept {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = at(i);
  *bad_len = 1;
  if (b0 < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    if (b0 == 0xe0) lo = 0xa0;  // no overlong forms
    if (b0 == 0xed) hi = 0x9f;  // no surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    if (b0 == 0xf0) lo = 0x90;  // no overlong forms
    if (b0 == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  for (std::size_t k = 1; k < len; ++k) {
    if (i + k >= s.size()) return 0;
    const unsigned char b = at(i + k);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xbf);
    if (!ok) return 0;
    *bad_len = k + 1;  // the valid prefix so far, should a later byte fail
  }
  return len;
}

}  // namespace

std::optional<std::size_t> find_invalid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t bad = 0;
    const std::size_t n = utf8_sequence(s, i, &bad);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

std::string to_valid_utf8(std::string_view s) {
  if (!find_invalid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t bad = 0;
    const std::size_t n = utf8_sequence(s, i, &bad);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      i += bad;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string escape_for_message(std::string_view s, std::size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  std::size_t i = 0;
  while (i < s.size() && i < max_bytes) {
    std::size_t bad = 0;
    const std::size_t n = utf8_sequence(s, i, &bad);
    const auto b = static_cast<unsigned char>(s[i]);
    if (n == 0 || (n == 1 && (b < 0x20 || b == 0x7f))) {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0xf];
      i += 1;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  if (i < s.size()) out += "...";
  return out;
}

Status validate_utf8(std::string_view field, std::string_view value) {
  const auto bad = find_invalid_utf8(value);
  if (!bad) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  const auto b = static_cast<unsigned char>(value[*bad]);
  return Status(Detail::kMalformed,
                str_cat(field, " must be valid UTF-8; byte 0x", kHex[b >> 4], kHex[b & 0xf],
                        " at offset ", *bad, " of ", value.size(), " is not (value '",
                        escape_for_message(value), "')"));
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

Status validate_record_id_for_lookup(std::string_view id, const Limits& limits) {
  if (id.empty() || id.size() > limits.max_id_bytes) {
    return Status(Detail::kTooLarge, str_cat("record id must be 1..", limits.max_id_bytes,
                                             " bytes, got ", id.size()));
  }
  if (id.find('\0') != std::string_view::npos) {
    return Status(Detail::kMalformed, "record id must not contain NUL bytes");
  }
  return {};
}

Status validate_record_id(std::string_view id, const Limits& limits) {
  SHOAL_RETURN_IF_ERROR(validate_record_id_for_lookup(id, limits));
  if (limits.accept_invalid_utf8_for_testing) return {};
  return validate_utf8("record id", id);
}

Status validate_vector(std::span<const float> v, std::uint32_t dimension, Metric metric) {
  if (v.size() != dimension) {
    return Status(Detail::kDimensionMismatch,
                  str_cat("vector has dimension ", v.size(), ", collection has ", dimension));
  }
  // NaN/Inf and the zero vector under cosine: the index's own check, so the node and the index
  // can never disagree on what a valid vector is.
  return index::check_vector(v, dimension, metric);
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
  std::string_view whole() const { return b_; }

 private:
  std::string_view b_;
  std::size_t pos_ = 0;
};

Status malformed(const Reader& r, std::string_view what) {
  return Status(Detail::kMalformed, str_cat("record payload: ", what, " at byte ", r.pos()));
}

// The part after the vector (model tag and metadata), shared by payloads and stubs.
Status decode_fields(Reader& r, RecordValue& out);

}  // namespace

std::size_t encoded_metadata_size(const Metadata& m) noexcept {
  std::size_t n = 2;
  for (const auto& [k, v] : m.fields) n += 2 + k.size() + 1 + value_size(v);
  return n;
}

namespace {
// validate_record's checks of everything but the vector (stubs have none).
Status validate_fields(const RecordValue& r, const Limits& limits);
}  // namespace

Status validate_record(const RecordValue& r, std::uint32_t dimension, Metric metric,
                       const Limits& limits) {
  SHOAL_RETURN_IF_ERROR(validate_vector(r.vector, dimension, metric));
  return validate_fields(r, limits);
}

Status validate_stub(const StubPayload& stub, std::uint32_t dimension, const Limits& limits) {
  if (stub.dimension != dimension) {
    return Status(Detail::kDimensionMismatch,
                  str_cat("evicted record's stub has dimension ", stub.dimension, ", collection has ", dimension));
  }
  return validate_fields(stub.value, limits);
}

namespace {
Status validate_fields(const RecordValue& r, const Limits& limits) {
  if (r.model.size() > limits.max_model_tag_bytes) {
    return Status(Detail::kTooLarge, str_cat("model tag is ", r.model.size(), " bytes, limit ",
                                             limits.max_model_tag_bytes));
  }
  if (!limits.accept_invalid_utf8_for_testing) SHOAL_RETURN_IF_ERROR(validate_utf8("model tag", r.model));
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
      return Status(Detail::kMalformed, str_cat("metadata keys must be unique and sorted; '",
                                                escape_for_message(k), "' is out of order"));
    }
    if (const double* d = std::get_if<double>(&v); d != nullptr && !std::isfinite(*d)) {
      return Status(Detail::kNonFinite, str_cat("metadata '", escape_for_message(k), "' is ", *d,
                                                "; only finite values are allowed"));
    }
    if (!limits.accept_invalid_utf8_for_testing) {
      SHOAL_RETURN_IF_ERROR(validate_utf8("metadata key", k));
      if (const auto* str = std::get_if<std::string>(&v)) {
        SHOAL_RETURN_IF_ERROR(validate_utf8(str_cat("metadata value of key '", escape_for_message(k), "'"), *str));
      }
    }
  }
  return {};
}
}  // namespace

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
  SHOAL_RETURN_IF_ERROR(decode_fields(r, out));
  return out;
}

namespace {

Status decode_fields(Reader& r, RecordValue& out) {
  const std::string_view bytes = r.whole();
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
  return {};
}

}  // namespace

bool is_stub_payload(std::string_view bytes) noexcept {
  return !bytes.empty() && static_cast<std::uint8_t>(bytes[0]) == kStubPayloadVersion;
}

Result<std::string> make_stub_payload(std::string_view full, const PayloadDigest& digest) {
  Reader r(full);
  std::uint8_t version = 0;
  std::uint32_t dim = 0;
  std::string_view raw;
  if (!r.get(version) || version != kPayloadVersion || !r.get(dim) || dim > full.size() / 4 ||
      !r.bytes(std::size_t{dim} * 4, raw)) {
    return Status(Detail::kMalformed, "only a version 1 payload with its vector can be evicted");
  }
  std::string out;
  out.reserve(full.size() - raw.size() + digest.size());
  put<std::uint8_t>(out, kStubPayloadVersion);
  put<std::uint32_t>(out, dim);
  out.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  out.append(full.substr(r.pos()));
  return out;
}

Result<StubPayload> decode_stub_payload(std::string_view bytes) {
  Reader r(bytes);
  std::uint8_t version = 0;
  if (!r.get(version)) return malformed(r, "empty payload");
  if (version != kStubPayloadVersion) {
    return Status(Detail::kVersionMismatch, str_cat("stub payload version ", int{version}, ", expected 2"));
  }
  StubPayload out;
  std::string_view digest;
  if (!r.get(out.dimension)) return malformed(r, "truncated dimension");
  if (!r.bytes(out.digest.size(), digest)) return malformed(r, "truncated payload digest");
  std::memcpy(out.digest.data(), digest.data(), digest.size());
  SHOAL_RETURN_IF_ERROR(decode_fields(r, out.value));
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

// Bytes that end a bare key or value: whitespace is allowed only between the words of one.
bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_bare(char c) noexcept {
  const auto b = static_cast<unsigned char>(c);
  if (b < 0x20 || b == 0x7f || is_space(c)) return false;
  switch (c) {
    case '"': case '\\': case ',': case '=': case '!': case '<': case '>': case '?': return false;
    default: return true;
  }
}

// The type of a bare value: int, then finite float, then true/false, else string.
MetaValue type_bare_value(std::string_view s) {
  std::int64_t i = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (ec == std::errc() && p == s.data() + s.size()) return i;
  double d = 0;
  auto [q, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec2 == std::errc() && q == s.data() + s.size() && std::isfinite(d)) return d;
  if (s == "true") return true;
  if (s == "false") return false;
  return std::string(s);
}

// A recursive-descent parser of the filter grammar (docs/api.md). Each method consumes its
// production or fails with the byte offset of the first byte it cannot accept.
class FilterParser {
 public:
  explicit FilterParser(std::string_view text) : t_(text) {}

  Result<Filter> parse(std::size_t* error_offset_or_null) {
    Filter f;
    Status s = parse_into(f);
    if (!s.ok()) {
      if (error_offset_or_null != nullptr) *error_offset_or_null = error_at_;
      return s;
    }
    return f;
  }

 private:
  Status fail(std::size_t at, std::string what) {
    error_at_ = at;
    return Status(Detail::kMalformed, str_cat("filter: ", what, " at byte ", at));
  }
  bool done() const noexcept { return pos_ >= t_.size(); }
  char peek() const noexcept { return done() ? '\0' : t_[pos_]; }
  void skip_space() noexcept {
    while (!done() && is_space(t_[pos_])) ++pos_;
  }
  // What stands at the current position, for messages.
  std::string seen() const {
    if (done()) return "the end of the filter";
    return str_cat("'", escape_for_message(t_.substr(pos_, 1), 1), "'");
  }

  Status parse_into(Filter& f) {
    skip_space();
    if (done()) return {};  // empty or blank: no conditions
    for (;;) {
      Condition c;
      SHOAL_RETURN_IF_ERROR(parse_condition(c));
      f.all.push_back(std::move(c));
      skip_space();
      if (done()) return {};
      if (peek() != ',') return fail(pos_, str_cat("expected ',' or the end of the filter, got ", seen()));
      ++pos_;
      skip_space();
      if (done() || peek() == ',') return fail(pos_, str_cat("expected a condition after ',', got ", seen()));
    }
  }

  Status parse_condition(Condition& c) {
    const std::size_t key_at = pos_;
    SHOAL_RETURN_IF_ERROR(parse_text("key", c.key, nullptr));
    if (c.key.empty()) return fail(key_at, "empty key \"\"");
    skip_space();
    if (peek() == '?') {
      ++pos_;
      c.op = Condition::Op::kExists;
      return {};
    }
    const std::size_t op_at = pos_;
    const char a = peek();
    const char b = pos_ + 1 < t_.size() ? t_[pos_ + 1] : '\0';
    if (a == '=') {
      c.op = Condition::Op::kEq;
      pos_ += 1;
    } else if (a == '!' && b == '=') {
      c.op = Condition::Op::kNe;
      pos_ += 2;
    } else if (a == '<') {
      c.op = b == '=' ? Condition::Op::kLe : Condition::Op::kLt;
      pos_ += b == '=' ? 2 : 1;
    } else if (a == '>') {
      c.op = b == '=' ? Condition::Op::kGe : Condition::Op::kGt;
      pos_ += b == '=' ? 2 : 1;
    } else {
      return fail(op_at, str_cat("expected an operator (= != < <= > >=) or '?' after key '",
                                 escape_for_message(c.key), "', got ", seen()));
    }
    skip_space();
    bool quoted = false;
    std::string text;
    SHOAL_RETURN_IF_ERROR(parse_text("value", text, &quoted));
    c.value = quoted ? MetaValue(std::move(text)) : type_bare_value(text);
    return {};
  }

  // A quoted string or a bare run of words (inner whitespace kept, outer whitespace not).
  // `quoted_or_null` learns which it was; a key does not care.
  Status parse_text(std::string_view what, std::string& out, bool* quoted_or_null) {
    const std::size_t start = pos_;
    if (peek() == '"') {
      if (quoted_or_null != nullptr) *quoted_or_null = true;
      ++pos_;
      for (;;) {
        if (done()) return fail(start, str_cat("unterminated quoted ", what, " (no closing '\"')"));
        const char c = t_[pos_];
        if (c == '"') {
          ++pos_;
          break;
        }
        if (c == '\\') {
          const char e = pos_ + 1 < t_.size() ? t_[pos_ + 1] : '\0';
          if (e != '"' && e != '\\') {
            return fail(pos_, "unknown escape in a quoted string (only \\\" and \\\\ are allowed)");
          }
          out += e;
          pos_ += 2;
          continue;
        }
        std::size_t bad = 0;
        const std::size_t n = utf8_sequence(t_, pos_, &bad);
        if (n == 0) return fail(pos_, str_cat("quoted ", what, " is not valid UTF-8"));
        out.append(t_.substr(pos_, n));
        pos_ += n;
      }
      return {};
    }
    std::size_t end = pos_;  // the end of the last word
    while (!done()) {
      const char c = t_[pos_];
      if (is_space(c)) {
        std::size_t next = pos_;
        while (next < t_.size() && is_space(t_[next])) ++next;
        if (next < t_.size() && is_bare(t_[next])) {
          pos_ = next;  // inner whitespace: the run goes on
          continue;
        }
        break;
      }
      if (!is_bare(c)) break;
      std::size_t bad = 0;
      const std::size_t n = utf8_sequence(t_, pos_, &bad);
      if (n == 0) return fail(pos_, str_cat(what, " is not valid UTF-8"));
      pos_ += n;
      end = pos_;
    }
    if (end == start) return fail(start, str_cat("expected a ", what, ", got ", seen()));
    out = std::string(t_.substr(start, end - start));
    return {};
  }

  std::string_view t_;
  std::size_t pos_ = 0;
  std::size_t error_at_ = 0;
};

}  // namespace

Result<Filter> parse_filter(std::string_view text, std::size_t* error_offset_or_null) {
  return FilterParser(text).parse(error_offset_or_null);
}

}  // namespace shoal::node
