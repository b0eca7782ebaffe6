// node/capi/backend.hpp: what a shoal_db handle dispatches to (internal to libshoal and
// libshoal_client; never installed).
//
// Role: shoal.h has two modes behind one opaque handle. shoal_open() makes an embedded backend
// (node/capi/embedded.cpp: the node in this process, over an OpenDataDir); shoal_connect() makes
// a client backend (node/client/client.cpp: the daemon's Node capability over its Unix socket).
// The C entry points in node/capi/shoal.cpp check their arguments, call one Backend method and
// turn its Status into the code and message, so both modes return the same codes and messages.
// The client backend lives in its own shared library, loaded with dlopen() at the first
// shoal_connect (node/capi/client_loader.cpp), so that libshoal itself links no capnp-rpc, kj-async
// or Boost. The two libraries exchange C++ objects (std::string, Status, node::RecordValue ...):
// they must come from one build, which ClientEntry::build_key checks before anything else is used.
// Thread rules: every Backend method may be called from any number of threads at once. A
// ChangeSink runs on a thread of the backend's own, never on the caller's, one call at a time
// per watch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "node/core/node.hpp"

namespace shoal::capi {

// One peer's contribution to how fresh an answer is (node_api.capnp, Freshness).
struct Freshness {
  std::string replica;                  // 20 bytes, or empty when the daemon did not say
  std::string device;                   // the peer's device label
  std::int64_t since_last_delta_ms = -1;  // -1: no delta from it since the daemon started
  bool up = false;                      // linked now
};

struct SearchAnswer {
  std::vector<node::Hit> hits;
  std::vector<Freshness> freshness;  // empty in embedded mode (no mesh in this process)
};

// A search that includes the cold tier (docs/tiers.md, "Cold search"; node_api.capnp searchCold).
struct ColdSearchAnswer {
  std::vector<node::ColdHit> hits;   // closest first; `cold` marks the sink's (no dots, no metadata)
  std::vector<Freshness> freshness;  // the daemon's peers, as for search
  bool sink_answered = false;        // false: local hits only, and sink_error says why
  Status sink_error;
  std::uint64_t sink_objects = 0;    // when the sink answered: the collection's objects there,
  std::uint64_t sink_records = 0;    // its live records there,
  std::int64_t sink_last_ack_wall_ns = 0;  // and when the sink last acknowledged one (its clock)
};

// A record read (Backend::get). A winner evicted to the cold tier (a stub: docs/tiers.md,
// "Eviction") is refilled from the sink where one is reachable (client mode: the daemon's); when
// it is not, record.siblings[0] keeps the stub's metadata and model with no vector, and `cold`
// says why (Detail::kColdUnavailable, or kChecksumMismatch for a payload that does not match).
struct GetAnswer {
  node::GetResult record;
  Status cold;
};

// What a bootstrap from the sink did (node_api.capnp bootstrapFromSink).
struct SinkBootstrapReport {
  std::uint32_t pages = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  bool created = false;  // the collection was created from the sink's dimension and metric:
  std::uint32_t dimension = 0;
  node::Metric metric = node::Metric::kL2;
};

// Receives a watch's changes in order. `gap`: some changes were missed (the delta buffer was
// trimmed past them, or the connection to the daemon was lost).
using ChangeSink = std::function<void(const std::vector<node::Change>& changes, bool gap)>;

// A running watch. Destroying it ends the watch: when the destructor returns, the sink is not
// running and will not run again (except when the destructor runs on the sink's own thread, from
// inside the sink: then the current call finishes and no other follows).
class Watch {
 public:
  virtual ~Watch() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  [[nodiscard]] virtual Status create_collection(const node::CollectionSpec& spec) = 0;
  [[nodiscard]] virtual Status drop_collection(const std::string& name) = 0;
  [[nodiscard]] virtual Result<std::vector<node::CollectionInfo>> list_collections() = 0;
  [[nodiscard]] virtual Result<node::CollectionInfo> collection_info(const std::string& name) = 0;
  [[nodiscard]] virtual Status upsert(const std::string& collection, std::string id, node::RecordValue value) = 0;
  [[nodiscard]] virtual Status upsert_batch(const std::string& collection, std::vector<node::RecordInput> records) = 0;
  [[nodiscard]] virtual Status remove(const std::string& collection, const std::string& id) = 0;
  // siblings[0] is the winner; only each sibling's value is meaningful in client mode.
  [[nodiscard]] virtual Result<GetAnswer> get(const std::string& collection, const std::string& id) = 0;
  // `filter` is the text of docs/api.md ("Filters"), parsed where the node runs. `with_metadata`:
  // each hit carries its metadata and model tag (the CLI's search; shoal_search passes false).
  [[nodiscard]] virtual Result<SearchAnswer> search(const std::string& collection, std::span<const float> query,
                                                    std::uint32_t k, std::uint32_t ef, const std::string& filter,
                                                    bool with_metadata) = 0;
  // Changes after this call, to records of `collection` ("" for all), until the Watch is destroyed.
  [[nodiscard]] virtual Result<std::unique_ptr<Watch>> watch(const std::string& collection, ChangeSink sink) = 0;
  // The node's statistics as a JSON object (shoal_stats_json). Both modes: "replica",
  // "collections", "live_records", "delta_buffer_entries", "index_bytes", "index_backlog" and
  // "write_groups" ({"groups", "writes", "largest"}: group commit's totals). Client mode adds what
  // the daemon knows (node/daemon/local_api.cpp: "peers", "mesh", "api"); embedded mode adds
  // "last_delta_seq" and "index_source" (how each collection's index was loaded).
  [[nodiscard]] virtual Result<std::string> stats_json() = 0;
  // A search that includes the cold tier, through the daemon's sink. Embedded mode has no sink
  // (only the embedded mesh's shoal_mesh_search_cold reaches one): kUnavailable saying so.
  [[nodiscard]] virtual Result<ColdSearchAnswer> search_cold(const std::string& collection, std::span<const float> query,
                                                             std::uint32_t k, std::uint32_t ef) = 0;
  // Restores `collection` from the daemon's sink (docs/tiers.md, "Bootstrap from the sink"),
  // creating it from the sink's dimension and metric when the device lacks it.
  // Embedded mode: kUnavailable (the daemon holds the sink's link and the device's identity).
  [[nodiscard]] virtual Result<SinkBootstrapReport> bootstrap_from_sink(const std::string& collection) = 0;
  // One page of `collection`'s live records after the record `after` in store order ("" for the
  // first), at most `max_records` (Node::records_after; the daemon caps a page): `shoal export`
  // through the daemon, which holds one page at a time.
  [[nodiscard]] virtual Result<node::RecordsPage> records_after(const std::string& collection,
                                                                const std::string& after,
                                                                std::uint32_t max_records) = 0;
};

// --- The client library's one C entry point ---
// libshoal_client.so exports `shoal_client_entry_v1`, which fills a ClientEntry. libshoal checks
// abi and build_key before calling connect.
// 2: search's with_metadata and stats_json (the vtable changed). 3: ClientEntry::connect_with.
// 4: search_cold and bootstrap_from_sink.
// 5: records_after (the vtable changed). 6: get returns a GetAnswer (the cold tier's refill).
inline constexpr std::uint32_t kBackendAbi = 6;

// Sizes of the objects the two libraries exchange: a different build (another compiler, another
// version of a struct) changes this string, and the client library is then refused.
#define SHOAL_CAPI_STR2(x) #x
#define SHOAL_CAPI_STR(x) SHOAL_CAPI_STR2(x)
#define SHOAL_CAPI_BACKEND_ABI 6  // kBackendAbi, for the build key string
inline std::string backend_build_key() {
  return std::string("shoal-backend abi " SHOAL_CAPI_STR(SHOAL_CAPI_BACKEND_ABI) "; compiler " __VERSION__ "; cplusplus " SHOAL_CAPI_STR(__cplusplus)) +
         "; sizes " + std::to_string(sizeof(Status)) + "," + std::to_string(sizeof(node::RecordValue)) + "," +
         std::to_string(sizeof(node::Metadata)) + "," + std::to_string(sizeof(node::GetResult)) + "," +
         std::to_string(sizeof(node::Sibling)) + "," + std::to_string(sizeof(node::Hit)) + "," +
         std::to_string(sizeof(node::Change)) + "," + std::to_string(sizeof(node::CollectionInfo)) + "," +
         std::to_string(sizeof(node::CollectionSpec)) + "," + std::to_string(sizeof(Freshness)) + "," +
         std::to_string(sizeof(SearchAnswer)) + "," + std::to_string(sizeof(ColdSearchAnswer)) + "," + std::to_string(sizeof(ChangeSink)) + "," +
         std::to_string(sizeof(Result<GetAnswer>)) + "," + std::to_string(sizeof(std::string));
}

// The default call deadline of client mode (shoal_options_set_timeout_ms).
inline constexpr std::uint32_t kDefaultCallTimeoutMs = 30000;

// Client mode's settings (from shoal_options).
struct ConnectOptions {
  // How long a call waits for the daemon's answer before it fails with kUnavailable naming the
  // deadline; 0: no deadline.
  std::uint32_t timeout_ms = kDefaultCallTimeoutMs;
};

struct ClientEntry {
  std::uint32_t abi = 0;         // kBackendAbi of the client library
  const char* build_key = nullptr;  // its backend_build_key(), static storage
  // Connects to the daemon listening on `socket_path`. On success *out is a Backend the caller
  // deletes; on failure returns the Status (kUnavailable when nothing answers there).
  Status (*connect)(const std::string& socket_path, std::unique_ptr<Backend>* out) = nullptr;
  // The same with settings (connect uses the defaults).
  Status (*connect_with)(const std::string& socket_path, const ConnectOptions& options,
                         std::unique_ptr<Backend>* out) = nullptr;
};

// The entry point's name and type.
inline constexpr const char* kClientEntryName = "shoal_client_entry_v1";
using ClientEntryFn = int (*)(ClientEntry* entry, std::size_t entry_size);

}  // namespace shoal::capi
