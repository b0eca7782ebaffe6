// node/store/store.hpp: the narrow transactional key-value interface the node core writes through.
//
// Role: Storage is the one synchronous dependency of the sans-I/O core (docs/architecture.md). A
// Store is an ordered byte-string key-value store with a fixed set of named tables (Table), read
// transactions that see a snapshot, and one write transaction at a time whose commit is atomic and
// durable before it returns OK. Two implementations pass one shared contract test suite
// (tests/store/): LmdbStore (real disk) and MemoryStore (the simulator's model, with faults).
// The store knows nothing of CRDTs: the node core stores its own encoded bytes. The on-disk
// layout (tables, key encodings, schema version) is specified in docs/storage.md.
//
// Thread rules: each implementation's header states its own. Common to both: a ReadTxn and a
// WriteTxn belong to one thread at a time; a WriteTxn never leaves the thread that began it;
// at most one WriteTxn is open per store (LmdbStore blocks a second writer on another thread;
// opening a second one on the same thread is a bug and asserts).
//
// Ownership: a Store owns its transactions' resources; every transaction must be destroyed
// before its Store. Views passed to a scan visitor are valid only during that call.
//
// Invariants: keys are 1..max_key_bytes bytes, values 0..max_value_bytes bytes; ordering is
// bytewise (memcmp, then shorter first), identical in both implementations. A failed write
// operation (full map, full disk, I/O) aborts the whole transaction: nothing of it is visible,
// every later call on it returns the same status, and reads through new transactions keep
// working.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/status.hpp"

namespace shoal::store {

// The fixed set of tables. Numbers are part of the state hash; names are the LMDB database
// names (docs/storage.md). Add new tables at the end and bump kSchemaVersion.
enum class Table : std::uint8_t {
  kRecords = 0,    // record entries, keyed by the node core's encoding
  kContexts = 1,   // causal contexts, one per collection
  kDeltas = 2,     // the durable delta buffer, keyed by encode_u64_be(sequence)
  kCatalogue = 3,  // collections: name -> parameters
  kPeers = 4,      // per-peer progress (acknowledged delta sequence, last seen)
  kMeta = 5,       // schema version, node id, counters; keys "store.*" are reserved
  kVectors = 6,    // float vectors apart from their records, read in place (schema version 2)
  kIndexDirty = 7, // labels whose index state may differ from the index snapshot (version 3)
  kVectorSlabs = 8, // float vectors packed several to a value, read in place (version 5)
};
inline constexpr std::size_t kTableCount = 9;
inline constexpr std::array<Table, kTableCount> kAllTables = {
    Table::kRecords, Table::kContexts, Table::kDeltas, Table::kCatalogue,
    Table::kPeers,   Table::kMeta,     Table::kVectors, Table::kIndexDirty, Table::kVectorSlabs};

// "records", "contexts", "deltas", "catalogue", "peers", "meta", "vectors", "index_dirty",
// "vector_slabs".
// Static strings.
std::string_view table_name(Table table) noexcept;

// The store layout version written to meta at creation and checked at every open.
// Version 2 added the vectors table, version 3 the index_dirty table, version 4 delta-buffer
// entries without payloads (same tables), version 5 the vector_slabs table (the vectors table is
// then left empty), version 6 index_dirty values naming the changed record's id (same tables;
// the node's open state replays from them, D59), version 7 vector slabs stored up to their last
// present slot (same tables; a full-length slab of before is still valid, D75); older stores are
// upgraded at open (docs/storage.md).
inline constexpr std::uint32_t kSchemaVersion = 7;
// The meta key holding the schema version: 4 bytes, big-endian u32.
inline constexpr std::string_view kSchemaVersionKey = "store.schema_version";

// LMDB's compiled-in maximum key size (mdb_env_get_maxkeysize on Debian's liblmdb). Both
// implementations enforce the same limit so the contract suite holds for both.
inline constexpr std::size_t kDefaultMaxKeyBytes = 511;
inline constexpr std::size_t kDefaultMaxValueBytes = std::size_t{64} << 20;

// Big-endian u64 keys sort numerically under bytewise order (the delta buffer's sequence).
std::string encode_u64_be(std::uint64_t v);
// Statuses: kCorruption/kTruncated when `bytes` is not exactly 8 bytes.
[[nodiscard]] Result<std::uint64_t> decode_u64_be(std::string_view bytes);

// A key range for scans: [begin, end), forward or reverse, optionally limited.
struct Range {
  std::string begin;               // inclusive lower bound; "" means from the first key
  std::optional<std::string> end;  // exclusive upper bound; nullopt means past the last key
  bool reverse = false;            // visit from the highest key down
  std::uint64_t limit = 0;         // at most this many entries; 0 means no limit

  static Range all() { return Range{}; }
  static Range between(std::string_view b, std::string_view e) {
    return Range{std::string(b), std::string(e), false, 0};
  }
  // Every key starting with `prefix`.
  static Range prefix(std::string_view prefix);
  Range& reversed() & { reverse = true; return *this; }
  Range&& reversed() && { reverse = true; return std::move(*this); }
  Range&& limited(std::uint64_t n) && { limit = n; return std::move(*this); }
};

// A non-owning reference to a callable, so the virtual scan needs no allocation.
template <typename Sig>
class FunctionRef;
template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F,
            typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
  FunctionRef(F&& f) noexcept  // NOLINT: implicit on purpose, like std::function
      : obj_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, Args... a) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(a)...);
        }) {}
  R operator()(Args... a) const { return call_(obj_, std::forward<Args>(a)...); }

 private:
  void* obj_;
  R (*call_)(void*, Args...);
};

// Called once per entry in order; return false to stop early. The views die with the call.
using Visitor = FunctionRef<bool(std::string_view key, std::string_view value)>;

struct KeyValue {
  std::string key;
  std::string value;
  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

// Operations common to read and write transactions. A write transaction reads its own writes.
class ReadView {
 public:
  virtual ~ReadView() = default;

  // Statuses: kNotFound (detail none) when absent; kIo; kUnavailable after a MemoryStore crash;
  // the transaction's failure status once a write failed. Returns a copy of the value.
  [[nodiscard]] virtual Result<std::string> get(Table table, std::string_view key) = 0;
  // As get, without a copy: the view points into the store's own memory (LmdbStore: the memory
  // map, read in place) and stays valid until this transaction ends, or, in a write transaction,
  // until its next put, del or commit. Its address has no alignment guarantee from the interface
  // (callers that need one check it; docs/storage.md says when LMDB gives one).
  [[nodiscard]] virtual Result<std::string_view> get_view(Table table, std::string_view key) = 0;
  // Visits the entries of `range` in key order (descending when range.reverse). Statuses: as get,
  // never kNotFound (an empty range visits nothing).
  [[nodiscard]] virtual Status scan(Table table, const Range& range, Visitor visit) = 0;
  // The number of entries in the table. Statuses: as scan.
  [[nodiscard]] virtual Result<std::uint64_t> count(Table table) = 0;

  // Convenience: copies up to range.limit entries (all when 0). Statuses: as scan.
  [[nodiscard]] Result<std::vector<KeyValue>> collect(Table table, const Range& range);
};

// A snapshot: sees every transaction committed before it began and nothing later. Destroying it
// releases the snapshot. Keep read transactions short: LmdbStore cannot grow its map while one
// is open (see lmdb_store.hpp).
class ReadTxn : public ReadView {
 public:
  // Which snapshot, at which addresses, this transaction reads: two read transactions with the
  // same non-zero stamp see the same bytes at the same addresses through get_view, and a view
  // read by one stays valid for as long as any transaction with that stamp is open (LmdbStore:
  // the same txnid of the same map; LMDB frees no page of a snapshot while a reader holds it, and
  // the map moves only when it grows). Readers use it to share views between transactions
  // (StoreFloatSource's pointer cache). {} (zero): no such promise (MemoryStore).
  struct Stamp {
    std::uint64_t snapshot = 0;  // LmdbStore: the txnid; 0: none
    std::uint64_t mapping = 0;   // LmdbStore: how many times the map has grown
    friend bool operator==(const Stamp&, const Stamp&) = default;
  };
  virtual Stamp stamp() const noexcept { return {}; }
};

// The one write transaction. Destroying it without commit() aborts it. After commit() or abort()
// the object may only be destroyed (calling anything else is a bug and asserts).
class WriteTxn : public ReadView {
 public:
  // Statuses: kInvalidArgument/kOutOfRange (empty key), kInvalidArgument/kTooLarge (key or value
  // above the limit; message names the limit and the size seen; the transaction stays usable);
  // kIo/kMapFull, kIo/kDiskFull, kIo (the transaction is aborted: see the file invariants).
  [[nodiscard]] virtual Status put(Table table, std::string_view key, std::string_view value) = 0;
  // Deleting an absent key is OK (deletes are idempotent). Statuses: as put.
  [[nodiscard]] virtual Status del(Table table, std::string_view key) = 0;
  // Makes every write of this transaction durable and visible, atomically. Returns OK only once
  // the data is on stable storage. On error nothing of the transaction is applied. Statuses:
  // kIo/kMapFull, kIo/kDiskFull, kIo, kUnavailable (MemoryStore crashed), or the status of an
  // earlier failed put/del.
  [[nodiscard]] virtual Status commit() = 0;
  // Drops every write of this transaction. Idempotent with destruction.
  virtual void abort() noexcept = 0;
};

struct StoreLimits {
  std::size_t max_key_bytes = kDefaultMaxKeyBytes;
  std::size_t max_value_bytes = kDefaultMaxValueBytes;
};

// Resource type: non-copyable, one owner (a unique_ptr held by the node).
class Store {
 public:
  Store() = default;
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Statuses: kIo, kOverloaded (LMDB reader table full), kUnavailable.
  [[nodiscard]] virtual Result<std::unique_ptr<ReadTxn>> begin_read() = 0;
  // Blocks while another thread's write transaction is open (LmdbStore). Statuses: kIo.
  [[nodiscard]] virtual Result<std::unique_ptr<WriteTxn>> begin_write() = 0;
  virtual StoreLimits limits() const noexcept = 0;

  // Statuses shared by implementations, for callers validating before a transaction: kOk, or
  // kInvalidArgument with kOutOfRange (empty key) / kTooLarge (naming the limit and the size).
  [[nodiscard]] Status check_key(Table table, std::string_view key) const;
  [[nodiscard]] Status check_value(Table table, std::string_view key, std::string_view value) const;
};

// A hash of the full logical content of every table (table ids, keys, values, in order).
// Equal content gives equal hashes across implementations and runs; used by property tests
// ("the store is byte-identical after rejected requests"). Statuses: those of scan.
[[nodiscard]] Result<std::uint64_t> state_hash(ReadView& view);
[[nodiscard]] Result<std::uint64_t> state_hash(Store& store);

}  // namespace shoal::store
