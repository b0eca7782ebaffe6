// shoal: the operator's command-line tool for a local data directory.
//
//   shoal [--data DIR] [--json] <command> ...
//     init                                   create the data directory
//     collection create NAME --dim N [--metric l2|ip|cosine] [--m 16] [--ef-construction 200]
//                                            [--ef-search 64] [--quantize --quant-min A --quant-max B]
//     collection list | collection drop NAME
//     put COLL ID --vector 1,2,3 [--meta key=value ...] [--model TAG]
//     get COLL ID
//     delete COLL ID
//     import COLL FILE [--format idx|fvecs|npy|jsonl] [--limit N] [--batch 1000] [--id-prefix P]
//     export COLL [FILE]                     the records as JSON lines (records_io.hpp)
//     search COLL (--vector 1,2,3 | --query-file FILE --row I) [-k 10] [--ef 0] [--filter EXPR]
//     stats
//     backup DEST [--compact]                a consistent copy of the store into DEST (closed dir)
//     restore BACKUP                         create the data directory from BACKUP, new incarnation
//     compact                                rewrite the store without its free pages
//   shoal --version
// Exit codes: 0 success; 1 the request failed (the message names the reason); 2 usage error (an
// unknown command or option, a missing or malformed argument; JSON under --json). --json and
// --data may come anywhere on the line.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>
#include <iostream>
#include <string>
#include <type_traits>
#include <vector>

#include "common/log.hpp"
#include "common/time.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/io/datasets.hpp"
#include "node/tools/mesh_commands.hpp"
#include "node/tools/records_io.hpp"

using namespace shoal;
using namespace shoal::node;
using nlohmann::json;

namespace {

struct Globals {
  std::string data = "./shoal-data";
  bool json_output = false;
};

// Every JSON output goes through here: a store may hold ids, model tags and metadata strings
// written before UTF-8 was enforced, and printing them must never fail; invalid bytes are
// printed as U+FFFD (docs/api.md).
std::string dump(const json& j, int indent = -1) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

int fail(const Globals& g, const Status& s) {
  if (g.json_output) {
    std::cout << dump(json{{"ok", false}, {"code", s.full_code()}, {"error", s.to_string()}}) << "\n";
  } else {
    std::cerr << "shoal: " << s.to_string() << "\n";
  }
  return 1;
}

// A usage error found after parsing (an option value that cannot work): exit code 2.
int fail_usage(const Globals& g, const std::string& message) {
  fail(g, Status(Code::kInvalidArgument, message));
  return 2;
}

// A filter that does not parse: the status, and on a terminal-style output the filter with a
// caret under the byte where parsing stopped; in JSON the offset as "error_offset".
int fail_filter(const Globals& g, const Status& s, const std::string& filter, std::size_t offset) {
  if (g.json_output) {
    std::cout << dump(json{{"ok", false}, {"code", s.full_code()}, {"error", s.to_string()},
                           {"error_offset", offset}})
              << "\n";
    return 1;
  }
  std::cerr << "shoal: " << s.to_string() << "\n  " << escape_for_message(filter, 200) << "\n  ";
  // The caret column counts the escaped rendering of the bytes before the offset.
  std::cerr << std::string(escape_for_message(std::string_view(filter).substr(0, offset), 200).size(), ' ')
            << "^\n";
  return 1;
}

Result<std::vector<float>> parse_vector(const std::string& text) {
  std::vector<float> v;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(pos, end - pos);
    try {
      std::size_t used = 0;
      v.push_back(std::stof(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      return Status(Detail::kMalformed, "vector component " + std::to_string(v.size()) + " '" +
                                            item + "' is not a number");
    }
    pos = end + 1;
  }
  return v;
}

json meta_json(const Metadata& m) {
  json out = json::object();
  for (const auto& [k, v] : m.fields) {
    std::visit(
        [&](const auto& x) {
          if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::string>) {
            out[to_valid_utf8(k)] = to_valid_utf8(x);
          } else {
            out[to_valid_utf8(k)] = x;
          }
        },
        v);
  }
  return out;
}

Result<Metadata> parse_meta(const std::vector<std::string>& items) {
  Metadata m;
  for (const auto& item : items) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status(Detail::kMalformed, "metadata '" + item + "' must be key=value");
    }
    // Reuse the filter value grammar: int, float, true/false, "quoted string", else string.
    auto f = parse_filter(item);
    if (!f.ok()) return f.status();
    m.fields.emplace_back(f->all[0].key, f->all[0].value);
  }
  m.normalize();
  return m;
}

// Renders a progress bar on stderr when it is a terminal, else a line every 10%.
class Progress {
 public:
  explicit Progress(std::size_t total) : total_(total), start_(now_mono()) {}
  void update(std::size_t done) {
    const int pct = total_ == 0 ? 100 : static_cast<int>(100 * done / total_);
    if (pct == last_) return;
    last_ = pct;
    const double secs = (now_mono() - start_).seconds_f();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    if (!tty_ && pct % 10 != 0) return;
    const int width = 30;
    std::string bar(static_cast<std::size_t>(width * pct / 100), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "%s[%s] %3d%% %zu/%zu %.0f vectors/s%s", tty_ ? "\r" : "", bar.c_str(), pct,
                 done, total_, rate, tty_ ? "" : "\n");
    if (tty_ && done == total_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::size_t total_;
  bool tty_ = ::isatty(2) != 0;
  MonoTime start_;
  int last_ = -1;
};

// Parses the command line. Returns -1 to go on, or the exit code to end with: 0 after --help or
// --version (printed by CLI11), 2 after a usage error (printed like fail(), as JSON under --json,
// which is looked for on the whole line since the parse stopped early), or the code a subcommand's
// callback ended the parse with (mesh_commands.cpp; it printed its own message).
int parse_command_line(CLI::App& app, Globals& g, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    for (int i = 1; i < argc; ++i) {
      if (std::string_view(argv[i]) == "--json") g.json_output = true;
    }
    const Status s(Code::kInvalidArgument, e.what());
    if (g.json_output) {
      std::cout << dump(json{{"ok", false}, {"code", s.full_code()}, {"error", s.to_string()}, {"usage", true}})
                << "\n";
    } else {
      std::cerr << "shoal: " << e.what() << "\nRun 'shoal --help' (or 'shoal COMMAND --help') for usage.\n";
    }
    return 2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  CLI::App app{"shoal: manage a local Shoal data directory"};
  // The global options may come anywhere on the line (`shoal collection list --json`): options a
  // subcommand does not know fall through to the parent. Set before any subcommand is added, which
  // inherits it.
  app.fallthrough();
  app.add_option("--data,-d", g.data, "data directory")->capture_default_str();
  app.add_flag("--json", g.json_output, "machine-readable JSON output");
  app.set_version_flag("--version", std::string("shoal ") + SHOAL_VERSION_STRING);
  app.require_subcommand(1);

  auto* init = app.add_subcommand("init", "create the data directory");

  auto* coll = app.add_subcommand("collection", "create, list or drop collections");
  coll->require_subcommand(1);
  CollectionSpec spec;
  std::string metric = "l2";
  auto* ccreate = coll->add_subcommand("create", "create a collection");
  ccreate->add_option("name", spec.name)->required();
  ccreate->add_option("--dim", spec.dimension, "vector dimension")->required();
  ccreate->add_option("--metric", metric, "l2, ip or cosine")->capture_default_str();
  ccreate->add_option("--m", spec.m, "HNSW graph degree")->capture_default_str();
  ccreate->add_option("--ef-construction", spec.ef_construction)->capture_default_str();
  ccreate->add_option("--ef-search", spec.ef_search, "default search beam")->capture_default_str();
  ccreate->add_flag("--quantize", spec.quantize, "int8 scalar quantization with float re-ranking");
  ccreate->add_option("--quant-min", spec.quant_min);
  ccreate->add_option("--quant-max", spec.quant_max);
  auto* clist = coll->add_subcommand("list", "list collections");
  std::string drop_name;
  auto* cdrop = coll->add_subcommand("drop", "drop a collection and its records");
  cdrop->add_option("name", drop_name)->required();

  std::string c_name, r_id, vector_text, model, filter_text, query_file, format;
  std::vector<std::string> meta_items;
  auto* put = app.add_subcommand("put", "insert or replace one record");
  put->add_option("collection", c_name)->required();
  put->add_option("id", r_id)->required();
  put->add_option("--vector", vector_text, "comma-separated floats")->required();
  put->add_option("--meta", meta_items, "key=value (repeatable)");
  put->add_option("--model", model, "embedding-model tag");

  auto* get = app.add_subcommand("get", "read one record with its siblings");
  get->add_option("collection", c_name)->required();
  get->add_option("id", r_id)->required();

  auto* del = app.add_subcommand("delete", "delete one record");
  del->add_option("collection", c_name)->required();
  del->add_option("id", r_id)->required();

  std::string file;
  std::size_t limit = 0, batch = 1000;
  std::string id_prefix;
  auto* imp = app.add_subcommand("import", "import vectors from IDX (.gz), .fvecs or .npy, or records from JSON lines");
  imp->add_option("collection", c_name)->required();
  imp->add_option("file", file)->required();
  imp->add_option("--format", format, "idx, fvecs, npy or jsonl (default: from the file name; '-' is jsonl)");
  imp->add_option("--limit", limit, "import at most N vectors");
  imp->add_option("--batch", batch, "records per atomic batch")->capture_default_str();
  imp->add_option("--id-prefix", id_prefix, "ids are <prefix><row number>");
  imp->add_option("--model", model, "embedding-model tag");

  std::uint32_t k = 10, ef = 0;
  std::size_t row = 0;
  auto* search = app.add_subcommand("search", "k-nearest-neighbour search");
  search->add_option("collection", c_name)->required();
  auto* vopt = search->add_option("--vector", vector_text, "comma-separated floats");
  auto* qopt = search->add_option("--query-file", query_file, "take the query from this file");
  vopt->excludes(qopt);
  search->add_option("--row", row, "row of --query-file")->capture_default_str();
  search->add_option("-k", k)->capture_default_str();
  search->add_option("--ef", ef, "beam width (0: the collection default)")->capture_default_str();
  search->add_option("--filter", filter_text, "e.g. color=red,year>=2020");

  std::string export_to;
  auto* exp = app.add_subcommand("export", "write a collection's records as JSON lines");
  exp->add_option("collection", c_name)->required();
  exp->add_option("file", export_to, "output file (default: standard output)");

  auto* stats = app.add_subcommand("stats", "node statistics");

  // Maintenance of a closed data directory (docs/operations.md): they take the directory's lock
  // themselves and never open the node.
  std::string backup_dest, restore_from;
  bool backup_compact = false;
  auto* backup = app.add_subcommand("backup", "write a consistent copy of the store to DEST");
  backup->add_option("dest", backup_dest, "a new (or empty) directory")->required();
  backup->add_flag("--compact", backup_compact, "leave free pages out of the copy");
  auto* restore = app.add_subcommand("restore", "create the data directory from a backup, under a new incarnation");
  restore->add_option("backup", restore_from, "a directory written by 'shoal backup'")->required();
  auto* compact = app.add_subcommand("compact", "rewrite the store without its free pages");

  add_mesh_commands(app, g.json_output);

  if (const int rc = parse_command_line(app, g, argc, argv); rc >= 0) return rc;

  if (backup->parsed() || restore->parsed() || compact->parsed()) {
    Result<StoreCopyReport> r = backup->parsed()    ? backup_data_dir(g.data, backup_dest, backup_compact)
                                : restore->parsed() ? restore_data_dir(restore_from, g.data, DataDirOptions{})
                                                    : compact_data_dir(g.data);
    if (!r.ok()) return fail(g, r.status());
    const char* verb = backup->parsed() ? "backup" : restore->parsed() ? "restore" : "compact";
    if (g.json_output) {
      json out{{"ok", true}, {verb, backup->parsed() ? backup_dest : g.data}, {"replica", r->replica},
               {"source_bytes", r->source_bytes}, {"copy_bytes", r->copy_bytes}};
      if (!r->note.empty()) out["note"] = r->note;
      std::cout << dump(out) << "\n";
      return 0;
    }
    if (backup->parsed()) {
      std::cout << "backed up " << g.data << " (replica " << r->replica << ") to " << backup_dest << ": "
                << r->copy_bytes << " bytes" << (backup_compact ? " (compacted from " : " (store file ")
                << r->source_bytes << ")\n";
    } else if (restore->parsed()) {
      std::cout << "restored " << restore_from << " into " << g.data << " under the new incarnation "
                << r->replica << " (" << r->copy_bytes << " bytes)\n";
    } else {
      std::cout << "compacted " << g.data << ": " << r->source_bytes << " -> " << r->copy_bytes << " bytes\n";
    }
    if (!r->note.empty()) std::cerr << "shoal: note: " << r->note << "\n";
    return 0;
  }

  // Export reads the store directly (records_io.hpp): no index is loaded.
  if (exp->parsed()) {
    std::ofstream file_out;
    if (!export_to.empty() && export_to != "-") {
      file_out.open(export_to, std::ios::binary | std::ios::trunc);
      if (!file_out) return fail(g, Status(Code::kIo, "cannot create the export file", export_to));
    }
    // Under --json the records go to the file and the summary to stdout; without a file, the
    // records are the output.
    const bool to_stdout = !file_out.is_open();
    if (to_stdout && g.json_output) {
      return fail_usage(g, "export --json needs an output file (the records are JSON already)");
    }
    const MonoTime start = now_mono();
    auto n_written = tools::export_jsonl(g.data, c_name, to_stdout ? std::cout : file_out);
    if (!n_written.ok()) return fail(g, n_written.status());
    const double secs = (now_mono() - start).seconds_f();
    if (g.json_output) return std::cout << dump(json{{"ok", true}, {"exported", *n_written}, {"file", export_to},
                                                     {"seconds", secs}}) << "\n", 0;
    std::cerr << "exported " << *n_written << " records of " << c_name << " in " << secs << " s\n";
    return 0;
  }

  if (!init->parsed() && !std::filesystem::exists(g.data + "/store")) {
    return fail(g, Status(Code::kNotFound, "no data directory here; create it with 'shoal init'", g.data));
  }
  DataDirOptions opts;
  auto dir = open_data_dir(g.data, std::move(opts));
  if (!dir.ok()) return fail(g, dir.status());
  SharedNode& n = (*dir)->node();

  auto ok_json = [&](json extra) {
    extra["ok"] = true;
    std::cout << dump(extra) << "\n";
    return 0;
  };

  if (init->parsed()) {
    if (g.json_output) return ok_json({{"data", g.data}, {"replica", n.replica().to_string()}});
    std::cout << "initialised " << g.data << " (replica " << n.replica().to_string() << ")\n";
    return 0;
  }
  if (ccreate->parsed()) {
    auto m = parse_metric(metric);
    if (!m.ok()) return fail(g, m.status());
    spec.metric = *m;
    if (Status s = n.create_collection(spec); !s.ok()) return fail(g, s);
    if (g.json_output) return ok_json({{"created", spec.name}});
    std::cout << "created collection " << spec.name << "\n";
    return 0;
  }
  if (clist->parsed()) {
    json arr = json::array();
    for (const auto& c : n.list_collections()) {
      arr.push_back({{"name", c.spec.name}, {"dimension", c.spec.dimension},
                     {"metric", metric_name(c.spec.metric)}, {"records", c.live_records},
                     {"index_bytes", c.index_bytes}});
      if (!g.json_output) {
        std::cout << c.spec.name << "  dim=" << c.spec.dimension << " metric="
                  << metric_name(c.spec.metric) << " records=" << c.live_records << "\n";
      }
    }
    if (g.json_output) return ok_json({{"collections", arr}});
    return 0;
  }
  if (cdrop->parsed()) {
    if (Status s = n.drop_collection(drop_name); !s.ok()) return fail(g, s);
    if (g.json_output) return ok_json({{"dropped", drop_name}});
    std::cout << "dropped collection " << drop_name << "\n";
    return 0;
  }
  if (put->parsed()) {
    auto v = parse_vector(vector_text);
    if (!v.ok()) return fail(g, v.status());
    auto m = parse_meta(meta_items);
    if (!m.ok()) return fail(g, m.status());
    if (Status s = n.upsert(c_name, r_id, RecordValue{*v, *m, model}); !s.ok()) return fail(g, s);
    if (g.json_output) return ok_json({{"id", r_id}});
    std::cout << "stored " << r_id << "\n";
    return 0;
  }
  if (get->parsed()) {
    auto r = n.get(c_name, r_id);
    if (!r.ok()) return fail(g, r.status());
    json sibs = json::array();
    for (const auto& s : r->siblings) {
      sibs.push_back({{"vector", s.value.vector}, {"metadata", meta_json(s.value.metadata)},
                      {"model", s.value.model}, {"clock", s.clock.to_string()},
                      {"dot", s.dot.to_string()}});
    }
    json out{{"id", r_id}, {"siblings", sibs}};
    if (g.json_output) return ok_json(out);
    std::cout << dump(out, 2) << "\n";
    return 0;
  }
  if (del->parsed()) {
    if (Status s = n.remove(c_name, r_id); !s.ok()) return fail(g, s);
    if (g.json_output) return ok_json({{"deleted", r_id}});
    std::cout << "deleted " << r_id << "\n";
    return 0;
  }
  if (imp->parsed() && (format == "jsonl" || (format.empty() && (file == "-" || file.ends_with(".jsonl") ||
                                                                   file.ends_with(".ndjson"))))) {
    if (batch == 0) return fail_usage(g, "--batch must be at least 1");
    std::ifstream file_in;
    if (file != "-") {
      file_in.open(file, std::ios::binary);
      if (!file_in) return fail(g, Status(Code::kNotFound, "cannot open the file", file));
    }
    tools::ImportReport report;
    const MonoTime start = now_mono();
    Status s = tools::import_jsonl(n, c_name, file == "-" ? std::cin : file_in, batch, model, report);
    if (!s.ok()) return fail(g, s);
    const double secs = (now_mono() - start).seconds_f();
    if (g.json_output) return ok_json({{"imported", report.records}, {"lines", report.lines}, {"seconds", secs}});
    std::cout << "imported " << report.records << " records in " << secs << " s\n";
    return 0;
  }
  if (imp->parsed()) {
    io::VectorFormat fmt = io::guess_format(file);
    if (format == "idx") fmt = io::VectorFormat::kIdx;
    else if (format == "fvecs") fmt = io::VectorFormat::kFvecs;
    else if (format == "npy") fmt = io::VectorFormat::kNpy;
    else if (!format.empty()) return fail_usage(g, "unknown format '" + format + "'; expected idx, fvecs, npy or jsonl");
    if (batch == 0) return fail_usage(g, "--batch must be at least 1");
    auto vs = io::read_vectors(file, fmt, limit);
    if (!vs.ok()) return fail(g, vs.status());
    Progress progress(vs->count);
    const MonoTime start = now_mono();
    for (std::size_t i = 0; i < vs->count; i += batch) {
      std::vector<RecordInput> recs;
      for (std::size_t j = i; j < std::min(vs->count, i + batch); ++j) {
        RecordValue v;
        v.vector.assign(vs->row(j), vs->row(j) + vs->dimension);
        v.model = model;
        recs.push_back(RecordInput{id_prefix + std::to_string(j), std::move(v)});
      }
      if (Status s = n.upsert_batch(c_name, std::move(recs)); !s.ok()) {
        std::fprintf(stderr, "\n");
        return fail(g, s.with_context(str_cat("rows ", i, "..", std::min(vs->count, i + batch) - 1,
                                              " (earlier batches are stored)")));
      }
      if (!g.json_output) progress.update(std::min(vs->count, i + batch));
    }
    const double secs = (now_mono() - start).seconds_f();
    if (g.json_output) return ok_json({{"imported", vs->count}, {"seconds", secs}});
    std::cout << "imported " << vs->count << " vectors in " << secs << " s\n";
    return 0;
  }
  if (search->parsed()) {
    std::vector<float> q;
    if (!query_file.empty()) {
      auto vs = io::read_vectors(query_file, io::guess_format(query_file), row + 1);
      if (!vs.ok()) return fail(g, vs.status());
      if (row >= vs->count) return fail(g, Status(Detail::kOutOfRange, str_cat("--row ", row, " but the file has ", vs->count, " rows")));
      q.assign(vs->row(row), vs->row(row) + vs->dimension);
    } else if (!vector_text.empty()) {
      auto v = parse_vector(vector_text);
      if (!v.ok()) return fail(g, v.status());
      q = *v;
    } else {
      return fail(g, Status(Code::kInvalidArgument, "give --vector or --query-file"));
    }
    SearchOptions so;
    so.k = k;
    so.ef = ef;
    if (!filter_text.empty()) {
      std::size_t error_offset = 0;
      auto f = parse_filter(filter_text, &error_offset);
      if (!f.ok()) return fail_filter(g, f.status(), filter_text, error_offset);
      so.filter = *f;
    }
    const MonoTime t0 = now_mono();
    auto hits = n.search(c_name, q, so);
    const auto us = (now_mono() - t0).us();
    if (!hits.ok()) return fail(g, hits.status());
    json arr = json::array();
    for (const auto& h : *hits) {
      arr.push_back({{"id", h.id}, {"distance", h.distance}, {"metadata", meta_json(h.metadata)},
                     {"model", h.model}});
      if (!g.json_output) std::cout << escape_for_message(h.id, 1024) << "\t" << h.distance << "\t" << dump(meta_json(h.metadata)) << "\n";
    }
    if (g.json_output) return ok_json({{"hits", arr}, {"latency_us", us}});
    std::cerr << hits->size() << " hits in " << us << " us\n";
    return 0;
  }
  if (stats->parsed()) {
    NodeStats s = n.stats();
    json out{{"replica", s.replica}, {"collections", s.collections}, {"records", s.live_records},
             {"delta_buffer_entries", s.delta_buffer_entries}, {"last_delta_seq", s.last_delta_seq},
             {"index_bytes", s.index_bytes}};
    json src = json::object();
    for (const auto& [name, how] : n.open_report().index_source) src[name] = how;
    out["index_source"] = src;
    if (g.json_output) return ok_json(out);
    std::cout << dump(out, 2) << "\n";
    return 0;
  }
  return 2;
}
