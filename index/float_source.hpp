// index/float_source.hpp: where an int8 index reads the float vectors it re-ranks with, when it
// does not keep a copy of them itself.
//
// Role: an int8 graph holds one byte per component; the final candidates of a search are
// re-ranked with exact float distances (IndexParams::keep_float_vectors). Without a source the
// index keeps those floats in its own memory (capacity x dimension x 4 bytes). With a source it
// keeps none and reads each vector by label when it needs it: the node's source reads the
// store's vectors table in place, from LMDB's memory map (docs/decisions.md, D43), so the
// vectors live once, in the page cache, and only the ones a search touches are resident.
//
// What the index reads, and when: the re-ranked candidates of a search (ef of them), the coarse
// winners of an exact scan, every stored vector when a new extreme widens a calibrated int8
// range (re-encoding), and the live vectors a rebuild copies. A label the source does not hold
// (nullptr: deleted since, not yet written) falls back to the distance from the codes, or to the
// decoded codes.
//
// Thread rules: reader() is called from any thread, concurrently (searches run in parallel, the
// rebuild runs on its own thread). A FloatReader belongs to the thread that made it and lives
// for one operation (a search, a re-encoding pass, a slice of a rebuild's copy): keep it short,
// since the node's reader holds an LMDB read transaction, which holds off the map's growth.
//
// Ownership: the source outlives every index created with it (the node keeps it beside the
// index, declared before it). Pointers returned by a reader live until the reader is destroyed
// or its next get().
#pragma once

#include <cstdint>
#include <memory>
#include <span>

namespace shoal::index {

class FloatReader {
 public:
  virtual ~FloatReader() = default;
  // The vector of `label` as it was given to the index's add (dimension floats; for cosine not
  // yet normalized: the index normalizes), or nullptr when the source holds none. 4-byte aligned.
  // Valid until the next get() or the reader's destruction.
  virtual const float* get(std::uint64_t label) = 0;
  // The vectors of labels[i] into out[i] (nullptr for none), all valid together until the next
  // get() or get_many() or the reader's destruction. A search re-ranks its candidates with one
  // call, so the reader can look them up in one pass and the index can prefetch every vector
  // before it reads the first. The default calls get() per label: a reader whose get() reuses a
  // buffer (a copy of an unaligned vector) must override it.
  virtual void get_many(std::span<const std::uint64_t> labels, const float** out) {
    for (std::size_t i = 0; i < labels.size(); ++i) out[i] = get(labels[i]);
  }
};

class FloatSource {
 public:
  virtual ~FloatSource() = default;
  // A reader over a consistent view of the vectors (the node's: one read transaction). May
  // return nullptr when none can be opened (the store failed): the index then uses the codes.
  virtual std::unique_ptr<FloatReader> reader() const = 0;
};

}  // namespace shoal::index
