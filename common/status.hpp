// common/status.hpp: Status and Result<T>, the error values every Shoal module returns.
//
// Role: a fallible function returns Status or Result<T>, both [[nodiscard]]. We never throw;
// exceptions from capnp and hnswlib are caught at the codec, the index adapter and the C
// boundary and turned into a Status.
//
// Codes: a 32-bit integer. The low byte is the primary code, grouped by what the caller should
// do (the table of Code below); the bits above it are an optional detail code that names
// the precise cause. Checking `code & 0xff` keeps working when new detail codes appear. Every
// number here is stable, never reused, and shared with the C API (shoal.h mirrors them; a
// static_assert there keeps them equal). Add new detail codes at the end of their group.
//
// Ownership: a Status owns its message and context strings. An OK status allocates nothing.
// Thread rules: values; no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/assert.hpp"

namespace shoal {

// Primary codes, by caller action. Values are part of the C ABI.
enum class Code : std::uint8_t {
  kOk = 0,
  kInvalidArgument = 1,  // fix the call
  kNotFound = 2,         // normal outcome
  kConflict = 3,         // re-read
  kUnavailable = 4,      // reconnect
  kOverloaded = 5,       // back off
  kUnauthenticated = 6,  // stop
  kCorruption = 7,       // quarantine and re-sync
  kIo = 8,               // report or retry
  kUnimplemented = 9,    // fall back (also: unsupported version)
  kInternal = 10,        // bug
};

// Detail codes: the full 32-bit value, primary code in the low byte. Values are part of the C ABI.
enum class Detail : std::uint32_t {
  kNone = 0,
  // invalid argument
  kDimensionMismatch = (1u << 8) | 1u,
  kNonFinite = (2u << 8) | 1u,
  kZeroVector = (3u << 8) | 1u,
  kTooLarge = (4u << 8) | 1u,   // a size above a limit: ids, metadata, batches, k
  kOutOfRange = (5u << 8) | 1u, // a number outside its allowed range: ef, k = 0, a parameter
  kMalformed = (6u << 8) | 1u,  // bytes or text that do not parse
  kUnknownName = (7u << 8) | 1u,
  // not found
  kNoSuchCollection = (1u << 8) | 2u,
  kNoSuchRecord = (2u << 8) | 2u,
  // conflict
  kAlreadyExists = (1u << 8) | 3u,
  // overloaded
  kQueueFull = (1u << 8) | 5u,
  kQuotaExceeded = (2u << 8) | 5u,
  // corruption
  kChecksumMismatch = (1u << 8) | 7u,
  kTruncated = (2u << 8) | 7u,
  kBadMagic = (3u << 8) | 7u,
  // I/O
  kMapFull = (1u << 8) | 8u,
  kDiskFull = (2u << 8) | 8u,
  // unimplemented / version
  kVersionMismatch = (1u << 8) | 9u,
  kParameterMismatch = (2u << 8) | 9u,
  // unauthenticated (security/: certificates, the handshake and the sealed channel)
  kBadSignature = (1u << 8) | 6u,       // a signature that does not verify
  kWrongMesh = (2u << 8) | 6u,          // a certificate or prologue for another mesh
  kExpired = (3u << 8) | 6u,            // a certificate past its not_after
  kNotYetValid = (4u << 8) | 6u,        // a certificate before its not_before
  kWrongRole = (5u << 8) | 6u,          // a role the verifier does not accept here
  kRevoked = (6u << 8) | 6u,            // a device key in the revocation set
  kSelfSigned = (7u << 8) | 6u,         // signed by the device key, not the authority
  kStaticKeyMismatch = (8u << 8) | 6u,  // the Noise static key is not the certificate's key
  kUnknownIssuer = (9u << 8) | 6u,      // issued by a key that is not a trusted authority
  kDecryptFailed = (10u << 8) | 6u,     // an AEAD tag that does not verify (tampered, replayed)
  // unavailable
  kSessionClosed = (1u << 8) | 4u,      // a secure session already closed by an earlier error
  kColdUnavailable = (2u << 8) | 4u,    // an evicted record whose payload the sink cannot give now
  // I/O
  kInsecurePermissions = (3u << 8) | 8u,  // a key file readable by group or others
};

constexpr Code primary_code(std::uint32_t full) noexcept {
  return static_cast<Code>(full & 0xffu);
}
constexpr std::uint32_t full_code(Detail d) noexcept { return static_cast<std::uint32_t>(d); }

// A stable, static name for a primary code ("invalid argument", ...).
std::string_view code_name(Code code) noexcept;

class [[nodiscard]] Status {
 public:
  Status() noexcept = default;
  Status(Code code, std::string message, std::string context = {})
      : code_(static_cast<std::uint32_t>(code)),
        message_(std::move(message)),
        context_(std::move(context)) {}
  Status(Detail detail, std::string message, std::string context = {})
      : code_(static_cast<std::uint32_t>(detail)),
        message_(std::move(message)),
        context_(std::move(context)) {}

  static Status ok_status() noexcept { return Status(); }

  bool ok() const noexcept { return code_ == 0; }
  Code code() const noexcept { return primary_code(code_); }
  // The full code: primary in the low byte, detail above. This is what the C API returns.
  std::uint32_t full_code() const noexcept { return code_; }
  Detail detail() const noexcept { return static_cast<Detail>(code_); }
  const std::string& message() const noexcept { return message_; }
  // What the status is about: a peer, key, collection or file. May be empty.
  const std::string& context() const noexcept { return context_; }

  // "invalid argument: vector dimension 3 does not match collection dimension 4 [ctx]".
  std::string to_string() const;

  // Returns a copy with `context` set, keeping code and message.
  Status with_context(std::string context) const {
    return Status(code_, message_, std::move(context));
  }

  friend bool operator==(const Status& a, const Status& b) noexcept {
    return a.code_ == b.code_ && a.message_ == b.message_ && a.context_ == b.context_;
  }

 private:
  Status(std::uint32_t code, std::string message, std::string context)
      : code_(code), message_(std::move(message)), context_(std::move(context)) {}

  std::uint32_t code_ = 0;
  std::string message_;
  std::string context_;
};

inline Status ok_status() noexcept { return Status(); }

// Result<T>: a T or a non-OK Status. Reading the value of an error result is a bug and asserts.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<1>, std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Status status) : v_(std::in_place_index<0>, std::move(status)) {  // NOLINT
    SHOAL_ASSERT(!std::get<0>(v_).ok());
  }

  bool ok() const noexcept { return v_.index() == 1; }
  explicit operator bool() const noexcept { return ok(); }

  const Status& status() const& noexcept {
    static const Status kOk;
    return ok() ? kOk : std::get<0>(v_);
  }
  Status take_status() && { return ok() ? Status() : std::move(std::get<0>(v_)); }

  T& value() & {
    SHOAL_ASSERT(ok());
    return std::get<1>(v_);
  }
  const T& value() const& {
    SHOAL_ASSERT(ok());
    return std::get<1>(v_);
  }
  T&& value() && {
    SHOAL_ASSERT(ok());
    return std::get<1>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<1>(v_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<Status, T> v_;
};

}  // namespace shoal

#define SHOAL_CONCAT_INNER_(a, b) a##b
#define SHOAL_CONCAT_(a, b) SHOAL_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function when it is not OK.
#define SHOAL_RETURN_IF_ERROR(expr)              \
  do {                                           \
    ::shoal::Status shoal_status_ = (expr);      \
    if (!shoal_status_.ok()) return shoal_status_; \
  } while (0)

// `SHOAL_ASSIGN_OR_RETURN(auto x, f());` declares x from the value of a Result, or returns its
// status from the enclosing function.
#define SHOAL_ASSIGN_OR_RETURN(lhs, expr) \
  SHOAL_ASSIGN_OR_RETURN_IMPL_(SHOAL_CONCAT_(shoal_result_, __LINE__), lhs, expr)
#define SHOAL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).take_status(); \
  lhs = std::move(tmp).value()
