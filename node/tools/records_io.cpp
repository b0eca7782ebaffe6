// node/tools/records_io.cpp: see records_io.hpp.
#include "node/tools/records_io.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <type_traits>
#include <variant>
#include <vector>

#include "crdt/entries.hpp"
#include "node/core/node_format.hpp"
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

Result<RecordInput> parse_line(const std::string& text, std::uint64_t line, const std::string& model) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status(Detail::kMalformed, str_cat("line ", line, ": not a JSON object"));
  }
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

Result<std::uint64_t> export_jsonl(const std::string& data_dir, const std::string& collection, std::ostream& out) {
  const std::string store_path = data_dir + "/store";
  if (!std::filesystem::exists(store_path + "/data.mdb")) {
    return Status(Code::kNotFound, "no data directory here; create it with 'shoal init'", data_dir);
  }
  store::LmdbStoreOptions options;
  options.path = store_path;
  SHOAL_ASSIGN_OR_RETURN(auto st, store::LmdbStore::open(options));
  SHOAL_ASSIGN_OR_RETURN(auto txn, st->begin_read());
  SHOAL_ASSIGN_OR_RETURN(const std::uint32_t cid, collection_id(*txn, collection));
  std::uint64_t written = 0;
  Status error;
  SHOAL_RETURN_IF_ERROR(txn->scan(
      Table::kRecords, store::Range::prefix(format::collection_prefix(cid)),
      [&](std::string_view key, std::string_view value) {
        auto rec = format::decode_record(value, key);
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
        json line{{"id", to_valid_utf8(format::id_of_record_key(key))},
                  {"vector", v->vector},
                  {"metadata", metadata_to_json(v->metadata)}};
        if (!v->model.empty()) line["model"] = to_valid_utf8(v->model);
        out << line.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
        if (!out) {
          error = Status(Code::kIo, "writing the export failed");
          return false;
        }
        ++written;
        return true;
      }));
  SHOAL_RETURN_IF_ERROR(error);
  out.flush();
  if (!out) return Status(Code::kIo, "writing the export failed");
  return written;
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
        return Status(Detail::kMalformed, str_cat("line ", row + 1, ": not a JSON object"), meta_->path());
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
        return more.status().with_context(
            str_cat("records before ", report.position + read, " are stored; resume with --skip ", report.position));
      }
      if (!*more) {
        end = true;
        break;
      }
      ++read;
      // Idempotence: an identical stored value is not written again.
      auto stored = db.get(collection, rec.id);
      if (stored.ok() && stored->siblings.size() == 1 && stored->siblings[0].value == rec.value) {
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
