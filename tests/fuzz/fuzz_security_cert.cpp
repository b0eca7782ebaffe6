// libFuzzer target: security::decode_certificate and decode_revocations on arbitrary bytes.
// Proves (by not crashing under ASan+UBSan) that both decoders never crash, assert or read out of
// bounds, and that whatever they accept is canonical: re-encoding gives back the input bytes.
// Verification of an accepted certificate must also return without crashing. A violation traps.
#include <cstddef>
#include <cstdint>
#include <span>

#include "security/certificate.hpp"
#include "security/revocation.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shoal::security;
  const std::span<const std::uint8_t> bytes(data, size);
  auto cert = decode_certificate(bytes);
  if (cert.ok()) {
    auto again = encode_certificate(*cert);
    if (!again.ok() || again->size() != size ||
        !std::equal(again->begin(), again->end(), bytes.begin())) {
      __builtin_trap();
    }
    TrustAnchor anchor;
    anchor.authorities = {cert->issuer_key};
    RevocationSet none;
    (void)verify_certificate(*cert, anchor, none, shoal::WallTime(), RoleSet::all(), nullptr);
    (void)cert->access("photos");
  } else if (cert.status().message().empty()) {
    __builtin_trap();
  }
  auto set = decode_revocations(bytes, 64);
  if (set.ok()) {
    auto again = encode_revocations(*set);
    if (again.size() != size || !std::equal(again.begin(), again.end(), bytes.begin())) {
      __builtin_trap();
    }
  }
  return 0;
}
