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

Status import_jsonl(SharedNode& node, const std::string& collection, std::istream& in, std::size_t batch,
                    const std::string& model, ImportReport& report) {
  std::vector<RecordInput> pending;
  std::uint64_t first_line = 0;
  auto flush = [&]() -> Status {
    if (pending.empty()) return {};
    const std::size_t n = pending.size();
    Status s = node.upsert_batch(collection, std::move(pending));
    pending.clear();
    if (!s.ok()) {
      return s.with_context(str_cat("lines ", first_line, "..", report.lines, " (earlier batches are stored)"));
    }
    report.records += n;
    return {};
  };
  std::string text;
  while (std::getline(in, text)) {
    ++report.lines;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    SHOAL_ASSIGN_OR_RETURN(auto rec, parse_line(text, report.lines, model));
    if (pending.empty()) first_line = report.lines;
    pending.push_back(std::move(rec));
    if (pending.size() >= batch) SHOAL_RETURN_IF_ERROR(flush());
  }
  if (in.bad()) return Status(Code::kIo, str_cat("reading line ", report.lines + 1, " failed"));
  return flush();
}

}  // namespace shoal::node::tools
