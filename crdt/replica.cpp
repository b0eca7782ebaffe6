#include "crdt/replica.hpp"

namespace shoal::crdt {

std::string ReplicaId::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < 4; ++i) {
    out.push_back(kHex[identity[i] >> 4]);
    out.push_back(kHex[identity[i] & 0xf]);
  }
  out += "/";
  out += std::to_string(incarnation);
  return out;
}

ReplicaId replica_for_testing(std::uint64_t n, std::uint32_t incarnation) noexcept {
  ReplicaId r;
  for (std::size_t i = 0; i < 8; ++i) r.identity[i] = static_cast<std::uint8_t>(n >> (8 * i));
  r.incarnation = incarnation;
  return r;
}

std::string ReplicaId::encode() const {
  std::string out(reinterpret_cast<const char*>(identity.data()), identity.size());
  for (int i = 0; i < 4; ++i) out += static_cast<char>((incarnation >> (8 * i)) & 0xff);
  return out;
}

bool ReplicaId::decode(std::string_view in, ReplicaId& out) noexcept {
  if (in.size() != kEncodedBytes) return false;
  for (std::size_t i = 0; i < kIdentityBytes; ++i) out.identity[i] = static_cast<std::uint8_t>(in[i]);
  out.incarnation = 0;
  for (int i = 0; i < 4; ++i) {
    out.incarnation |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(in[kIdentityBytes + static_cast<std::size_t>(i)])) << (8 * i);
  }
  return true;
}

std::string Dot::to_string() const { return replica.to_string() + ":" + std::to_string(counter); }

}  // namespace shoal::crdt
