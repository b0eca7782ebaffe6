// node/tools/streams.hpp: the CLI's streaming readers for `shoal import`: files are read in
// chunks of kChunkBytes, never whole, so an import's memory is bounded by one batch of records
// whatever the file's size.
//
// ByteReader reads a file or standard input ("-"), gunzipping it when it starts with the gzip
// magic (zlib's inflate, concatenated members too), as bytes or as lines. It returns what one
// read(2) gives, so lines from a pipe or FIFO are seen as they arrive (zlib's gzread would wait
// for a whole buffer). VectorReader reads
// the rows of an IDX (the MNIST family, u8 pixels as floats 0..255), .fvecs or .npy (float32, C
// order, shape (n, d)) file one at a time; its header checks and messages follow
// node/io/datasets.hpp (invalid input is kMalformed or kDimensionMismatch with the reason, an
// unreadable file kIo or kNotFound, never a corruption code).
// Thread rules: one thread per reader.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "common/status.hpp"
#include "node/io/datasets.hpp"

namespace shoal::node::tools {

inline constexpr std::size_t kChunkBytes = std::size_t{1} << 16;

class ByteReader {
 public:
  // kNotFound when `path` cannot be opened (the message names it).
  [[nodiscard]] static Result<std::unique_ptr<ByteReader>> open(const std::string& path);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  // Reads up to n bytes into out; fewer only at the end of the file. kIo on a read error (an
  // interrupted read too: the caller looks at its stop flag first).
  [[nodiscard]] Result<std::size_t> read(void* out, std::size_t n);
  // The next line, without its "\n" (and a "\r" before it); false at the end of the file.
  [[nodiscard]] Result<bool> line(std::string& out);
  const std::string& path() const noexcept { return path_; }

 private:
  ByteReader(int fd, std::string path) : fd_(fd), path_(std::move(path)), buf_(kChunkBytes), raw_(kChunkBytes) {}
  Status fill();
  Result<std::size_t> read_raw(char* out, std::size_t n);

  int fd_;
  std::string path_;
  std::vector<char> buf_;  // decoded bytes
  std::vector<char> raw_;  // compressed bytes (gzip only)
  bool first_ = true, gzip_ = false, raw_eof_ = false;
  z_stream zs_{};
  std::size_t pos_ = 0, len_ = 0;
  bool eof_ = false;
};

class VectorReader {
 public:
  [[nodiscard]] static Result<std::unique_ptr<VectorReader>> open(const std::string& path, io::VectorFormat format);
  std::size_t dimension() const noexcept { return dim_; }
  // The number of rows the header announces (IDX, npy); nullopt for .fvecs.
  std::optional<std::uint64_t> rows() const noexcept { return rows_; }
  // The next row into `out` (dimension() floats); false at the end of the file.
  [[nodiscard]] Result<bool> next(std::vector<float>& out);

 private:
  explicit VectorReader(std::unique_ptr<ByteReader> in, io::VectorFormat f) : in_(std::move(in)), format_(f) {}
  Status read_header();

  std::unique_ptr<ByteReader> in_;
  io::VectorFormat format_;
  std::size_t dim_ = 0;
  std::optional<std::uint64_t> rows_;
  std::uint64_t row_ = 0;
  bool trailing_checked_ = false;
  std::vector<std::uint8_t> raw_;
};

}  // namespace shoal::node::tools
