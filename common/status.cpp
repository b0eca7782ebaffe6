#include "common/status.hpp"

#include <cstdio>
#include <cstdlib>

namespace shoal {

namespace detail {
void assert_fail(const char* condition, const char* file, int line) noexcept {
  std::fprintf(stderr, "shoal: assertion failed: %s (%s:%d)\n", condition, file, line);
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail

std::string_view code_name(Code code) noexcept {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kConflict: return "conflict";
    case Code::kUnavailable: return "unavailable";
    case Code::kOverloaded: return "overloaded";
    case Code::kUnauthenticated: return "unauthenticated";
    case Code::kCorruption: return "corruption";
    case Code::kIo: return "I/O error";
    case Code::kUnimplemented: return "unimplemented";
    case Code::kInternal: return "internal error";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  std::string out(code_name(code()));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  if (!context_.empty()) {
    out += " [";
    out += context_;
    out += "]";
  }
  return out;
}

}  // namespace shoal
