// node/capi/c_boundary.hpp: turning statuses and exceptions into the C API's return codes.
//
// Role: the one definition of the C boundary shared by libshoal (shoal.cpp) and libshoal_mesh
// (node/mesh_capi/shoal_mesh.cpp): a Status becomes its full code and, when the caller passed a
// shoal_error, its message; nothing thrown ever crosses into C. Header-only and internal (each
// library compiles its own copy; nothing here is exported).
// Thread rules: free functions on the caller's thread.
#pragma once

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
