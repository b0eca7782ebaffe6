// node/io/datasets.hpp: readers for the vector files the CLI imports and the benchmarks use.
//
// Formats: IDX (the MNIST family: magic 0x0000 08 <ndim>, big-endian u32 sizes, u8 data; the
// file may be gzip-compressed, detected by its magic), .fvecs (per vector: little-endian i32
// dimension then that many f32), and .npy version 1/2/3 holding a C-order little-endian float32
// ('<f4') array of shape (n, d). Every header field is checked against the file size before
// anything is allocated, so a corrupt or hostile file gets a typed Status, never a crash or a
// huge allocation.
//
// Statuses: a file is an argument of the caller, never Shoal's own state, so everything wrong
// with its bytes is invalid input (fix the call), with the reason in the message:
// - kMalformed: not a file of the format at all (/etc/passwd read as IDX: "not an IDX file ...
//   starts with 72 6f 6f 74"), an unsupported element type or layout, a header that does not
//   match the data (also a truncated file: the message says "truncated"), a corrupt or truncated
//   gzip stream;
// - kDimensionMismatch: .fvecs rows of different dimensions;
// - kTooLarge: above `max_bytes`;
// - kVersionMismatch (unimplemented): a .npy format version other than 1, 2 or 3;
// - kIo: the file cannot be opened or read.
// Corruption codes (kCorruption, kTruncated, kBadMagic, kChecksumMismatch) are never returned:
// they mean "quarantine and re-sync" Shoal's own store or snapshots, which an operator alerts on.
// Thread rules: pure functions of their inputs; each call opens its own file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace shoal::io {

struct VectorSet {
  std::size_t count = 0;
  std::size_t dimension = 0;
  std::vector<float> data;  // count x dimension, row-major
  const float* row(std::size_t i) const noexcept { return data.data() + i * dimension; }
};

enum class VectorFormat { kIdx, kFvecs, kNpy };

// Guesses the format from the file name: *.fvecs, *.npy, anything else IDX (e.g.
// train-images-idx3-ubyte.gz).
VectorFormat guess_format(const std::string& path) noexcept;

// Reads a whole file, gunzipping when it starts with the gzip magic. `max_bytes` bounds the
// decompressed size (kTooLarge beyond it).
Result<std::string> read_file_maybe_gz(const std::string& path, std::size_t max_bytes);

// Parses the bytes of each format. IDX images of shape (n, rows, cols) become n vectors of
// rows*cols floats with the pixel values 0..255 unchanged; a 1-d IDX (labels) becomes n x 1.
Result<VectorSet> parse_idx(const std::string& bytes);
Result<VectorSet> parse_fvecs(const std::string& bytes);
Result<VectorSet> parse_npy(const std::string& bytes);

// Reads `path` in `format` (or the guessed one), at most `limit` vectors (0 = all).
Result<VectorSet> read_vectors(const std::string& path, VectorFormat format, std::size_t limit = 0);

}  // namespace shoal::io
