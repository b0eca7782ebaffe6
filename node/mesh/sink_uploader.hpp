// node/mesh/sink_uploader.hpp: the device's link to its cold-tier sink (docs/tiers.md, "The sink
// feed"; issue 15). The node core decides what to upload (Node::next_sink_upload,
// node/core/node_sink_feed.cpp); this file only moves it: it dials the sink (the mesh's
// connection stack: TCP, Noise XX with certificates, the sealed channel, Cap'n Proto RPC),
// introduces itself at the sink's Gate, calls Sink.pushDelta for each upload and reports the
// durable acknowledgement back to the node. One upload is in flight at a time, so the sink
// receives the buffer in order. A failed call or a lost link is retried after a jittered backoff;
// nothing is acknowledged to the node that the sink did not acknowledge. It also pushes the mesh's
// revocation set to the sink (Sink.revocations) after each introduction and when the set grows.
// Ownership: the KjLoop and the SharedNode must outlive the uploader; the LinkSecurity's
// identity, anchor and revocation callback too.
// Thread rules: every method on the loop's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/log.hpp"
#include "common/time.hpp"
#include "node/runtime/shared_node.hpp"
#include "transport/kj_loop.hpp"
#include "transport/link.hpp"

namespace shoal::node {

struct SinkUploaderOptions {
  std::string host;  // the sink's address (a name or an address)
  std::uint16_t port = 0;
  // How often the feed is looked at when it had nothing to send (new writes and peers' deltas
  // are picked up within this), and the retry backoff after a failure (doubling, jittered).
  Duration poll = Duration::millis(200);
  Duration backoff_min = Duration::millis(500);
  Duration backoff_max = Duration::seconds(60);
  // A pushDelta without an answer after this fails (and is retried).
  Duration call_timeout = Duration::seconds(30);
  transport::LinkOptions link;
  // Eviction to stubs (Node::set_eviction; docs/tiers.md, "Eviction"): the vector bytes this
  // device keeps before it evicts acknowledged, old records of sink collections. 0: never. While
  // the feed has nothing to send, each poll runs one bounded Node::evict_step.
  std::uint64_t payload_budget_bytes = 0;
  // The index memory of sink collections' records this device keeps before it evicts (D68;
  // EvictionOptions::memory_budget_bytes). 0: no memory budget.
  std::uint64_t memory_budget_bytes = 0;
};

struct SinkUploaderStats {
  std::string address;              // "host:port", as configured
  bool connected = false;           // a link with the Sink capability is up
  std::uint64_t dials = 0;
  std::uint64_t dial_failures = 0;  // connects, handshakes and introductions that failed
  std::uint64_t uploads = 0;        // pushDelta calls the sink acknowledged
  std::uint64_t upload_failures = 0;
  std::uint64_t bytes = 0;          // delta bytes the sink acknowledged
  std::uint64_t last_ack_seq = 0;   // the sink's sequence number of its last acknowledgement
  std::optional<WallTime> last_ack; // when it came (this device's wall clock)
  std::string last_error;           // the last failure, for status pages
  std::uint64_t sink_revocations = 0;  // the sink's revocation set's size after our last push
};

// The sink's answer to a cold search (Sink.coldSearch): its hits and how current it is.
struct ColdAnswer {
  std::vector<ColdHit> hits;        // closest first
  std::uint64_t objects = 0;        // the collection's objects at the sink
  std::uint64_t records = 0;        // its live records there
  std::int64_t last_ack_wall_ns = 0;  // when the sink last acknowledged an object of it
};

// One page of the sink's bootstrap of a collection (Sink.bootstrap; sink/sink_service.hpp).
struct SinkBootstrapPage {
  std::string segment;     // the records after the cursor, an encoded segment (docs/sink-format.md)
  std::string context;     // on the last page: the collection's whole causal context
  std::string next_after;  // the cursor for the next page
  bool done = false;
  std::uint32_t dimension = 0;          // the collection's at the sink (0: no live record there)
  std::optional<Metric> metric;         // as the members' uploads said it (nullopt: none did)
  // The spec the latest upload said (D62; nullopt: none did, or a sink from before it): its index
  // options are the collection's on its members. Read, not validated (create_collection does).
  std::optional<CollectionSpec> spec;
};

class SinkUploader {
 public:
  // Turns the node's sink feed on (Node::enable_sink_feed with `feed`) and starts dialing.
  // Statuses: enable_sink_feed's.
  [[nodiscard]] static Result<std::unique_ptr<SinkUploader>> start(transport::KjLoop& loop, SharedNode& node,
                                                                   const transport::LinkSecurity& security,
                                                                   SinkUploaderOptions options,
                                                                   const SinkFeedOptions& feed, Logger* logger);
  ~SinkUploader();
  SinkUploader(const SinkUploader&) = delete;
  SinkUploader& operator=(const SinkUploader&) = delete;

  // Asks the sink for the k nearest records of `collection` (metric: the wire byte). Fails with
  // kUnavailable when no link is up; otherwise the sink's status or the call's failure.
  kj::Promise<Result<ColdAnswer>> cold_search(const std::string& collection, std::vector<float> query,
                                              std::uint32_t k, std::uint8_t metric);
  // The sink's payload of record `id` (Sink.fetch), for refilling a stub: nullopt when the sink
  // does not have it. Fails with kUnavailable when no link is up; otherwise the sink's status or
  // the call's failure.
  kj::Promise<Result<std::optional<std::string>>> fetch(const std::string& collection, const std::string& id);
  // One bootstrap page of `collection` after the cursor `after` ("" to start). Fails as
  // cold_search does.
  kj::Promise<Result<SinkBootstrapPage>> bootstrap_page(const std::string& collection, const std::string& after);
  // Looks at the feed now (after local writes or peers' deltas), if no upload is in flight.
  void poke();
  SinkUploaderStats stats() const;
  // Closes the link and stops (an upload in flight is not acknowledged to the node).
  void stop();

 private:
  struct Impl;
  explicit SinkUploader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::node
