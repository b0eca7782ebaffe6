#include "node/runtime/revocation_replica.hpp"

namespace shoal::node {

Result<bool> RevocationReplica::join(std::string_view encoded) {
  if (encoded.empty()) return false;
  SHOAL_ASSIGN_OR_RETURN(auto theirs, security::decode_revocations(std::span<const std::uint8_t>(
                                          reinterpret_cast<const std::uint8_t*>(encoded.data()), encoded.size())));
  const security::JoinStats stats = set_.join(theirs, anchor_);
  rejected_ += stats.rejected;
  return stats.added > 0;
}

std::string RevocationReplica::encode() const {
  if (set_.size() == 0) return {};
  const auto bytes = security::encode_revocations(set_);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace shoal::node
