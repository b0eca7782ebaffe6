// bench/ann/hnswlib_anchor.hpp: raw hnswlib 0.6.2 as users build it for speed (its own SIMD,
// -O3 -march=native), behind a tiny interface so no hnswlib header reaches the benchmark's
// portable translation unit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace shoal::bench {

class HnswlibAnchor {
 public:
  // hnswlib's two spaces: L2Space (squared L2), and InnerProductSpace (1 - dot), the one users
  // pick for inner product and for cosine on vectors they normalized themselves.
  enum class Space { kL2, kInnerProduct };
  HnswlibAnchor(std::size_t dim, std::size_t max_elements, std::size_t m, std::size_t ef_construction,
                Space space = Space::kL2);
  ~HnswlibAnchor();
  HnswlibAnchor(const HnswlibAnchor&) = delete;
  HnswlibAnchor& operator=(const HnswlibAnchor&) = delete;

  // Adds rows [0, n) of `data` (row-major) with labels 0..n-1, on `threads` threads.
  void build(const float* data, std::size_t n, unsigned threads);
  void set_ef(std::size_t ef);
  // Writes up to k labels, closest first; returns how many.
  std::size_t search(const float* query, std::size_t k, std::uint64_t* labels) const;
  // Bytes hnswlib allocates for the graph and vectors.
  std::size_t memory_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::bench
