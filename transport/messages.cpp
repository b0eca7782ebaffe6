// transport/messages.cpp: message_name() (see messages.hpp).
#include "transport/messages.hpp"

namespace shoal::transport {

namespace {
struct NameOf {
  const char* operator()(const Hello&) const noexcept { return "hello"; }
  const char* operator()(const DeltaBatch&) const noexcept { return "delta_batch"; }
  const char* operator()(const DeltaAck&) const noexcept { return "delta_ack"; }
  const char* operator()(const DigestQuery&) const noexcept { return "digest_query"; }
  const char* operator()(const DigestReply&) const noexcept { return "digest_reply"; }
  const char* operator()(const BucketQuery&) const noexcept { return "bucket_query"; }
  const char* operator()(const BucketReply&) const noexcept { return "bucket_reply"; }
};
}  // namespace

const char* message_name(const Message& m) noexcept {
  // A valueless variant (only after a throwing move) has no name of its own.
  if (m.valueless_by_exception()) return "invalid";
  return std::visit(NameOf{}, m);
}

}  // namespace shoal::transport
