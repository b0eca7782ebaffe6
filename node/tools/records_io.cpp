// node/tools/records_io.cpp: see records_io.hpp.
#include "node/tools/records_io.hpp"

#include <nlohmann/json.hpp>

#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/assert.hpp"
#include "common/hex.hpp"
#include "crdt/entries.hpp"
#include "node/core/node_format.hpp"
#include "node/core/record.hpp"
#include "node/core/vector_store.hpp"
#include "node/store/lmdb_store.hpp"

namespace shoal::node::tools {

using nlohmann::json;
using store::Table;

namespace {

json metadata_to_json(const Metadata& m) {
  json out = json::object();
  for (const auto& [k, v] : m.fields) {
    std::visit([&](const auto& x) { out[to_valid_utf8(k)] = x; }, v);
  }
  return out;
}

// The collection's local id, the way Node finds it: its row in the catalogue table, and its name
// live in the replicated catalogue (meta/node.catalogue; a directory from before that key holds
// only live collections).
Result<std::uint32_t> collection_id(store::ReadTxn& txn, const std::string& name) {
  auto replicated = txn.get(Table::kMeta, format::kCatalogueKey);
  if (replicated.ok()) {
    SHOAL_ASSIGN_OR_RETURN(auto catalogue, format::decode_catalogue(*replicated));
    if (catalogue.find(name) == nullptr) {
      return Status(Detail::kNoSuchCollection, str_cat("no collection '", name, "'"));
    }
  } else if (replicated.status().code() != Code::kNotFound) {
    return replicated.status();
  }
  auto row = txn.get(Table::kCatalogue, name);
  if (!row.ok()) {
    if (row.status().code() == Code::kNotFound) {
      return Status(Detail::kNoSuchCollection, str_cat("no collection '", name, "'"));
    }
    return row.status();
  }
  SHOAL_ASSIGN_OR_RETURN(auto spec, format::decode_spec(name, *row));
  return spec.second;
}

Result<MetaValue> meta_value(const json& v, const std::string& key, std::uint64_t line) {
  if (v.is_string()) return MetaValue{v.get<std::string>()};
  if (v.is_boolean()) return MetaValue{v.get<bool>()};
  if (v.is_number_integer()) return MetaValue{v.get<std::int64_t>()};
  if (v.is_number_float()) return MetaValue{v.get<double>()};
  return Status(Detail::kMalformed, str_cat("line ", line, ": metadata value of key '", key,
                                            "' must be a string, number or boolean, got ", v.type_name()));
}

// Why a line is not a JSON object, as precisely as the user can act on: bytes that are not UTF-8
// (JSON text is UTF-8), JSON that does not parse (with the byte where it stops), or valid JSON of
// another type.
Status not_an_object(const std::string& text, std::uint64_t line, const char* what = "not a JSON object") {
  if (auto bad = find_invalid_utf8(text)) {
    return Status(Detail::kMalformed,
                  str_cat("line ", line, ": ", what, ": byte 0x", common::to_hex(std::string_view(text).substr(*bad, 1)),
                          " at offset ", *bad, " is not valid UTF-8"));
  }
  try {
    const json j = json::parse(text);
    return Status(Detail::kMalformed, str_cat("line ", line, ": ", what, ", got ", j.type_name()));
  } catch (const json::parse_error& e) {
    // e.byte counts from 1, and points one past the end when the text ends early.
    const std::size_t at = e.byte == 0 ? 0 : e.byte - 1;
    return Status(Detail::kMalformed, str_cat("line ", line, ": ", what, ": invalid JSON at offset ",
                                              std::min(at, text.size()), " of ", text.size()));
  }
}

Result<RecordInput> parse_line(const std::string& text, std::uint64_t line, const std::string& model) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return not_an_object(text, line);
  RecordInput r;
  auto id = j.find("id");
  if (id == j.end() || !id->is_string()) {
    return Status(Detail::kMalformed, str_cat("line ", line, ": \"id\" must be a string"));
  }
  r.id = id->get<std::string>();
  auto vec = j.find("vector");
  if (vec == j.end() || !vec->is_array()) {
    return Status(Detail::kMalformed, str_cat("line ", line, ": \"vector\" must be an array of numbers"));
  }
  r.value.vector.reserve(vec->size());
  for (const auto& x : *vec) {
    if (!x.is_number()) {
      return Status(Detail::kMalformed, str_cat("line ", line, ": vector component ", r.value.vector.size(),
                                                " is not a number"));
    }
    r.value.vector.push_back(x.get<float>());
  }
  if (auto meta = j.find("metadata"); meta != j.end() && !meta->is_null()) {
    if (!meta->is_object()) {
      return Status(Detail::kMalformed, str_cat("line ", line, ": \"metadata\" must be an object"));
    }
    for (const auto& [k, v] : meta->items()) {
      SHOAL_ASSIGN_OR_RETURN(auto value, meta_value(v, k, line));
      r.value.metadata.fields.emplace_back(k, std::move(value));
    }
    r.value.metadata.normalize();
  }
  r.value.model = model;
  if (auto m = j.find("model"); m != j.end() && !m->is_null()) {
    if (!m->is_string()) return Status(Detail::kMalformed, str_cat("line ", line, ": \"model\" must be a string"));
    r.value.model = m->get<std::string>();
  }
  return r;
}

}  // namespace

namespace {

// The store's records, read in place (export without a daemon): one read transaction, no index.
class StoreExport final : public ExportSource {
 public:
  static Result<std::unique_ptr<ExportSource>> open(const std::string& data_dir, const std::string& collection) {
    const std::string store_path = data_dir + "/store";
    if (!std::filesystem::exists(store_path + "/data.mdb")) {
      return Status(Code::kNotFound, "no data directory here; create it with 'shoal init'", data_dir);
    }
    auto out = std::make_unique<StoreExport>();
    store::LmdbStoreOptions options;
    options.path = store_path;
    SHOAL_ASSIGN_OR_RETURN(out->store_, store::LmdbStore::open(options));
    SHOAL_ASSIGN_OR_RETURN(out->txn_, out->store_->begin_read());
    SHOAL_ASSIGN_OR_RETURN(out->cid_, collection_id(*out->txn_, collection));
    SHOAL_ASSIGN_OR_RETURN(const std::string spec_row, out->txn_->get(Table::kCatalogue, collection));
    SHOAL_ASSIGN_OR_RETURN(auto spec, format::decode_spec(collection, spec_row));
    out->dim_ = spec.first.dimension;
    return std::unique_ptr<ExportSource>(std::move(out));
  }

  std::size_t dim() const override { return dim_; }

  Status for_each(const Visit& visit) override {
    Status error;
    SHOAL_RETURN_IF_ERROR(txn_->scan(
        Table::kRecords, store::Range::prefix(format::collection_prefix(cid_)),
        [&](std::string_view key, std::string_view value) {
          auto rec = format::read_record(*txn_, cid_, key, value);
          if (!rec.ok()) {
            error = rec.status();
            return false;
          }
          const crdt::Entry* win = crdt::winner(rec->entries);
          if (win == nullptr) return true;  // no value: nothing to export
          auto v = format::decode_entry_payload(*win);
          if (!v.ok()) {
            error = v.status();
            return false;
          }
          const std::string_view id = format::id_of_record_key(key);
          if (v->vector.empty()) {  // a stub: the vector was evicted to the sink, which only a daemon reaches
            error = Status(Detail::kColdUnavailable,
                           str_cat("record '", escape_for_message(id),
                                   "' is evicted to the cold-tier sink, and an export from the data directory (-d) "
                                   "cannot fetch it: export through the running shoald (--connect), which refills "
                                   "it from its sink"));
            return false;
          }
          return visit(id, *v, error);
        }));
    return error;
  }

 private:
  std::unique_ptr<store::LmdbStore> store_;
  std::unique_ptr<store::ReadTxn> txn_;
  std::uint32_t cid_ = 0;
  std::size_t dim_ = 0;
};

// A running daemon's records, a page (Backend::records_after) at a time.
class DaemonExport final : public ExportSource {
 public:
  DaemonExport(capi::Backend& db, std::string collection, std::size_t dim)
      : db_(db), collection_(std::move(collection)), dim_(dim) {}

  std::size_t dim() const override { return dim_; }

  Status for_each(const Visit& visit) override {
    std::string after;
    for (;;) {
      // A page as large as the daemon gives (it caps the count and the bytes).
      SHOAL_ASSIGN_OR_RETURN(auto page, db_.records_after(collection_, after, 1024));
      Status error;
      for (const auto& r : page.records) {
        if (r.value.vector.empty()) {
          // A stub (no whole record lacks a vector): the daemon refills it from its sink, or the
          // export stops here naming it, rather than write a record without its vector.
          SHOAL_ASSIGN_OR_RETURN(auto refilled, refill(r.id));
          if (!refilled) continue;  // deleted since the page was read
          if (!visit(r.id, *refilled, error)) return error;
          continue;
        }
        if (!visit(r.id, r.value, error)) return error;
      }
      if (!page.more || page.records.empty()) return {};
      after = page.records.back().id;
    }
  }

 private:
  // An evicted record's value from the daemon's get (which refills it from the sink); nullopt
  // when the record was deleted since. Statuses: the get's, and its cold status when the daemon
  // could not refill it (kColdUnavailable, kChecksumMismatch), naming the record.
  Result<std::optional<RecordValue>> refill(const std::string& id) {
    auto got = db_.get(collection_, id);
    if (!got.ok()) {
      if (got.status().detail() == Detail::kNoSuchRecord) return std::optional<RecordValue>();
      return got.status();
    }
    if (!got->cold.ok()) {
      return got->cold.with_context(str_cat("export stopped at record '", escape_for_message(id),
                                            "': its vector is in the cold-tier sink only"));
    }
    return std::optional<RecordValue>(std::move(got->record.siblings.at(0).value));
  }

  capi::Backend& db_;
  std::string collection_;
  std::size_t dim_;
};

}  // namespace

Result<std::unique_ptr<ExportSource>> open_store_export(const std::string& data_dir, const std::string& collection) {
  return StoreExport::open(data_dir, collection);
}

Result<std::unique_ptr<ExportSource>> open_daemon_export(capi::Backend& db, const std::string& collection) {
  SHOAL_ASSIGN_OR_RETURN(const CollectionInfo info, db.collection_info(collection));
  return std::unique_ptr<ExportSource>(std::make_unique<DaemonExport>(db, collection, info.spec.dimension));
}

Result<std::uint64_t> export_jsonl(ExportSource& source, std::ostream& out) {
  std::uint64_t written = 0;
  SHOAL_RETURN_IF_ERROR(source.for_each([&](std::string_view id, const RecordValue& v, Status& error) {
    json line{{"id", to_valid_utf8(id)}, {"vector", v.vector}, {"metadata", metadata_to_json(v.metadata)}};
    if (!v.model.empty()) line["model"] = to_valid_utf8(v.model);
    out << line.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    if (!out) {
      error = Status(Code::kIo, "writing the export failed");
      return false;
    }
    ++written;
    return true;
  }));
  out.flush();
  if (!out) return Status(Code::kIo, "writing the export failed");
  return written;
}

// --- .npy -------------------------------------------------------------------------------------

namespace {

// The dict of a .npy header, parsed strictly: a Python dict literal of quoted keys whose values
// are quoted strings, True/False or tuples of integers, spaces between tokens (what NumPy
// writes; a header is machine-written, so nothing more of Python's syntax is accepted).
class NpyDict {
 public:
  explicit NpyDict(std::string_view text) : s_(text) {}

  Status parse(std::string& descr, std::string& fortran, std::vector<std::uint64_t>& shape, bool& have_shape) {
    space();
    if (!eat('{')) return error("it does not begin with '{'");
    bool have_descr = false, have_fortran = false;
    have_shape = false;
    space();
    while (!eat('}')) {
      std::string key;
      if (!quoted(key)) return error("a key is not a quoted string");
      space();
      if (!eat(':')) return error(str_cat("no ':' after the key '", key, "'"));
      space();
      if (key == "descr") {
        if (have_descr) return error("the key 'descr' appears twice");
        if (!quoted(descr)) return error("'descr' is not a quoted string (a structured dtype?)");
        have_descr = true;
      } else if (key == "fortran_order") {
        if (have_fortran) return error("the key 'fortran_order' appears twice");
        if (!word(fortran)) return error("'fortran_order' is not True or False");
        have_fortran = true;
      } else if (key == "shape") {
        if (have_shape) return error("the key 'shape' appears twice");
        if (!tuple(shape)) return error("'shape' is not a tuple of integers");
        have_shape = true;
      } else {
        return error(str_cat("unknown key '", escape_for_message(key), "' (a .npy header has 'descr', "
                             "'fortran_order' and 'shape' only)"));
      }
      space();
      if (eat(',')) {
        space();
        continue;
      }
      space();
      if (i_ < s_.size() && s_[i_] == '}') continue;
      return error("entries are not separated by ','");
    }
    // Padding: spaces, then the final newline, and nothing else.
    space();
    if (i_ + 1 != s_.size() || s_[i_] != '\n') return error("the dict is not followed by spaces and one final newline");
    if (!have_descr) return error("no 'descr'");
    if (!have_fortran) return error("no 'fortran_order'");
    if (!have_shape) return error("no 'shape'");
    return {};
  }

 private:
  Status error(const std::string& why) const {
    return Status(Detail::kMalformed, str_cat(".npy header dict at byte ", i_, ": ", why, "; the header is '",
                                              escape_for_message(s_, 200), "'"));
  }
  void space() {
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
  }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool quoted(std::string& out) {
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) return false;
    const char q = s_[i_];
    const auto end = s_.find(q, i_ + 1);
    if (end == std::string_view::npos) return false;
    const std::string_view body = s_.substr(i_ + 1, end - i_ - 1);
    if (body.find('\\') != std::string_view::npos) return false;  // no escapes in what NumPy writes
    out.assign(body);
    i_ = end + 1;
    return true;
  }
  bool word(std::string& out) {
    const auto b = i_;
    while (i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_])) != 0) ++i_;
    out.assign(s_.substr(b, i_ - b));
    return !out.empty();
  }
  bool tuple(std::vector<std::uint64_t>& out) {
    out.clear();
    if (!eat('(')) return false;
    space();
    while (!eat(')')) {
      const auto b = i_;
      std::uint64_t v = 0;
      const auto [p, ec] = std::from_chars(s_.data() + i_, s_.data() + s_.size(), v);
      if (ec != std::errc{} || p == s_.data() + b) return false;
      i_ = static_cast<std::size_t>(p - s_.data());
      // Python 2's long suffix, which NumPy wrote for large shapes under Python 2.
      if (i_ < s_.size() && s_[i_] == 'L') ++i_;
      out.push_back(v);
      space();
      if (eat(',')) {
        space();
        continue;
      }
      if (i_ < s_.size() && s_[i_] == ')') continue;
      return false;
    }
    return true;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) out += str_cat(i ? ", " : "", shape[i]);
  if (shape.size() == 1) out += ",";
  return out + ")";
}

}  // namespace

Result<NpyShape> read_npy_header(ByteReader& in) {
  const std::string& path = in.path();
  std::uint8_t head[8] = {};
  SHOAL_ASSIGN_OR_RETURN(const std::size_t got, in.read(head, 8));
  if (got < 8 || std::memcmp(head, "\x93NUMPY", 6) != 0) {
    std::string seen;
    for (std::size_t i = 0; i < got; ++i) {
      char b[4];
      std::snprintf(b, sizeof b, "%02x", head[i]);
      seen += str_cat(i ? " " : "", b);
    }
    return Status(Detail::kMalformed, str_cat("not a .npy file: it must start with 93 4e 55 4d 50 59, but it starts "
                                              "with '", seen, "'"), path);
  }
  const int major = head[6], minor = head[7];
  if (major < 1 || major > 3 || minor != 0) {
    return Status(Detail::kVersionMismatch,
                  str_cat(".npy format version ", major, ".", minor, " is not supported (1.0, 2.0 and 3.0 are)"), path);
  }
  // The header length: u16 little-endian in version 1, u32 in 2 and 3.
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  std::uint8_t l[4] = {};
  SHOAL_ASSIGN_OR_RETURN(const std::size_t gl, in.read(l, len_bytes));
  if (gl < len_bytes) return Status(Detail::kMalformed, ".npy file ends inside its header length", path);
  std::size_t header_len = std::size_t{l[0]} | (std::size_t{l[1]} << 8);
  if (major > 1) header_len |= (std::size_t{l[2]} << 16) | (std::size_t{l[3]} << 24);
  if (header_len > kMaxNpyHeaderBytes) {
    return Status(Detail::kTooLarge, str_cat(".npy header length ", header_len, " is above the limit of ",
                                             kMaxNpyHeaderBytes, " bytes"), path);
  }
  const std::size_t data_offset = 6 + 2 + len_bytes + header_len;
  if (data_offset % 16 != 0) {
    return Status(Detail::kMalformed, str_cat(".npy header length ", header_len, " puts the data at byte ",
                                              data_offset, ", which is not a multiple of 16 (NumPy pads it to 64)"),
                  path);
  }
  std::string h(header_len, '\0');
  SHOAL_ASSIGN_OR_RETURN(const std::size_t gh, in.read(h.data(), header_len));
  if (gh < header_len) {
    return Status(Detail::kMalformed, str_cat(".npy file ends after ", gh, " of the ", header_len,
                                              " header bytes its length field announces"), path);
  }
  std::string descr, fortran;
  std::vector<std::uint64_t> shape;
  bool have_shape = false;
  if (Status st = NpyDict(h).parse(descr, fortran, shape, have_shape); !st.ok()) return st.with_context(path);
  if (descr != "<f4") {
    return Status(Detail::kMalformed, str_cat(".npy dtype '", escape_for_message(descr),
                                              "' is not supported: export little-endian float32 ('<f4', "
                                              "numpy: a.astype('<f4'))"), path);
  }
  if (fortran != "False") {
    return Status(Detail::kMalformed, str_cat(".npy fortran_order ", escape_for_message(fortran),
                                              " is not supported: only C order (numpy: np.ascontiguousarray(a))"),
                  path);
  }
  if (shape.size() != 2) {
    return Status(Detail::kMalformed, str_cat(".npy shape ", shape_text(shape), " is not (n, d): a 2-d array of n "
                                              "vectors of d components is needed"), path);
  }
  if (shape[1] == 0 || shape[1] > 65536) {
    return Status(Detail::kOutOfRange, str_cat(".npy shape ", shape_text(shape), ": the dimension ", shape[1],
                                               " is outside 1..65536"), path);
  }
  if (shape[0] > (std::numeric_limits<std::uint64_t>::max() - data_offset) / (shape[1] * sizeof(float))) {
    return Status(Detail::kOutOfRange, str_cat(".npy shape ", shape_text(shape), " counts more bytes than a file can "
                                               "hold"), path);
  }
  return NpyShape{shape[0], static_cast<std::size_t>(shape[1])};
}

std::string npy_header(std::uint64_t rows, std::size_t dim) {
  std::string dict = str_cat("{'descr': '<f4', 'fortran_order': False, 'shape': (", rows, ", ", dim, "), }");
  const std::size_t fixed = 6 + 2 + 2;  // magic, version, u16 length
  std::string out("\x93NUMPY\x01\x00", 8);
  const std::size_t header_len = kNpyHeaderBytes - fixed;
  SHOAL_ASSERT(dict.size() + 1 <= header_len);
  dict.append(header_len - dict.size() - 1, ' ');
  dict += '\n';
  out += static_cast<char>(header_len & 0xff);
  out += static_cast<char>(header_len >> 8);
  return out + dict;
}

namespace {

// One output file written at NAME.tmp and renamed over NAME by commit(); removed if not committed.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {}
  ~TempFile() {
    if (!committed_) {
      out_.close();
      std::error_code ec;
      std::filesystem::remove(tmp_, ec);
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  Status open() {
    out_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!out_) return Status(Code::kIo, str_cat("cannot create ", tmp_, ": ", std::strerror(errno)), path_);
    return {};
  }
  std::ofstream& out() { return out_; }
  Status check() const {
    if (!out_) return Status(Code::kIo, "writing the export failed", path_);
    return {};
  }
  // Flushes and closes; then rename() makes it visible under its name.
  Status close() {
    out_.flush();
    SHOAL_RETURN_IF_ERROR(check());
    out_.close();
    if (out_.fail()) return Status(Code::kIo, "closing the export failed", path_);
    return {};
  }
  Status commit() {
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) return Status(Code::kIo, str_cat("cannot rename ", tmp_, ": ", ec.message()), path_);
    committed_ = true;
    return {};
  }

 private:
  std::string path_, tmp_;
  std::ofstream out_;
  bool committed_ = false;
};

}  // namespace

Result<NpyExportReport> export_npy(ExportSource& source, const NpyExportFiles& files) {
  if (files.vectors == files.ids || files.vectors == files.metadata || files.ids == files.metadata) {
    return Status(Detail::kOutOfRange, str_cat("the vectors, ids and metadata files must differ, got '", files.vectors,
                                               "', '", files.ids, "' and '", files.metadata, "'"));
  }
  NpyExportReport report;
  report.dim = source.dim();

  TempFile vectors(files.vectors), ids(files.ids), metadata(files.metadata);
  SHOAL_RETURN_IF_ERROR(vectors.open());
  SHOAL_RETURN_IF_ERROR(ids.open());
  SHOAL_RETURN_IF_ERROR(metadata.open());
  // The row count is not known before the scan: a header of the final length now, rewritten at
  // the end with the count.
  vectors.out() << npy_header(0, report.dim);
  bool first = true;
  std::vector<float> le;
  SHOAL_RETURN_IF_ERROR(source.for_each([&](std::string_view id_view, const RecordValue& value, Status& error) {
        const RecordValue* v = &value;
        auto fail = [&](Status s) {
          error = std::move(s);
          return false;
        };
        const std::string id(id_view);
        if (id.find_first_of("\n\r") != std::string::npos) {
          return fail(Status(Detail::kMalformed, str_cat("the id '", escape_for_message(id), "' holds a line break, so "
                                                          "it cannot be a line of the ids file; export JSON lines")));
        }
        if (v->vector.size() != report.dim) {
          return fail(Status(Detail::kDimensionMismatch,
                             str_cat("record '", escape_for_message(id), "' has ", v->vector.size(),
                                     " components, the collection ", report.dim)));
        }
        if (first) {
          report.model = v->model;
          first = false;
        } else if (v->model != report.model) {
          return fail(Status(Code::kInvalidArgument,
                             str_cat("the records carry different model tags ('", escape_for_message(report.model),
                                     "' and '", escape_for_message(v->model), "' on '", escape_for_message(id),
                                     "'), which .npy export cannot keep (import sets one --model); export JSON "
                                     "lines")));
        }
        // .npy data is little-endian (descr '<f4').
        le.assign(v->vector.begin(), v->vector.end());
        if constexpr (std::endian::native == std::endian::big) {
          for (float& f : le) f = std::bit_cast<float>(__builtin_bswap32(std::bit_cast<std::uint32_t>(f)));
        }
        vectors.out().write(reinterpret_cast<const char*>(le.data()),
                            static_cast<std::streamsize>(le.size() * sizeof(float)));
        ids.out() << id << '\n';
        metadata.out() << metadata_to_json(v->metadata).dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
        if (Status s = vectors.check(); !s.ok()) return fail(s);
        if (Status s = ids.check(); !s.ok()) return fail(s);
        if (Status s = metadata.check(); !s.ok()) return fail(s);
        ++report.records;
        return true;
      }));
  vectors.out().seekp(0);
  vectors.out() << npy_header(report.records, report.dim);
  SHOAL_RETURN_IF_ERROR(vectors.close());
  SHOAL_RETURN_IF_ERROR(ids.close());
  SHOAL_RETURN_IF_ERROR(metadata.close());
  SHOAL_RETURN_IF_ERROR(vectors.commit());
  SHOAL_RETURN_IF_ERROR(ids.commit());
  SHOAL_RETURN_IF_ERROR(metadata.commit());
  return report;
}

namespace {

class JsonlSource final : public RecordSource {
 public:
  JsonlSource(std::unique_ptr<ByteReader> in, std::string model) : in_(std::move(in)), model_(std::move(model)) {}
  Result<bool> next(RecordInput& out) override {
    for (;;) {
      SHOAL_ASSIGN_OR_RETURN(const bool more, in_->line(text_));
      if (!more) return false;
      ++line_;
      if (text_.find_first_not_of(" \t\r") == std::string::npos) continue;
      SHOAL_ASSIGN_OR_RETURN(out, parse_line(text_, line_, model_));
      return true;
    }
  }
  std::string where() const override { return str_cat("line ", line_); }

 private:
  std::unique_ptr<ByteReader> in_;
  std::string model_;
  std::string text_;
  std::uint64_t line_ = 0;
};

class VectorSource final : public RecordSource {
 public:
  VectorSource(std::unique_ptr<VectorReader> v, std::unique_ptr<ByteReader> ids, std::unique_ptr<ByteReader> meta,
               std::string prefix, std::string model)
      : v_(std::move(v)), ids_(std::move(ids)), meta_(std::move(meta)), prefix_(std::move(prefix)),
        model_(std::move(model)) {}

  Result<bool> next(RecordInput& out) override {
    SHOAL_ASSIGN_OR_RETURN(const bool more, v_->next(out.value.vector));
    if (!more) return false;
    const std::uint64_t row = row_++;
    out.value.model = model_;
    out.value.metadata = Metadata{};
    if (ids_) {
      SHOAL_ASSIGN_OR_RETURN(const bool got, ids_->line(out.id));
      if (!got) {
        return Status(Detail::kMalformed, str_cat("the ids file ends at line ", row, " but the vector file has more rows"),
                      ids_->path());
      }
    } else {
      out.id = str_cat(prefix_, row);
    }
    if (meta_) {
      SHOAL_ASSIGN_OR_RETURN(const bool got, meta_->line(text_));
      if (!got) {
        return Status(Detail::kMalformed,
                      str_cat("the metadata file ends at line ", row, " but the vector file has more rows"), meta_->path());
      }
      json j = json::parse(text_, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !(j.is_object() || j.is_null())) {
        return not_an_object(text_, row + 1, "not a JSON object or null").with_context(meta_->path());
      }
      if (j.is_object()) {
        for (const auto& [k, v] : j.items()) {
          auto value = meta_value(v, k, row + 1);
          if (!value.ok()) return value.status().with_context(meta_->path());
          out.value.metadata.fields.emplace_back(k, std::move(*value));
        }
        out.value.metadata.normalize();
      }
    }
    return true;
  }
  std::string where() const override { return str_cat("row ", row_ == 0 ? 0 : row_ - 1); }

 private:
  std::unique_ptr<VectorReader> v_;
  std::unique_ptr<ByteReader> ids_, meta_;
  std::string prefix_, model_, text_;
  std::uint64_t row_ = 0;
};

}  // namespace

std::unique_ptr<RecordSource> jsonl_source(std::unique_ptr<ByteReader> in, std::string model) {
  return std::make_unique<JsonlSource>(std::move(in), std::move(model));
}

std::unique_ptr<RecordSource> vector_source(std::unique_ptr<VectorReader> vectors, std::unique_ptr<ByteReader> ids,
                                            std::unique_ptr<ByteReader> metadata, std::string id_prefix,
                                            std::string model) {
  return std::make_unique<VectorSource>(std::move(vectors), std::move(ids), std::move(metadata), std::move(id_prefix),
                                        std::move(model));
}

Status import_records(capi::Backend& db, const std::string& collection, RecordSource& source,
                      const ImportOptions& options, ImportReport& report,
                      const std::function<void(std::uint64_t)>& progress) {
  const std::size_t batch = std::max<std::size_t>(options.batch, 1);
  auto stopping = [&] { return options.stop != nullptr && *options.stop != 0; };
  RecordInput rec;
  // Skipped records are read and dropped (a stream cannot seek), without writing anything.
  while (report.position < options.skip) {
    if (stopping()) {
      report.stopped = true;
      return {};
    }
    auto more = source.next(rec);
    if (!more.ok()) return more.status();
    if (!*more) return {};
    ++report.position;
  }
  std::uint64_t taken = 0;
  std::vector<RecordInput> pending;
  for (;;) {
    pending.clear();
    bool end = false;
    std::uint64_t read = 0;
    while (pending.size() < batch) {
      if (options.limit != 0 && taken + read >= options.limit) {
        end = true;
        break;
      }
      if (stopping()) break;
      auto more = source.next(rec);
      if (!more.ok()) {
        // An interrupted read (SIGINT while the file or pipe blocked) is a stop, not an error.
        if (stopping()) break;
        // The `read` records of this batch before the bad one are not written (a batch is
        // atomic), so only those before report.position are stored.
        return more.status().with_context(
            str_cat("records before ", report.position, " are stored; resume with --skip ", report.position));
      }
      if (!*more) {
        end = true;
        break;
      }
      ++read;
      // Idempotence: an identical stored value is not written again.
      auto stored = db.get(collection, rec.id);
      // (An evicted record the sink could not refill has no vector here, so it is written again.)
      if (stored.ok() && stored->record.siblings.size() == 1 && stored->record.siblings[0].value == rec.value) {
        ++report.unchanged;
        continue;
      }
      if (!stored.ok() && stored.status().code() != Code::kNotFound) {
        return stored.status().with_context(str_cat(source.where(), " (records before ", report.position,
                                                    " are stored; resume with --skip ", report.position, ")"));
      }
      pending.push_back(std::move(rec));
      rec = RecordInput{};
    }
    if (!pending.empty()) {
      const std::size_t n = pending.size();
      Status s = db.upsert_batch(collection, std::move(pending));
      if (!s.ok()) {
        return s.with_context(str_cat("the batch of records ", report.position, "..", report.position + read - 1,
                                      " (earlier batches are stored; resume with --skip ", report.position, ")"));
      }
      report.written += n;
    }
    report.position += read;
    taken += read;
    if (progress) progress(report.position);
    if (end) return {};
    if (stopping()) {
      report.stopped = true;
      return {};
    }
  }
}

}  // namespace shoal::node::tools
