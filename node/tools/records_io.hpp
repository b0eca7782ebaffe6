// node/tools/records_io.hpp: `shoal export` and the JSON-lines side of `shoal import`.
//
// The JSON-lines record format, one object per line (UTF-8, "\n" separated; blank lines ignored):
//   {"id": "img-7", "vector": [0.1, 0.2, ...], "metadata": {"place": "indoor", "year": 2024},
//    "model": "clip-b32"}
// "id" and "vector" are required; "metadata" (an object of string, integer, float and boolean
// values) and "model" are optional. Export writes exactly this (the winning value of each record,
// in store order); import reads it, so export | import copies a collection's records.
//
// Thread rules: none of these keep state; export opens the store itself and must not run in a
// process that holds the same data directory open (the CLI never does).
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <string>

#include "common/status.hpp"
#include "node/runtime/shared_node.hpp"

namespace shoal::node::tools {

// Writes every live record of `collection` in the data directory `data_dir` as JSON lines to
// `out`, reading one consistent snapshot of the store (an LMDB read transaction, so it is safe
// while another process writes). Reads the store without opening the node: no index is loaded.
// Returns the number of records written. Statuses: kNotFound (no store at `data_dir`),
// kNotFound/kNoSuchCollection, kCorruption (a value that does not decode, naming its key), kIo
// (`out` failed), and those of LmdbStore::open.
[[nodiscard]] Result<std::uint64_t> export_jsonl(const std::string& data_dir, const std::string& collection,
                                                 std::ostream& out);

struct ImportReport {
  std::uint64_t records = 0;
  std::uint64_t lines = 0;  // lines read, blank ones included
};

// Reads JSON-lines records from `in` and upserts them into `collection` in atomic batches of
// `batch` records (memory is bounded by one batch). `model` is used for records without a
// "model". Statuses: kInvalidArgument/kMalformed naming the line and the field (a line that is not
// a JSON object, a missing or wrong-typed id or vector, a metadata value that is not a string,
// number or boolean); those of upsert_batch, with the line range of the failed batch. Batches
// before a failure are stored (`report` counts them).
[[nodiscard]] Status import_jsonl(SharedNode& node, const std::string& collection, std::istream& in,
                                  std::size_t batch, const std::string& model, ImportReport& report);

}  // namespace shoal::node::tools
