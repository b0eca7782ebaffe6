// index/snapshot.cpp: the snapshot format (docs/index.md, "Snapshot file format"), its header
// offsets defined once, and HnswIndex::save_snapshot / load_snapshot. The graph's part of the
// payload is read and written by Graph (graph.cpp), which knows hnswlib's layout.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cerrno>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "common/file_io.hpp"
#include "common/hash.hpp"
#include "index/hnsw_index.hpp"
#include "index/hnsw_internal.hpp"

namespace shoal::index {

using detail::Graph;

namespace detail {
Status snapshot_corrupt(const std::string& path, const std::string& why) {
  return Status(Code::kCorruption, "inconsistent snapshot: " + why, path);
}
}  // namespace detail

namespace {

constexpr char kMagic[8] = {'S', 'H', 'O', 'A', 'L', 'I', 'D', 'X'};
// Version 2: inner-product and cosine int8 codes have a step per vector and carry per-vector
// terms (index/quantizer.hpp); version 1's symmetric codes mean something else, so a version 1
// file is refused (kVersionMismatch) and the caller rebuilds from the store.
constexpr std::uint32_t kFormatVersion = 2;
constexpr std::size_t kHeaderBytes = 128;

// Header field offsets (docs/index.md, "Snapshot file format"), the only definition of them.
namespace field {
constexpr std::size_t kVersion = 8;          // u32
constexpr std::size_t kHeaderSize = 12;      // u32
constexpr std::size_t kDimension = 16;       // u32
constexpr std::size_t kMetric = 20;          // u8, metric_to_snapshot_byte
constexpr std::size_t kQuantization = 21;    // u8
constexpr std::size_t kFloatStore = 22;      // u8
constexpr std::size_t kM = 24;               // u32
constexpr std::size_t kEfConstruction = 28;  // u32
constexpr std::size_t kQuantMin = 32;        // f32
constexpr std::size_t kQuantMax = 36;        // f32
constexpr std::size_t kCovered = 40;         // u64
constexpr std::size_t kCount = 48;           // u64
constexpr std::size_t kDeleted = 56;         // u64
constexpr std::size_t kMaxLevel = 64;        // i32
constexpr std::size_t kEntry = 68;           // u32
constexpr std::size_t kDataPerElement = 72;  // u64
constexpr std::size_t kLinksPerLevel = 80;   // u64
constexpr std::size_t kPayload = 88;         // u64
constexpr std::size_t kHeaderHash = 120;     // u64, hash64 of bytes [0, 120)
}  // namespace field
static_assert(field::kHeaderHash + sizeof(std::uint64_t) == kHeaderBytes);

template <typename T>
void put(std::vector<char>& buf, std::size_t offset, T v) {
  std::memcpy(buf.data() + offset, &v, sizeof(T));
}
template <typename T>
T get(const char* p, std::size_t offset) {
  T v;
  std::memcpy(&v, p + offset, sizeof(T));
  return v;
}

// Reads a snapshot file in order through a small buffer (large reads go straight to their
// destination) and hashes every byte it hands out, so that the checksum is known at the end
// without holding the file in memory.
class SnapshotReader {
 public:
  explicit SnapshotReader(int fd) : fd_(fd), buf_(kBufferBytes) {}
  // Copies the next n bytes to dst; false at the end of the file or on an error (error()).
  bool read(void* dst, std::size_t n) {
    char* out = static_cast<char*>(dst);
    const std::size_t want = n;
    while (n > 0) {
      if (at_ < end_) {
        const std::size_t k = std::min(n, end_ - at_);
        std::memcpy(out, buf_.data() + at_, k);
        at_ += k;
        out += k;
        n -= k;
        continue;
      }
      const bool direct = n >= buf_.size();
      const ssize_t r = ::read(fd_, direct ? out : buf_.data(), direct ? n : buf_.size());
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) error_ = errno;
      if (r <= 0) return false;
      if (direct) {
        out += r;
        n -= static_cast<std::size_t>(r);
      } else {
        at_ = 0;
        end_ = static_cast<std::size_t>(r);
      }
    }
    hasher_.update(dst, want);
    consumed_ += want;
    return true;
  }
  // Bytes handed out so far.
  std::uint64_t consumed() const noexcept { return consumed_; }
  // XXH3-64 of every byte read so far.
  std::uint64_t digest() const noexcept { return hasher_.digest(); }
  int error() const noexcept { return error_; }

 private:
  static constexpr std::size_t kBufferBytes = 1 << 20;
  int fd_;
  std::vector<char> buf_;
  std::size_t at_ = 0, end_ = 0;
  Hasher64 hasher_;
  std::uint64_t consumed_ = 0;
  int error_ = 0;
};

Status io_error(const std::string& what, const std::string& path, int err) {
  return Status(Code::kIo, what + ": " + std::strerror(err), path);
}

}  // namespace

Status HnswIndex::save_snapshot(const std::string& path, std::uint64_t covered_position) const {
  if constexpr (std::endian::native != std::endian::little) {
    return Status(Code::kUnimplemented, "snapshots are little-endian only", path);
  }
  std::shared_lock lock(mu_);
  const Graph& g = *graph_;
  const Graph::Layout layout = g.layout();
  const std::size_t count = g.count();
  const std::size_t level0_bytes = count * layout.data_bytes_per_element;
  const std::size_t upper_bytes = count * sizeof(std::uint32_t) + g.upper_link_bytes();
  const std::size_t float_bytes = g.float_store ? count * g.dim * sizeof(float) : 0;
  const std::uint64_t payload = level0_bytes + upper_bytes + float_bytes;

  std::vector<char> header(kHeaderBytes, 0);
  std::memcpy(header.data(), kMagic, sizeof(kMagic));
  put<std::uint32_t>(header, field::kVersion, kFormatVersion);
  put<std::uint32_t>(header, field::kHeaderSize, static_cast<std::uint32_t>(kHeaderBytes));
  put<std::uint32_t>(header, field::kDimension, params_.dimension);
  put<std::uint8_t>(header, field::kMetric, metric_to_snapshot_byte(params_.metric));
  put<std::uint8_t>(header, field::kQuantization, static_cast<std::uint8_t>(params_.quantization));
  put<std::uint8_t>(header, field::kFloatStore, g.float_store ? 1 : (g.source != nullptr ? 2 : 0));
  put<std::uint32_t>(header, field::kM, params_.m);
  put<std::uint32_t>(header, field::kEfConstruction, params_.ef_construction);
  // A calibrated graph records the range its codes cover (0, 0 while it has held no vector).
  put<float>(header, field::kQuantMin, g.calibrated ? (g.has_range ? g.range_lo : 0.0f) : params_.quant_min);
  put<float>(header, field::kQuantMax, g.calibrated ? (g.has_range ? g.range_hi : 0.0f) : params_.quant_max);
  put<std::uint64_t>(header, field::kCovered, covered_position);
  put<std::uint64_t>(header, field::kCount, count);
  put<std::uint64_t>(header, field::kDeleted, g.deleted());
  put<std::int32_t>(header, field::kMaxLevel, layout.max_level);
  put<std::uint32_t>(header, field::kEntry, layout.entry);
  put<std::uint64_t>(header, field::kDataPerElement, layout.data_bytes_per_element);
  put<std::uint64_t>(header, field::kLinksPerLevel, layout.link_bytes_per_level);
  put<std::uint64_t>(header, field::kPayload, payload);
  put<std::uint64_t>(header, field::kHeaderHash, hash64(header.data(), field::kHeaderHash));

  const std::string tmp = path + ".tmp";
  // Owner-only, like the store (0600): the snapshot holds every vector. The mode given to open
  // applies only when the file is created; fchmod also covers a temporary file left behind by a
  // crash with another mode. rename() then carries the mode over any older snapshot at `path`.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("cannot create snapshot", tmp, errno);
  if (::fchmod(fd, 0600) != 0) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return io_error("cannot restrict snapshot permissions", tmp, e);
  }
  Hasher64 hasher;
  bool ok = true;
  auto emit = [&](const void* p, std::size_t n) {
    if (!ok || n == 0) return;
    hasher.update(p, n);
    ok = write_all(fd, p, n);
  };
  emit(header.data(), header.size());
  g.write_links(emit);
  if (float_bytes) emit(g.floats.data(), float_bytes);
  const std::uint64_t digest = hasher.digest();
  if (ok) ok = write_all(fd, &digest, sizeof(digest));
  if (ok && ::fsync(fd) != 0) ok = false;
  const int err = errno;
  if (::close(fd) != 0 && ok) {
    ::unlink(tmp.c_str());
    return io_error("cannot close snapshot", tmp, errno);
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return io_error("cannot write snapshot", tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return io_error("cannot rename snapshot into place", path, e);
  }
  return fsync_dir(parent_dir(path));
}

Result<HnswIndex::Loaded> HnswIndex::load_snapshot(const std::string& path,
                                                   const IndexParams& expected,
                                                   RebuildExecutor executor,
                                                   const FloatSource* floats, std::size_t spare) {
  if constexpr (std::endian::native != std::endian::little) {
    return Status(Code::kUnimplemented, "snapshots are little-endian only", path);
  }
  SHOAL_RETURN_IF_ERROR(validate_params(expected));
  // The header first; the payload is then read straight into the graph's memory (no copy of the
  // whole file: opening holds no more than the index it builds), hashed as it streams by, and the
  // checksum is compared before the index is returned.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open snapshot", path, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return io_error("cannot stat snapshot", path, errno);
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  SnapshotReader in(fd);
  std::vector<char> header(static_cast<std::size_t>(std::min<std::uint64_t>(file_size, kHeaderBytes)));
  if (!in.read(header.data(), header.size())) {
    return in.error() != 0 ? io_error("cannot read snapshot", path, in.error())
                           : Status(Detail::kTruncated, "snapshot ends early", path);
  }
  const char* p = header.data();
  if (header.size() < sizeof(kMagic) || std::memcmp(p, kMagic, sizeof(kMagic)) != 0) {
    return Status(Detail::kBadMagic, "not a Shoal index snapshot", path);
  }
  if (header.size() < field::kVersion + sizeof(std::uint32_t)) return Status(Detail::kTruncated, "snapshot ends inside its header", path);
  const auto version = get<std::uint32_t>(p, field::kVersion);
  if (version != kFormatVersion) {
    return Status(Detail::kVersionMismatch, "snapshot format version " + std::to_string(version) +
                                                ", this build reads version " +
                                                std::to_string(kFormatVersion), path);
  }
  if (header.size() < kHeaderBytes) {
    return Status(Detail::kTruncated, "snapshot ends inside its header (" +
                                          std::to_string(file_size) + " bytes)", path);
  }
  if (get<std::uint64_t>(p, field::kHeaderHash) != hash64(p, field::kHeaderHash)) {
    return Status(Detail::kChecksumMismatch, "snapshot header checksum does not match", path);
  }
  const auto payload = get<std::uint64_t>(p, field::kPayload);
  if (payload > file_size) {
    return Status(Detail::kTruncated, "snapshot has " + std::to_string(file_size) +
                                          " bytes, its header announces a payload of " + std::to_string(payload),
                  path);
  }
  const std::uint64_t expected_size = kHeaderBytes + payload + sizeof(std::uint64_t);
  if (file_size < expected_size) {
    return Status(Detail::kTruncated, "snapshot has " + std::to_string(file_size) +
                                          " bytes, its header announces " +
                                          std::to_string(expected_size), path);
  }
  if (file_size > expected_size) {
    return Status(Detail::kChecksumMismatch, "snapshot has trailing bytes", path);
  }

  // Parameters the file was made for.
  auto mismatch = [&](const char* field, std::string file_v, std::string want) {
    return Status(Detail::kParameterMismatch, std::string("snapshot ") + field + " is " + file_v +
                                                  ", the collection expects " + want, path);
  };
  const auto dimension = get<std::uint32_t>(p, field::kDimension);
  const auto metric_byte = get<std::uint8_t>(p, field::kMetric);
  const std::optional<Metric> metric = metric_from_snapshot_byte(metric_byte);
  const auto quant = static_cast<Quantization>(get<std::uint8_t>(p, field::kQuantization));
  // 0: codes only; 1: float vectors follow the links; 2: read from the caller's FloatSource.
  const auto float_mode = get<std::uint8_t>(p, field::kFloatStore);
  const auto m = get<std::uint32_t>(p, field::kM);
  const auto efc = get<std::uint32_t>(p, field::kEfConstruction);
  const auto qmin = get<float>(p, field::kQuantMin);
  const auto qmax = get<float>(p, field::kQuantMax);
  if (dimension != expected.dimension) return mismatch("dimension", std::to_string(dimension), std::to_string(expected.dimension));
  if (metric != expected.metric) {
    return mismatch("metric", std::to_string(int{metric_byte}), std::string(metric_name(expected.metric)));
  }
  if (m != expected.m) return mismatch("m", std::to_string(m), std::to_string(expected.m));
  if (efc != expected.ef_construction) {
    return mismatch("ef_construction", std::to_string(efc), std::to_string(expected.ef_construction));
  }
  if (quant != expected.quantization) {
    return mismatch("quantization", std::to_string(static_cast<int>(quant)),
                    std::to_string(static_cast<int>(expected.quantization)));
  }
  if (quant == Quantization::kInt8) {
    if (quant_calibrated(expected)) {
      // The file's range is the data's: any finite range with min <= max (0, 0 when empty).
      if (!std::isfinite(qmin) || !std::isfinite(qmax) || qmin > qmax) {
        return detail::snapshot_corrupt(path, "calibrated range " + std::to_string(qmin) + ".." + std::to_string(qmax));
      }
    } else if (qmin != expected.quant_min || qmax != expected.quant_max) {
      return mismatch("quantization range", std::to_string(qmin) + ".." + std::to_string(qmax),
                      std::to_string(expected.quant_min) + ".." + std::to_string(expected.quant_max));
    }
    const std::uint8_t want_mode = !expected.keep_float_vectors ? 0 : (floats != nullptr ? 2 : 1);
    if (float_mode != want_mode) {
      auto name = [](int mode) {
        return std::string(mode == 0 ? "none" : mode == 1 ? "in the snapshot" : mode == 2 ? "read from the store" : "unknown (") +
               (mode > 2 ? std::to_string(mode) + ")" : "");
      };
      return mismatch("float vectors", name(float_mode), name(want_mode));
    }
  }

  const auto covered = get<std::uint64_t>(p, field::kCovered);
  const auto count = get<std::uint64_t>(p, field::kCount);
  Graph::Layout file_layout;
  file_layout.max_level = get<std::int32_t>(p, field::kMaxLevel);
  file_layout.entry = get<std::uint32_t>(p, field::kEntry);
  file_layout.data_bytes_per_element = get<std::uint64_t>(p, field::kDataPerElement);
  file_layout.link_bytes_per_level = get<std::uint64_t>(p, field::kLinksPerLevel);
  auto corrupt = [&](const std::string& why) { return detail::snapshot_corrupt(path, why); };
  if (count > kMaxElements) return corrupt("element count " + std::to_string(count));
  if (spare > kMaxElements - count) {
    return Status(Detail::kTooLarge, std::to_string(count) + " + " + std::to_string(spare) +
                                         " vectors is above the limit " + std::to_string(kMaxElements), path);
  }

  std::unique_ptr<HnswIndex> index(new HnswIndex(expected, std::move(executor)));
  index->floats_ = floats;
  // A damaged file is reported as such (kChecksumMismatch) even when the damage shows first as
  // an inconsistency in the graph: on a parse error the rest is read, and the checksum decides.
  auto read_failed = [&]() {
    return in.error() != 0 ? io_error("cannot read snapshot", path, in.error())
                           : Status(Detail::kTruncated, "snapshot ends early", path);
  };
  auto checksum_status = [&]() -> Status {
    std::vector<char> rest(1 << 16);
    std::uint64_t left = kHeaderBytes + payload - in.consumed();
    while (left > 0) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(left, rest.size()));
      if (!in.read(rest.data(), k)) return read_failed();
      left -= k;
    }
    const std::uint64_t digest = in.digest();
    std::uint64_t stored = 0;
    if (!in.read(&stored, sizeof(stored))) return read_failed();
    if (stored != digest) return Status(Detail::kChecksumMismatch, "snapshot checksum does not match", path);
    return ok_status();
  };
  try {
    auto g = Graph::make(expected, index->kernels_,
                         std::max<std::size_t>(count + spare, expected.initial_capacity), floats);
    // The payload's bytes, in order, each once; never past its end.
    auto take = [&](void* dst, std::size_t n) {
      if (n > kHeaderBytes + payload - in.consumed()) return false;
      return in.read(dst, n);
    };
    Status parsed = [&]() -> Status {
      if (count > 0) g->set_range(qmin, qmax);
      SHOAL_RETURN_IF_ERROR(g->read_links(take, count, file_layout, path));
      if (g->float_store && !take(g->floats.data(), count * g->dim * sizeof(float))) {
        return corrupt("float vectors overrun the payload");
      }
      if (in.error() != 0) return read_failed();
      if (in.consumed() != kHeaderBytes + payload) return corrupt("payload has unparsed bytes");
      return ok_status();
    }();
    const Status sum = checksum_status();
    if (!sum.ok()) return sum;
    SHOAL_RETURN_IF_ERROR(parsed);
    SHOAL_RETURN_IF_ERROR(g->finish_load(count, file_layout, path));
    index->graph_ = std::move(g);
  } catch (const std::exception& e) {
    return detail::hnswlib_error("snapshot load", e);
  }
  Loaded out;
  out.index = std::move(index);
  out.covered_position = covered;
  return out;
}

}  // namespace shoal::index
