// node/capi/c_boundary.hpp: turning statuses and exceptions into the C API's return codes.
//
// Role: the one definition of the C boundary shared by libshoal (shoal.cpp) and libshoal_mesh
// (node/mesh_capi/shoal_mesh.cpp): a Status becomes its full code and, when the caller passed a
// shoal_error, its message; nothing thrown ever crosses into C. Header-only and internal (each
// library compiles its own copy; nothing here is exported).
// Thread rules: free functions on the caller's thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "common/status.hpp"
#include "node/capi/shoal.h"

namespace shoal::capi {

// Fills `err` (when not null) and returns the full code.
inline int report(const Status& s, shoal_error* err) {
  const int code = static_cast<int>(s.full_code());
  if (err != nullptr) {
    err->code = code;
    // Success is the hot path (every search): no formatting.
    if (s.ok()) {
      std::memcpy(err->message, "ok", 3);
    } else {
      std::snprintf(err->message, sizeof(err->message), "%s", s.to_string().c_str());
    }
  }
  return code;
}

inline int null_arg(const char* what, shoal_error* err) {
  return report(Status(Code::kInvalidArgument, std::string(what) + " must not be NULL"), err);
}

// The argument checks every k-NN entry point shares (shoal_search_freshness, shoal_search_cold,
// shoal_mesh_search_cold): SHOAL_OK, or the code reported for the first bad argument. `handle`
// names the handle argument ("db", "mesh"). *count is zeroed as soon as it may be written.
inline int check_search_args(const void* handle, const char* handle_name, const char* collection, const float* query,
                             size_t dimension, uint32_t k, const shoal_hit* hits, size_t capacity, size_t* count,
                             shoal_error* err) {
  if (count != nullptr) *count = 0;
  if (handle == nullptr) return null_arg(handle_name, err);
  if (collection == nullptr) return null_arg("collection", err);
  if (query == nullptr && dimension != 0) return null_arg("query", err);
  if (count == nullptr) return null_arg("count", err);
  if (hits == nullptr && capacity != 0) return null_arg("hits", err);
  if (capacity < k) {
    return report(Status(Detail::kTooLarge, "k is " + std::to_string(k) + " but the hits array holds " +
                                                std::to_string(capacity)), err);
  }
  return SHOAL_OK;
}

// One hit into the caller's array (the id truncated to SHOAL_MAX_ID_BYTES, NUL-terminated).
inline void put_hit(shoal_hit& out, const std::string& id, float distance) {
  const std::size_t n = std::min(id.size(), std::size_t{SHOAL_MAX_ID_BYTES});
  out.distance = distance;
  out.id_len = n;
  std::memcpy(out.id, id.data(), n);
  out.id[n] = '\0';
}

// An answer of `n` hits for k = `k` that must fit the caller's `capacity` (checked >= k before
// the call): a larger one is a bug on the answering side (`who`), never written past the array.
inline Status check_hit_count(std::size_t n, std::size_t capacity, uint32_t k, const char* who) {
  if (n <= capacity) return {};
  return Status(Code::kInternal,
                std::string(who) + " returned " + std::to_string(n) + " hits for k = " + std::to_string(k));
}

// Runs `f` (returning Status); anything thrown becomes a status (the C boundary never unwinds).
template <typename F>
int guarded(shoal_error* err, F&& f) {
  try {
    return report(f(), err);
  } catch (const std::bad_alloc&) {
    return report(Status(Code::kOverloaded, "out of memory"), err);
  } catch (const std::exception& e) {
    return report(Status(Code::kInternal, std::string("unexpected exception: ") + e.what()), err);
  } catch (...) {
    return report(Status(Code::kInternal, "unexpected exception"), err);
  }
}

}  // namespace shoal::capi
