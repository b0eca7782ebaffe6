#include "node/io/datasets.hpp"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string_view>

#include "common/log.hpp"

namespace shoal::io {

namespace {
constexpr std::size_t kDefaultMaxFileBytes = std::size_t{8} << 30;  // 8 GiB

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The first `n` bytes as hex pairs ("72 6f 6f 74"), for messages about files that are not ours.
std::string hex_bytes(const std::string& b, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n && i < b.size(); ++i) {
    const auto c = static_cast<unsigned char>(b[i]);
    if (i > 0) out += ' ';
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
}  // namespace

VectorFormat guess_format(const std::string& path) noexcept {
  if (ends_with(path, ".fvecs")) return VectorFormat::kFvecs;
  if (ends_with(path, ".npy")) return VectorFormat::kNpy;
  return VectorFormat::kIdx;
}

Result<std::string> read_file_maybe_gz(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::kIo, str_cat("cannot open file: ", std::strerror(errno)), path);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status(Code::kIo, "read failed", path);
  if (raw.size() < 2 || static_cast<unsigned char>(raw[0]) != 0x1f ||
      static_cast<unsigned char>(raw[1]) != 0x8b) {
    if (raw.size() > max_bytes) {
      return Status(Detail::kTooLarge, str_cat("file is ", raw.size(), " bytes, limit ", max_bytes), path);
    }
    return raw;
  }
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return Status(Code::kInternal, "inflateInit2 failed");
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return Status(Detail::kMalformed, str_cat("gzip stream is corrupt (zlib code ", rc, ")"), path);
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (out.size() > max_bytes) {
      inflateEnd(&zs);
      return Status(Detail::kTooLarge, str_cat("decompressed size exceeds the limit of ", max_bytes, " bytes"), path);
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      return Status(Detail::kMalformed, "gzip stream ends early (truncated)", path);
    }
  }
  inflateEnd(&zs);
  return out;
}

Result<VectorSet> parse_idx(const std::string& bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4 || p[0] != 0 || p[1] != 0) {
    return Status(Detail::kMalformed,
                  str_cat("not an IDX file: it must start with the bytes 00 00 08 <1..3>, but ",
                          bytes.size() < 4 ? str_cat("it has only ", bytes.size(), " bytes")
                                           : str_cat("it starts with ", hex_bytes(bytes, 4))));
  }
  if (p[2] != 0x08) {
    return Status(Detail::kMalformed, str_cat("IDX element type 0x", std::hex, int{p[2]},
                                              " is not supported; only unsigned bytes (0x08)"));
  }
  const unsigned ndim = p[3];
  if (ndim < 1 || ndim > 3) return Status(Detail::kMalformed, str_cat("IDX has ", ndim, " dimensions; expected 1..3"));
  if (bytes.size() < 4 + 4 * std::size_t{ndim}) return Status(Detail::kMalformed, str_cat("IDX header is truncated: ", ndim, " dimensions need ", 4 + 4 * std::size_t{ndim}, " bytes, the file has ", bytes.size()));
  std::size_t count = be32(p + 4);
  std::size_t dim = 1;
  for (unsigned i = 1; i < ndim; ++i) dim *= be32(p + 4 + 4 * i);
  const std::size_t header = 4 + 4 * std::size_t{ndim};
  if (dim == 0 || count > (bytes.size() - header) / dim || count * dim != bytes.size() - header) {
    return Status(Detail::kMalformed, str_cat("IDX header says ", count, " x ", dim,
                                              " bytes but the file holds ", bytes.size() - header,
                                              " (truncated or not an IDX file)"));
  }
  VectorSet out;
  out.count = count;
  out.dimension = dim;
  out.data.resize(count * dim);
  for (std::size_t i = 0; i < count * dim; ++i) out.data[i] = static_cast<float>(p[header + i]);
  return out;
}

Result<VectorSet> parse_fvecs(const std::string& bytes) {
  VectorSet out;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    std::int32_t d = 0;
    if (bytes.size() - pos < 4) return Status(Detail::kMalformed, str_cat("fvecs: truncated dimension at byte ", pos));
    std::memcpy(&d, bytes.data() + pos, 4);
    pos += 4;
    if (d <= 0 || d > 1 << 20) return Status(Detail::kMalformed, str_cat("fvecs: dimension ", d, " at byte ", pos - 4));
    if (out.count == 0) out.dimension = static_cast<std::size_t>(d);
    if (static_cast<std::size_t>(d) != out.dimension) {
      return Status(Detail::kDimensionMismatch, str_cat("fvecs: vector ", out.count, " has dimension ", d,
                                                        ", the first has ", out.dimension));
    }
    const std::size_t n = out.dimension * 4;
    if (bytes.size() - pos < n) return Status(Detail::kMalformed, str_cat("fvecs: vector ", out.count, " is truncated: it needs ", n, " bytes at byte ", pos, ", the file has ", bytes.size() - pos));
    const std::size_t at = out.data.size();
    out.data.resize(at + out.dimension);
    std::memcpy(out.data.data() + at, bytes.data() + pos, n);
    pos += n;
    ++out.count;
  }
  return out;
}

Result<VectorSet> parse_npy(const std::string& bytes) {
  static constexpr std::string_view kMagic("\x93NUMPY", 6);
  if (bytes.size() < 10 || std::string_view(bytes).substr(0, 6) != kMagic) {
    return Status(Detail::kMalformed,
                  str_cat("not a .npy file: it must start with \\x93NUMPY, but ",
                          bytes.size() < 6 ? str_cat("it has only ", bytes.size(), " bytes")
                                           : str_cat("it starts with ", hex_bytes(bytes, 6))));
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0, pos = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (std::size_t{static_cast<unsigned char>(bytes[9])} << 8);
    pos = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return Status(Detail::kMalformed, ".npy header is truncated");
    std::uint32_t l = 0;
    std::memcpy(&l, bytes.data() + 8, 4);
    header_len = l;
    pos = 12;
  } else {
    return Status(Detail::kVersionMismatch, str_cat(".npy format version ", major, " is not supported"));
  }
  if (bytes.size() - pos < header_len) {
    return Status(Detail::kMalformed, str_cat(".npy header is truncated: it says ", header_len,
                                              " bytes, the file has ", bytes.size() - pos));
  }
  const std::string_view h(bytes.data() + pos, header_len);
  pos += header_len;
  if (h.find("'descr': '<f4'") == std::string_view::npos) {
    return Status(Detail::kMalformed, ".npy array must be little-endian float32 ('<f4')");
  }
  if (h.find("'fortran_order': False") == std::string_view::npos) {
    return Status(Detail::kMalformed, ".npy array must be in C order");
  }
  auto sp = h.find("'shape': (");
  if (sp == std::string_view::npos) return Status(Detail::kMalformed, ".npy header has no shape");
  sp += 10;
  std::size_t dims[2] = {0, 1};
  int nd = 0;
  while (sp < h.size() && h[sp] != ')') {
    if (h[sp] == ' ' || h[sp] == ',') { ++sp; continue; }
    std::size_t v = 0;
    bool any = false;
    while (sp < h.size() && h[sp] >= '0' && h[sp] <= '9') {
      if (v > (std::size_t{1} << 40)) return Status(Detail::kMalformed, ".npy shape is too large");
      v = v * 10 + static_cast<std::size_t>(h[sp] - '0');
      ++sp;
      any = true;
    }
    if (!any || nd == 2) return Status(Detail::kMalformed, ".npy shape must be (n,) or (n, d)");
    dims[nd++] = v;
  }
  if (nd == 0) return Status(Detail::kMalformed, ".npy shape must be (n,) or (n, d)");
  VectorSet out;
  out.count = dims[0];
  out.dimension = dims[1];
  if (out.dimension == 0 || out.count > (bytes.size() - pos) / 4 / out.dimension ||
      out.count * out.dimension * 4 != bytes.size() - pos) {
    return Status(Detail::kMalformed, str_cat(".npy shape (", out.count, ", ", out.dimension,
                                              ") does not match the ", bytes.size() - pos, " data bytes"));
  }
  out.data.resize(out.count * out.dimension);
  std::memcpy(out.data.data(), bytes.data() + pos, out.data.size() * 4);
  return out;
}

Result<VectorSet> read_vectors(const std::string& path, VectorFormat format, std::size_t limit) {
  SHOAL_ASSIGN_OR_RETURN(std::string bytes, read_file_maybe_gz(path, kDefaultMaxFileBytes));
  Result<VectorSet> r = format == VectorFormat::kFvecs ? parse_fvecs(bytes)
                        : format == VectorFormat::kNpy ? parse_npy(bytes)
                                                       : parse_idx(bytes);
  if (!r.ok()) return r.status().with_context(path);
  if (limit != 0 && r->count > limit) {
    r->count = limit;
    r->data.resize(limit * r->dimension);
  }
  return r;
}

}  // namespace shoal::io
