// sink/sink_server.hpp: the sink's network side: authenticated links (transport/link.hpp) whose
// Gate hands a member the `Sink` capability (transport/sink.capnp) over a SinkService.
//
// Role: what shoal-sink runs on its loop (and what tests start in-process on loopback). Every
// connection goes through the same stack as the mesh's (TCP, the Noise XX handshake with
// certificates, the sealed channel, Cap'n Proto RPC with a flow limit). The bootstrap capability
// is a Gate (rpc.capnp); its introduce answers:
//   - a member: the Sink capability, built for its certificate: uploadSegment and pushDelta need
//     write access to the collection, coldSearch, fetch and bootstrap read access
//     (Certificate::access); anything else is refused with kWrongRole naming the collection;
//   - a reader or another sink: refused (kWrongRole naming the role), and the link closed;
//     members talk to a sink.
// Every call's parameters are checked against the SinkLimits (the DecodeLimits of this
// capability: names, query length, id counts and sizes, bytes) before the service sees them;
// a refused call fails with the Status (transport::exception_of) and changes nothing.
//
// Ownership: the KjLoop, the SinkService and the credentials' identity must outlive the server;
// destroy the server before the loop. Thread rules: the loop's thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "common/status.hpp"
#include "common/time.hpp"
#include "security/certificate.hpp"
#include "security/identity.hpp"
#include "sink/sink_service.hpp"
#include "transport/kj_loop.hpp"
#include "transport/link.hpp"

namespace shoal::sink {

struct SinkCredentials {
  const security::Identity* identity = nullptr;  // must outlive the server
  std::vector<std::uint8_t> certificate;         // this sink's certificate (role sink)
  security::TrustAnchor anchor;
  // Devices refused at the handshake: the set the sink starts with (its saved set, see
  // SinkServerOptions::revocations_path). It grows as members push theirs (Sink.revocations).
  security::RevocationSet revocations;
};

struct SinkServerOptions {
  std::string listen_address = "127.0.0.1";
  std::uint16_t listen_port = 0;  // 0: any free port
  transport::LinkOptions link;
  transport::ListenerLimits listener;
  // Wall time for acknowledgements (the only clock the service sees).
  std::function<WallTime()> wall_clock = [] { return now_wall(); };
  // Where the revocation set is kept (security::encode_revocations bytes, replaced atomically
  // when it grows); empty: in memory only (tests). load_revocations reads it at start.
  std::string revocations_path;
  // Entries one Sink.revocations call may carry.
  std::size_t max_revocations = 1u << 16;
};

struct SinkServerStats {
  std::uint64_t links_opened = 0;
  std::uint64_t links_closed = 0;
  std::uint64_t introductions_refused = 0;  // a role without the Sink capability
  std::uint64_t calls = 0;
  std::uint64_t calls_refused = 0;          // limits, access, or the service's error
  std::uint64_t revocations = 0;            // devices in the sink's revocation set
  std::uint64_t revocations_rejected = 0;   // pushed entries whose signature did not verify
  std::uint64_t revoked_closed = 0;         // links closed because their device was revoked
};

// The saved revocation set at `path`, every entry verified against `anchor`: an empty set when
// the file does not exist. Statuses: kIo (unreadable), decode_revocations's (a damaged file is an
// error, not an empty set: the operator must look), kBadSignature naming how many entries did not
// verify.
[[nodiscard]] Result<security::RevocationSet> load_revocations(const std::string& path,
                                                               const security::TrustAnchor& anchor);

class SinkServer {
 public:
  // Listens and serves. Statuses: kInvalidArgument (no identity; a certificate that does not
  // decode or is not this identity's), transport::listen's (kIo naming the OS reason).
  [[nodiscard]] static Result<std::unique_ptr<SinkServer>> start(transport::KjLoop& loop, SinkService& service,
                                                                 SinkCredentials credentials,
                                                                 SinkServerOptions options, Logger* logger);
  ~SinkServer();
  SinkServer(const SinkServer&) = delete;
  SinkServer& operator=(const SinkServer&) = delete;

  std::uint16_t port() const noexcept;
  // This sink's replica id on the wire (Intro.replica): the device key's first 16 bytes,
  // incarnation 0.
  const std::string& replica() const noexcept;
  SinkServerStats stats() const noexcept;
  std::size_t links() const noexcept;
  // The sink's revocation set now.
  const security::RevocationSet& revocations() const noexcept;

  struct Impl;

 private:
  explicit SinkServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::sink
