// node/mesh/mesh_host.hpp: a node on the real network: the sync engine driven over encrypted
// Cap'n Proto RPC links (docs/architecture.md, "The mesh host").
//
// Role: the runtime layer above the node core and transport/. It listens and dials
// (transport/link.hpp), serves each peer the Gate its certificate allows (a reader gets a
// ReplicaReader, with no write method; transport/rpc.capnp), and is the thin adapter between the
// sans-I/O SyncEngine and RPC: each message the engine emits becomes a call, each call's result is
// fed back to the engine as the reply message, and each call received is handed to the engine,
// whose reply (the DeltaAck, DigestReply or BucketReply it emits for that call) becomes the
// result. The engine decides everything else (what to send, retransmits, repair); this file only
// moves messages. Also here: one link per pair of devices (simultaneous dials resolved by device
// key), redial with jittered exponential backoff, keepalive pings and a deadline on every call,
// closing the links of revoked devices, and the protocol version agreed in the introduction.
// Ownership: the KjLoop, the SharedNode and the RevocationReplica must outlive the host.
// Thread rules: every method on the loop's thread, except notify_local_write() (any thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "common/status.hpp"
#include "common/time.hpp"
#include "node/core/spec.hpp"
#include "node/runtime/revocation_replica.hpp"
#include "node/core/tier_policy.hpp"
#include "node/mesh/sink_uploader.hpp"
#include "node/runtime/shared_node.hpp"
#include "security/certificate.hpp"
#include "security/identity.hpp"
#include "security/mesh.hpp"
#include "transport/discovery.hpp"
#include "transport/kj_loop.hpp"
#include "transport/link.hpp"

namespace shoal::node {

// The sync protocol versions this build speaks (transport::kProtocolVersion is the newest).
inline constexpr std::uint32_t kMinProtocolVersion = 1;

struct MeshPeerAddress {
  std::string host;  // a name or an address
  std::uint16_t port = 0;
  Tier tier = Tier::kHot;
  friend bool operator==(const MeshPeerAddress&, const MeshPeerAddress&) = default;
};

struct MeshOptions {
  std::string listen_address = "127.0.0.1";
  std::uint16_t listen_port = 0;  // 0: any free port (see MeshHost::port)
  // Peers dialed at start and redialed after every loss (warm peers, configured hot peers).
  std::vector<MeshPeerAddress> peers;
  // The tier of a peer that dialed us and is not among `peers`.
  Tier accepted_tier = Tier::kHot;
  // Redial backoff: from min, doubling to max, each wait drawn uniformly in [w/2, w].
  Duration backoff_min = Duration::millis(100);
  Duration backoff_max = Duration::seconds(30);
  // Every up link is pinged this often; a call (ping or sync) without an answer after
  // call_timeout fails, and a failed ping closes the link.
  Duration ping_interval = Duration::seconds(5);
  Duration call_timeout = Duration::seconds(10);
  // A link whose peer has not introduced itself by then is closed.
  Duration introduce_timeout = Duration::seconds(10);
  transport::LinkOptions link;
  transport::ListenerLimits listener;
  // mDNS discovery (transport/discovery.hpp): announce this host on _shoal._tcp.local and dial,
  // as hot peers, the devices found that announce our mesh's hash and a protocol we speak. An
  // answer is only an address hint; the handshake decides. Off by default.
  bool discovery = false;
  transport::DiscoveryOptions discovery_options;
  // What each collection sends warm peers (node/core/tier_policy.hpp), set on the node's sync
  // engine at start; nullopt leaves the node's policies as they are.
  std::optional<TierPolicies> tier_policies;
  // The cold-tier sink this device uploads its sink collections to (node/mesh/sink_uploader.hpp;
  // collections whose TierPolicy has `sink`); nullopt: none, and the node's sink feed stays off.
  std::optional<SinkUploaderOptions> sink;
  SinkFeedOptions sink_feed;  // the quota and upload sizes, when `sink` is set
  // The sync protocol range announced in the introduction (tests narrow it to check refusals).
  std::uint32_t min_protocol = kMinProtocolVersion;
  std::uint32_t max_protocol = transport::kProtocolVersion;
};

// What this device proves and trusts. Copied into the host.
struct MeshCredentials {
  const security::Identity* identity = nullptr;  // must outlive the host
  std::vector<std::uint8_t> certificate;
  security::TrustAnchor anchor;
};

struct MeshStats {
  std::uint64_t links_opened = 0;
  std::uint64_t links_closed = 0;
  std::uint64_t duplicate_links = 0;        // closed by the one-link-per-pair rule
  std::uint64_t version_refusals = 0;       // introductions refused: no common protocol version
  std::uint64_t revoked_closed = 0;         // links closed because their device was revoked
  std::uint64_t calls_sent = 0;
  std::uint64_t calls_failed = 0;           // errors and timeouts of our calls
  std::uint64_t calls_served = 0;
  std::uint64_t calls_refused = 0;          // calls we answered with an error
  std::uint64_t dials = 0;
  std::uint64_t dial_failures = 0;
  std::uint64_t discovered = 0;             // sightings of devices of our mesh (each dialed)
  // Handshakes refused or failed (accepted and dialed), by reason: revoked, expired,
  // not_yet_valid, wrong_mesh, unknown_issuer, bad_signature, self_signed, static_key_mismatch,
  // wrong_role, decrypt_failed, malformed, too_large, timeout, overloaded, closed, other.
  std::map<std::string, std::uint64_t> handshake_failures;
  transport::ListenerStats listener;
  transport::DiscoveryStats discovery;
};

struct MeshPeerView {
  std::string device;       // security::key_label of its device key
  std::string replica;      // crdt::ReplicaId::to_string, empty before the introduction
  std::optional<crdt::ReplicaId> replica_id;  // the same, as an id
  std::string remote;       // address:port
  std::string role;
  Tier tier = Tier::kHot;
  bool dialed = false;
  bool up = false;          // introduced and known to the sync engine
  std::uint32_t protocol = 0;
  transport::LinkStats bytes;
  std::optional<MonoTime> last_delta;  // when a delta batch from it was last applied here
};

class MeshHost {
 public:
  // Listens, dials options.peers and starts serving. Statuses: those of transport::listen;
  // kInvalidArgument (missing identity, an undecodable own certificate).
  [[nodiscard]] static Result<std::unique_ptr<MeshHost>> start(transport::KjLoop& loop, SharedNode& node,
                                                               RevocationReplica& revocations,
                                                               MeshCredentials credentials, MeshOptions options,
                                                               Logger* logger);
  ~MeshHost();
  MeshHost(const MeshHost&) = delete;
  MeshHost& operator=(const MeshHost&) = delete;

  std::uint16_t port() const noexcept;
  // Dials a peer (an address hint from discovery or an operator); one link per device is kept.
  void add_peer(const MeshPeerAddress& peer);
  // New tier policies for the node's sync engine, from the next engine step on (SIGHUP).
  // kOutOfRange (nothing changed) for a policy outside its limits. On the loop's thread.
  [[nodiscard]] Status set_tier_policies(TierPolicies policies);
  // Safe from any thread: the node has new local writes (SharedNode::set_after_write calls it).
  void notify_local_write();
  // Runs the engine now (ticks, dispatches its messages, re-arms its timer).
  void pump();
  // Called after every engine step (on the loop thread), e.g. to wake watchers of changes that
  // peers' deltas made.
  void set_on_step(std::function<void()> fn);
  MeshStats stats() const;
  // The sink link's counters; nullopt when no sink is configured.
  std::optional<SinkUploaderStats> sink_stats() const;
  // A search that includes the cold tier (docs/tiers.md, "Cold search"): this node's answer and
  // the sink's, for the same query, metric and k, merged (Node::merge_cold_hits). When no sink is
  // configured or it does not answer, the local hits come back with `cold_error` saying why.
  struct ColdSearch {
    std::vector<ColdHit> hits;  // closest first; `cold` marks those from the sink
    std::optional<ColdAnswer> sink;  // the sink's freshness (its hits are merged into `hits`)
    Status cold_error;               // why the sink's answer is missing (OK when it is there)
  };
  // Statuses: the node's search's (kNoSuchCollection, kDimensionMismatch...). On the loop's thread.
  kj::Promise<Result<ColdSearch>> search_with_cold(std::string collection, std::vector<float> query,
                                                   SearchOptions options);
  // get of a record that may be evicted (docs/tiers.md, "Eviction"): a whole record as
  // Node::get returns it; a stub's payload is fetched from the sink, checked against the stub's
  // digest (Node::check_refill) and returned with `evicted` cleared (the store keeps the stub:
  // D49). When no sink is configured, it is unreachable or lacks the record, or the payload does
  // not match, the stub comes back as is (metadata, no vector, `evicted` set) with `cold_error`
  // saying why (Detail::kColdUnavailable, or kChecksumMismatch). On the loop's thread.
  struct ColdGet {
    GetResult record;
    Status cold_error;
  };
  kj::Promise<Result<ColdGet>> get_with_cold(std::string collection, std::string id);
  // Restores `collection` from the sink (docs/tiers.md, "Bootstrap from the sink"): pulls its
  // bootstrap pages (Sink.bootstrap) one at a time and joins each into the node
  // (Node::join_sink_page; the first and the last page bring the sink's whole context then: the
  // last judges the records it names, the first the records no page named, so what was deleted
  // stays deleted and what reached the sink during the run stays: D57); peers then bring what
  // the sink lacks, as they always do. A failure leaves the pages joined so far (each is a valid
  // join; running it again is harmless). A collection this device lacks is created first with
  // the sink's dimension and metric (its first page says them; the index options are those of
  // the spec the sink keeps, D62, or the defaults when it keeps none), as if created here. Statuses: kUnavailable (no sink configured, or not connected);
  // the sink's (kNoSuchCollection when it holds none); kNoSuchCollection when the collection is
  // not here and the sink cannot say its dimension (no live record) or metric (no upload said
  // it); create_collection's; kMalformed (a page that does not decode, or one of another
  // collection, or a cursor that does not advance); join_sink_page's. On the loop's thread.
  struct SinkBootstrap {
    std::uint32_t pages = 0;
    std::uint64_t records = 0;  // records the pages carried
    std::uint64_t bytes = 0;    // segment bytes received
    bool created = false;       // the collection was created from the sink's dimension and metric
    std::uint32_t dimension = 0;  // when created: its settings
    Metric metric = Metric::kL2;
    bool options_from_sink = false;  // when created: index options from the sink's spec (D62), not the defaults
  };
  kj::Promise<Result<SinkBootstrap>> bootstrap_from_sink(std::string collection);
  std::vector<MeshPeerView> peers() const;
  // Closes every link (close frames sent where the socket takes them) and stops dialing.
  void stop();

 private:
  struct Impl;
  explicit MeshHost(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::node
