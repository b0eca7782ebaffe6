// node/tools/records_io.hpp: `shoal export`, and `shoal import` from JSON lines or vector files.
//
// The JSON-lines record format, one object per line (UTF-8, "\n" separated; blank lines ignored):
//   {"id": "img-7", "vector": [0.1, 0.2, ...], "metadata": {"place": "indoor", "year": 2024},
//    "model": "clip-b32"}
// "id" and "vector" are required; "metadata" (an object of string, integer, float and boolean
// values) and "model" are optional. Export writes exactly this (the winning value of each record,
// in store order); import reads it, so export | import copies a collection's records.
//
//
// NumPy (.npy, https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html): export
// writes a collection's vectors as one version 1.0 .npy file (little-endian float32, C order,
// shape (n, dim)), the ids as a text file of one id per line, and the metadata as a file of one
// JSON object per line ({} for none), the three in the same record order, which are exactly the
// files `shoal import COLL F.npy --ids F.ids.txt --metadata F.metadata.jsonl` reads. Import's
// reader (VectorReader, streams.hpp) checks the header with read_npy_header below.
//
// Thread rules: none of these keep state; open_store_export opens the store itself (read only,
// without the data directory's lock, which LMDB allows while another process, shoald, writes),
// so it must not run in a process that holds the same data directory open (the CLI never does).
// Against a running daemon, export pages through the local API instead (open_daemon_export).
#pragma once

#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <istream>
#include <ostream>
#include <string>

#include "common/status.hpp"
#include "node/capi/backend.hpp"
#include "node/tools/streams.hpp"

namespace shoal::node::tools {

// Where export's records come from: every live record of one collection with its winning value,
// in store order. Memory: one record (the store) or one page (the daemon) at a time.
class ExportSource {
 public:
  // Takes one record; returns false to stop, with `error` set if it failed.
  using Visit = std::function<bool(std::string_view id, const RecordValue& value, Status& error)>;
  virtual ~ExportSource() = default;
  virtual std::size_t dim() const = 0;  // the collection's dimension
  // Visits each record until `visit` returns false; returns the first error (the source's or
  // the one `visit` set).
  [[nodiscard]] virtual Status for_each(const Visit& visit) = 0;
};

// The records of `collection` in the data directory `data_dir`, read from one consistent snapshot
// of the store (an LMDB read transaction, so it is safe while another process writes), without
// opening the node: no index is loaded. Statuses: kNotFound (no store at `data_dir`),
// kNotFound/kNoSuchCollection, and those of LmdbStore::open; for_each stops with kColdUnavailable
// naming the first record evicted to the cold tier (its vector is at the sink, which only a
// daemon reaches).
[[nodiscard]] Result<std::unique_ptr<ExportSource>> open_store_export(const std::string& data_dir,
                                                                      const std::string& collection);
// The records of `collection` on a running daemon (client mode), page by page
// (Backend::records_after): each page is one read transaction there, so a record written during
// the export is seen if it sorts after the current page. A record evicted to the cold tier is
// read again with Backend::get, which the daemon answers by refilling it from its sink; when it
// cannot, for_each stops with that get's cold status (kColdUnavailable, kChecksumMismatch) naming
// the record, so no record is ever written without its vector. Statuses: those of the backend's
// calls.
[[nodiscard]] Result<std::unique_ptr<ExportSource>> open_daemon_export(capi::Backend& db,
                                                                       const std::string& collection);

// Writes every record of `source` as JSON lines to `out`. Returns the number of records written.
// Statuses: the source's, kCorruption (a value that does not decode, naming its key), kIo
// (`out` failed).
[[nodiscard]] Result<std::uint64_t> export_jsonl(ExportSource& source, std::ostream& out);

// --- NumPy .npy files.

// The largest header read_npy_header accepts, in bytes (NumPy's own reader refuses larger ones by
// default too: its max_header_size).
inline constexpr std::size_t kMaxNpyHeaderBytes = 10000;
// The length of every header npy_header writes: magic, version, length and dict, padded with
// spaces to a multiple of 64 as the format asks, with room for any row count (20 digits).
inline constexpr std::size_t kNpyHeaderBytes = 128;

struct NpyShape {
  std::uint64_t rows = 0;
  std::size_t dim = 0;
};

// Reads the header of a .npy file from `in` and checks it strictly, leaving `in` at the first
// data byte. Accepted: format versions 1.0, 2.0 and 3.0; a header (the text from the dict to its
// "\n") of at most kMaxNpyHeaderBytes bytes whose end falls on a multiple of 16 (NumPy aligns
// to 64 today, to 16 before 1.9); that text being exactly a Python dict of the three keys
// 'descr', 'fortran_order' and 'shape', padded with spaces and ended by "\n"; descr '<f4'
// (little-endian float32); fortran_order False; shape a tuple of two integers (n, d) with
// 1 <= d <= 65536 and n * d * 4 bytes countable in 64 bits. Anything else is kMalformed (an
// unsupported version: kVersionMismatch; a header above the limit: kTooLarge), naming `in`'s
// path and the value seen ("dtype '<f8'", "fortran_order True", "shape (3, 4, 5)", ...).
[[nodiscard]] Result<NpyShape> read_npy_header(ByteReader& in);

// The kNpyHeaderBytes-byte version 1.0 header of a rows x dim little-endian float32 C-order array.
std::string npy_header(std::uint64_t rows, std::size_t dim);

struct NpyExportFiles {
  std::string vectors;   // the .npy file
  std::string ids;       // one id per line
  std::string metadata;  // one JSON object per line
};

struct NpyExportReport {
  std::uint64_t records = 0;
  std::size_t dim = 0;
  std::string model;  // the model tag every record carries ("" for none)
};

// Writes every record of `source` (as export_jsonl: store order, the winning value) into the
// three files of `files`, streaming: memory stays one record (or one daemon page) whatever the
// collection's size. Each file is written beside its name (NAME.tmp) and renamed
// over it only when all three are complete, so a failed export leaves no partial files. The
// .npy header's row count is written last (the header has a fixed length). The records must
// share one model tag (import's --model sets one for all); records with different tags are
// kInvalidArgument naming two of them (export JSON lines instead, which keeps each record's). An
// id holding a line break cannot be one line of the ids file: kMalformed naming it. Other
// statuses as export_jsonl's, and kIo naming the file that could not be written.
[[nodiscard]] Result<NpyExportReport> export_npy(ExportSource& source, const NpyExportFiles& files);

// Where import's records come from, one at a time (streams.hpp: bounded memory).
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  // The next record into `out`; false at the end.
  [[nodiscard]] virtual Result<bool> next(RecordInput& out) = 0;
  // Where the last record came from, for messages ("line 7", "row 12").
  virtual std::string where() const = 0;
};

// JSON-lines records from `in` (blank lines skipped). Errors are kMalformed naming the line and
// the field (a line that is not a JSON object, a missing or wrong-typed id or vector, a metadata
// value that is not a string, number or boolean). `model` is used for records without "model".
[[nodiscard]] std::unique_ptr<RecordSource> jsonl_source(std::unique_ptr<ByteReader> in, std::string model);

// Rows of a vector file; the id of row i is line i of `ids` (one id per line), else
// `id_prefix` + i; its metadata is line i of `metadata` (a JSON object per line), else none. A
// side file shorter than the vector file is kMalformed naming it and the line.
[[nodiscard]] std::unique_ptr<RecordSource> vector_source(std::unique_ptr<VectorReader> vectors,
                                                          std::unique_ptr<ByteReader> ids,
                                                          std::unique_ptr<ByteReader> metadata, std::string id_prefix,
                                                          std::string model);

struct ImportOptions {
  std::size_t batch = 1000;         // records per atomic upsert_batch (>= 1)
  std::uint64_t skip = 0;           // records to pass over first (resuming: --skip)
  std::uint64_t limit = 0;          // import at most this many after the skipped ones (0: all)
  const volatile std::sig_atomic_t* stop = nullptr;  // set (by SIGINT): finish the batch and stop
};

struct ImportReport {
  std::uint64_t position = 0;   // records of the source behind us: skipped + imported (resume here)
  std::uint64_t written = 0;    // records written
  std::uint64_t unchanged = 0;  // records already stored with the identical value: not written
  bool stopped = false;         // ended by `stop` before the end of the source
};

// Imports `source` into `collection` through `db` (either mode) in atomic batches. Re-importing
// identical records writes nothing new: each record is read first (Backend::get), and a record
// whose stored value has no concurrent siblings and equals the one read (vector, metadata and
// model, bit for bit) is left alone, so neither the store, the delta buffer nor the peers see it
// again. Statuses: the source's; those of upsert_batch and get (other than kNotFound), with
// where the failed batch began ("(earlier batches are stored; resume with --skip N)").
// `progress(position)` is called after each batch.
[[nodiscard]] Status import_records(capi::Backend& db, const std::string& collection, RecordSource& source,
                                    const ImportOptions& options, ImportReport& report,
                                    const std::function<void(std::uint64_t)>& progress);

}  // namespace shoal::node::tools
