// node/tools/streams.cpp: see streams.hpp.
#include "node/tools/streams.hpp"

#include "node/tools/records_io.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace shoal::node::tools {

namespace {

std::string hex_bytes(const std::uint8_t* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out += ' ';
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
std::uint32_t le32(const std::uint8_t* p) {
  return (std::uint32_t{p[3]} << 24) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[1]} << 8) | p[0];
}

}  // namespace

Result<std::unique_ptr<ByteReader>> ByteReader::open(const std::string& path) {
  const int fd = path == "-" ? ::dup(0) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status(Code::kNotFound, str_cat("cannot open the file: ", std::strerror(errno)), path);
  return std::unique_ptr<ByteReader>(new ByteReader(fd, path));
}

ByteReader::~ByteReader() {
  if (gzip_) ::inflateEnd(&zs_);
  ::close(fd_);
}

// One read(2): what is there now (at least one byte unless at the end). EINTR is returned as kIo
// (the caller looks at its stop flag).
Result<std::size_t> ByteReader::read_raw(char* out, std::size_t n) {
  const ssize_t got = ::read(fd_, out, n);
  if (got < 0) return Status(Code::kIo, str_cat("reading failed: ", std::strerror(errno)), path_);
  return static_cast<std::size_t>(got);
}

Status ByteReader::fill() {
  pos_ = len_ = 0;
  if (eof_) return {};
  if (first_) {
    first_ = false;
    // Decide gzip or not from the first bytes (one read(2) may give just one byte of a pipe).
    std::size_t have = 0;
    while (have < 2) {
      SHOAL_ASSIGN_OR_RETURN(const std::size_t got, read_raw(raw_.data() + have, raw_.size() - have));
      if (got == 0) break;
      have += got;
    }
    if (have >= 2 && static_cast<unsigned char>(raw_[0]) == 0x1f && static_cast<unsigned char>(raw_[1]) == 0x8b) {
      gzip_ = true;
      if (::inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) return Status(Code::kInternal, "inflateInit2 failed", path_);
      zs_.next_in = reinterpret_cast<Bytef*>(raw_.data());
      zs_.avail_in = static_cast<uInt>(have);
    } else {
      std::memcpy(buf_.data(), raw_.data(), have);
      len_ = have;
      if (have == 0) eof_ = true;
      return {};
    }
  }
  if (!gzip_) {
    SHOAL_ASSIGN_OR_RETURN(len_, read_raw(buf_.data(), buf_.size()));
    if (len_ == 0) eof_ = true;
    return {};
  }
  while (len_ == 0) {
    if (zs_.avail_in == 0) {
      if (raw_eof_) {
        eof_ = true;
        return {};
      }
      SHOAL_ASSIGN_OR_RETURN(const std::size_t got, read_raw(raw_.data(), raw_.size()));
      if (got == 0) {
        raw_eof_ = true;
        continue;
      }
      zs_.next_in = reinterpret_cast<Bytef*>(raw_.data());
      zs_.avail_in = static_cast<uInt>(got);
    }
    zs_.next_out = reinterpret_cast<Bytef*>(buf_.data());
    zs_.avail_out = static_cast<uInt>(buf_.size());
    const int rc = ::inflate(&zs_, Z_NO_FLUSH);
    len_ = buf_.size() - zs_.avail_out;
    if (rc == Z_STREAM_END) {
      ::inflateReset(&zs_);  // a following gzip member, if any
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return Status(Detail::kMalformed, str_cat("not a valid gzip stream: ", zs_.msg != nullptr ? zs_.msg : "?"), path_);
    }
    if (len_ == 0 && raw_eof_ && zs_.avail_in == 0) {
      eof_ = true;
      return {};
    }
  }
  return {};
}

Result<std::size_t> ByteReader::read(void* out, std::size_t n) {
  auto* dst = static_cast<char*>(out);
  std::size_t done = 0;
  while (done < n) {
    if (pos_ == len_) {
      SHOAL_RETURN_IF_ERROR(fill());
      if (len_ == 0) break;
    }
    const std::size_t take = std::min(n - done, len_ - pos_);
    std::memcpy(dst + done, buf_.data() + pos_, take);
    pos_ += take;
    done += take;
  }
  return done;
}

Result<bool> ByteReader::line(std::string& out) {
  out.clear();
  bool any = false;
  for (;;) {
    if (pos_ == len_) {
      SHOAL_RETURN_IF_ERROR(fill());
      if (len_ == 0) break;
    }
    any = true;
    const char* start = buf_.data() + pos_;
    const void* nl = std::memchr(start, '\n', len_ - pos_);
    if (nl != nullptr) {
      const std::size_t take = static_cast<std::size_t>(static_cast<const char*>(nl) - start);
      out.append(start, take);
      pos_ += take + 1;
      if (!out.empty() && out.back() == '\r') out.pop_back();
      return true;
    }
    out.append(start, len_ - pos_);
    pos_ = len_;
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return any;
}

Result<std::unique_ptr<VectorReader>> VectorReader::open(const std::string& path, io::VectorFormat format) {
  SHOAL_ASSIGN_OR_RETURN(auto in, ByteReader::open(path));
  std::unique_ptr<VectorReader> r(new VectorReader(std::move(in), format));
  SHOAL_RETURN_IF_ERROR(r->read_header());
  return r;
}

Status VectorReader::read_header() {
  const std::string& path = in_->path();
  if (format_ == io::VectorFormat::kIdx) {
    std::uint8_t magic[4] = {};
    SHOAL_ASSIGN_OR_RETURN(const std::size_t got, in_->read(magic, 4));
    if (got < 4 || magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] < 1 || magic[3] > 3) {
      return Status(Detail::kMalformed, str_cat("not an IDX file: it must start with the bytes 00 00 08 <1..3>, but it "
                                                "starts with ", hex_bytes(magic, got)), path);
    }
    std::uint8_t sizes[12] = {};
    const std::size_t nd = magic[3];
    SHOAL_ASSIGN_OR_RETURN(const std::size_t got2, in_->read(sizes, 4 * nd));
    if (got2 < 4 * nd) return Status(Detail::kMalformed, "truncated IDX header", path);
    rows_ = be32(sizes);
    std::uint64_t d = 1;
    for (std::size_t i = 1; i < nd; ++i) d *= be32(sizes + 4 * i);
    if (d == 0 || d > 65536) return Status(Detail::kMalformed, str_cat("IDX rows of ", d, " values are not supported"), path);
    dim_ = static_cast<std::size_t>(d);
    return {};
  }
  if (format_ == io::VectorFormat::kFvecs) return {};  // each row carries its dimension
  // .npy: checked strictly by records_io.cpp (the writer of .npy exports lives there too).
  SHOAL_ASSIGN_OR_RETURN(const NpyShape shape, read_npy_header(*in_));
  rows_ = shape.rows;
  dim_ = shape.dim;
  return {};
}

Result<bool> VectorReader::next(std::vector<float>& out) {
  const std::string& path = in_->path();
  if (rows_ && row_ >= *rows_) {
    // A .npy holds exactly the rows its shape says; more bytes mean a wrong shape or a damaged file.
    if (format_ == io::VectorFormat::kNpy && !trailing_checked_) {
      trailing_checked_ = true;
      char extra = 0;
      SHOAL_ASSIGN_OR_RETURN(const std::size_t got, in_->read(&extra, 1));
      if (got != 0) {
        return Status(Detail::kMalformed, str_cat("the .npy file has bytes after the ", *rows_, " x ", dim_,
                                                  " float32 values its shape announces"), path);
      }
    }
    return false;
  }
  if (format_ == io::VectorFormat::kFvecs) {
    std::uint8_t d4[4] = {};
    SHOAL_ASSIGN_OR_RETURN(const std::size_t got, in_->read(d4, 4));
    if (got == 0) return false;
    if (got < 4) return Status(Detail::kMalformed, str_cat("truncated .fvecs row ", row_), path);
    const std::uint32_t d = le32(d4);
    if (d == 0 || d > 65536) {
      return Status(Detail::kMalformed,
                    str_cat(".fvecs row ", row_, " announces dimension ", d,
                            " (this reader takes 1..65536; each row starts with its dimension as a little-endian u32: "
                            "is this an .fvecs file?)"),
                    path);
    }
    if (dim_ == 0) dim_ = d;
    if (d != dim_) {
      return Status(Detail::kDimensionMismatch, str_cat(".fvecs row ", row_, " has dimension ", d, ", row 0 had ", dim_), path);
    }
  }
  out.resize(dim_);
  if (format_ == io::VectorFormat::kIdx) {
    raw_.resize(dim_);
    SHOAL_ASSIGN_OR_RETURN(const std::size_t got, in_->read(raw_.data(), dim_));
    if (got < dim_) {
      return Status(Detail::kMalformed, str_cat("truncated: the IDX header announces ", *rows_, " rows, the file ends in row ", row_), path);
    }
    for (std::size_t i = 0; i < dim_; ++i) out[i] = static_cast<float>(raw_[i]);
  } else {
    SHOAL_ASSIGN_OR_RETURN(const std::size_t got, in_->read(out.data(), dim_ * sizeof(float)));
    if (got < dim_ * sizeof(float)) {
      return Status(Detail::kMalformed, str_cat("truncated: the file ends in row ", row_), path);
    }
  }
  ++row_;
  return true;
}

}  // namespace shoal::node::tools
