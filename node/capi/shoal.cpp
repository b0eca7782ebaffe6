// node/capi/shoal.cpp: the C API (shoal.h). Every entry point checks its arguments, calls the
// handle's backend (node/capi/backend.hpp: embedded, or the client library in client mode),
// catches exceptions (none should escape from our code, but the C boundary must never unwind) and
// turns Statuses into codes plus the optional caller-owned error struct.
#include "node/capi/shoal.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/log.hpp"
#include "node/capi/c_boundary.hpp"
#include "node/capi/backend.hpp"
#include "node/capi/client_loader.hpp"
#include "node/capi/embedded.hpp"
#include "node/capi/mesh_attach.hpp"
#include "node/runtime/data_dir.hpp"

using namespace shoal;
using namespace shoal::node;

// The C codes are the C++ codes: pin them together.
static_assert(SHOAL_EINVAL == static_cast<int>(Code::kInvalidArgument));
static_assert(SHOAL_ENOTFOUND == static_cast<int>(Code::kNotFound));
static_assert(SHOAL_ECONFLICT == static_cast<int>(Code::kConflict));
static_assert(SHOAL_EUNAVAILABLE == static_cast<int>(Code::kUnavailable));
static_assert(SHOAL_EOVERLOADED == static_cast<int>(Code::kOverloaded));
static_assert(SHOAL_EUNAUTHENTICATED == static_cast<int>(Code::kUnauthenticated));
static_assert(SHOAL_ECORRUPTION == static_cast<int>(Code::kCorruption));
static_assert(SHOAL_EIO == static_cast<int>(Code::kIo));
static_assert(SHOAL_EUNIMPLEMENTED == static_cast<int>(Code::kUnimplemented));
static_assert(SHOAL_EINTERNAL == static_cast<int>(Code::kInternal));
static_assert(SHOAL_E_DIMENSION == static_cast<int>(Detail::kDimensionMismatch));
static_assert(SHOAL_E_NONFINITE == static_cast<int>(Detail::kNonFinite));
static_assert(SHOAL_E_ZEROVECTOR == static_cast<int>(Detail::kZeroVector));
static_assert(SHOAL_E_TOOLARGE == static_cast<int>(Detail::kTooLarge));
static_assert(SHOAL_E_OUTOFRANGE == static_cast<int>(Detail::kOutOfRange));
static_assert(SHOAL_E_MALFORMED == static_cast<int>(Detail::kMalformed));
static_assert(SHOAL_E_UNKNOWNNAME == static_cast<int>(Detail::kUnknownName));
static_assert(SHOAL_E_NOCOLLECTION == static_cast<int>(Detail::kNoSuchCollection));
static_assert(SHOAL_E_NORECORD == static_cast<int>(Detail::kNoSuchRecord));
static_assert(SHOAL_E_EXISTS == static_cast<int>(Detail::kAlreadyExists));
static_assert(SHOAL_E_QUEUEFULL == static_cast<int>(Detail::kQueueFull));
static_assert(SHOAL_E_QUOTA == static_cast<int>(Detail::kQuotaExceeded));
static_assert(SHOAL_E_CHECKSUM == static_cast<int>(Detail::kChecksumMismatch));
static_assert(SHOAL_E_TRUNCATED == static_cast<int>(Detail::kTruncated));
static_assert(SHOAL_E_BADMAGIC == static_cast<int>(Detail::kBadMagic));
static_assert(SHOAL_E_MAPFULL == static_cast<int>(Detail::kMapFull));
static_assert(SHOAL_E_DISKFULL == static_cast<int>(Detail::kDiskFull));
static_assert(SHOAL_E_VERSION == static_cast<int>(Detail::kVersionMismatch));
static_assert(SHOAL_E_PARAMETERS == static_cast<int>(Detail::kParameterMismatch));
static_assert(SHOAL_E_SESSIONCLOSED == static_cast<int>(Detail::kSessionClosed));
static_assert(SHOAL_E_BADSIGNATURE == static_cast<int>(Detail::kBadSignature));
static_assert(SHOAL_E_WRONGMESH == static_cast<int>(Detail::kWrongMesh));
static_assert(SHOAL_E_EXPIRED == static_cast<int>(Detail::kExpired));
static_assert(SHOAL_E_NOTYETVALID == static_cast<int>(Detail::kNotYetValid));
static_assert(SHOAL_E_WRONGROLE == static_cast<int>(Detail::kWrongRole));
static_assert(SHOAL_E_REVOKED == static_cast<int>(Detail::kRevoked));
static_assert(SHOAL_E_SELFSIGNED == static_cast<int>(Detail::kSelfSigned));
static_assert(SHOAL_E_STATICKEY == static_cast<int>(Detail::kStaticKeyMismatch));
static_assert(SHOAL_E_UNKNOWNISSUER == static_cast<int>(Detail::kUnknownIssuer));
static_assert(SHOAL_E_DECRYPT == static_cast<int>(Detail::kDecryptFailed));
static_assert(SHOAL_E_KEYPERMS == static_cast<int>(Detail::kInsecurePermissions));
static_assert(SHOAL_E_COLD == static_cast<int>(Detail::kColdUnavailable));
static_assert(SHOAL_MAX_ID_BYTES == 256);
static_assert(SHOAL_MAX_COLLECTION_NAME_BYTES == Limits{}.max_collection_name_bytes);
// shoal_collection_desc grows only at its end; these offsets are the ABI of its first version.
static_assert(offsetof(shoal_collection_desc, name) == 0);
static_assert(sizeof(shoal_collection_desc) == offsetof(shoal_collection_desc, index_bytes) + sizeof(uint64_t));
constexpr std::size_t kCollectionDescV1Size = sizeof(shoal_collection_desc);

struct shoal_options {
  std::uint64_t max_store_bytes = std::uint64_t{64} << 30;
  std::uint32_t timeout_ms = shoal::capi::kDefaultCallTimeoutMs;  // client mode's call deadline
};

// A watch's slot: shoal_close ends the watch (resets `watch`) while the handle stays for
// shoal_unwatch to free.
struct WatchSlot {
  std::mutex mu;
  std::unique_ptr<shoal::capi::Watch> watch;
};

struct shoal_db {
  std::unique_ptr<shoal::capi::Backend> backend;
  // Embedded handles only: what libshoal_mesh attaches to (mesh_attach.hpp); part of `backend`.
  shoal::capi::MeshAttachment* mesh = nullptr;
  std::mutex watches_mu;
  std::vector<std::weak_ptr<WatchSlot>> watches;
  shoal::capi::Backend& b() { return *backend; }
};

struct shoal_watch_handle {
  std::shared_ptr<WatchSlot> slot;
};

struct shoal_freshness {
  std::vector<shoal::capi::Freshness> peers;
};

struct shoal_meta {
  Metadata metadata;
};

struct shoal_name_list {
  std::vector<std::string> names;
};

struct shoal_record {
  GetResult result;
  std::string metadata_json;
};

namespace {

using capi::guarded;
using capi::null_arg;
using capi::report;
using capi::check_hit_count;
using capi::check_search_args;
using capi::put_hit;

Status set_meta(shoal_meta* meta, const char* key, MetaValue v) {
  if (meta == nullptr || key == nullptr) return Status(Code::kInvalidArgument, "meta and key must not be NULL");
  if (*key == '\0') return Status(Detail::kTooLarge, "metadata key must be 1..65535 bytes, got 0");
  // Refused here already, so the app learns which call was wrong; shoal_upsert checks again
  // through validate_record, the check peers' records go through too.
  SHOAL_RETURN_IF_ERROR(validate_utf8("metadata key", key));
  if (const auto* s = std::get_if<std::string>(&v)) {
    SHOAL_RETURN_IF_ERROR(validate_utf8(str_cat("metadata value of key '", key, "'"), *s));
  }
  meta->metadata.fields.emplace_back(key, std::move(v));
  meta->metadata.normalize();
  return {};
}

Metadata copy_meta(const shoal_meta* meta) { return meta == nullptr ? Metadata{} : meta->metadata; }

// Metadata as a JSON object. A store may hold strings from before UTF-8 was enforced: invalid
// bytes in keys and string values become U+FFFD (docs/api.md), so reading never fails.
std::string metadata_json(const Metadata& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m.fields) {
    std::visit(
        [&](const auto& x) {
          if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::string>) {
            j[to_valid_utf8(k)] = to_valid_utf8(x);
          } else {
            j[to_valid_utf8(k)] = x;
          }
        },
        v);
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// SHOAL_METRIC_* (node/capi/shoal.h) is an ABI: its values never change. The one conversion
// from it to the metric; any other value is refused.
constexpr std::optional<Metric> metric_from_c(int m) noexcept {
  switch (m) {
    case SHOAL_METRIC_L2: return Metric::kL2;
    case SHOAL_METRIC_IP: return Metric::kInnerProduct;
    case SHOAL_METRIC_COSINE: return Metric::kCosine;
    default: return std::nullopt;
  }
}
static_assert(SHOAL_METRIC_L2 == 0 && SHOAL_METRIC_IP == 1 && SHOAL_METRIC_COSINE == 2);
// The other direction, for shoal_collection_info.
constexpr shoal_metric metric_to_c(Metric m) noexcept {
  switch (m) {
    case Metric::kL2: return SHOAL_METRIC_L2;
    case Metric::kInnerProduct: return SHOAL_METRIC_IP;
    case Metric::kCosine: return SHOAL_METRIC_COSINE;
  }
  return SHOAL_METRIC_L2;  // unreachable: every decoder refuses other values
}
static_assert(metric_from_c(metric_to_c(Metric::kL2)) == Metric::kL2 &&
              metric_from_c(metric_to_c(Metric::kInnerProduct)) == Metric::kInnerProduct &&
              metric_from_c(metric_to_c(Metric::kCosine)) == Metric::kCosine);
static_assert(metric_from_c(0) == Metric::kL2 && metric_from_c(1) == Metric::kInnerProduct &&
              metric_from_c(2) == Metric::kCosine && !metric_from_c(-1) && !metric_from_c(3));

}  // namespace

extern "C" {

const char* shoal_version(void) { return "0.1.0"; }
int shoal_version_number(void) { return SHOAL_VERSION_NUMBER; }

const char* shoal_strerror(int code) {
  switch (code) {
    case SHOAL_OK: return "ok";
    case SHOAL_E_DIMENSION: return "invalid argument: vector dimension mismatch";
    case SHOAL_E_NONFINITE: return "invalid argument: NaN or infinity";
    case SHOAL_E_ZEROVECTOR: return "invalid argument: zero vector under cosine";
    case SHOAL_E_TOOLARGE: return "invalid argument: size above a limit";
    case SHOAL_E_OUTOFRANGE: return "invalid argument: value out of range";
    case SHOAL_E_MALFORMED: return "invalid argument: malformed input";
    case SHOAL_E_UNKNOWNNAME: return "invalid argument: unknown name";
    case SHOAL_E_NOCOLLECTION: return "not found: no such collection";
    case SHOAL_E_NORECORD: return "not found: no such record";
    case SHOAL_E_EXISTS: return "conflict: already exists";
    case SHOAL_E_MAPFULL: return "I/O error: store reached its maximum size";
    case SHOAL_E_DISKFULL: return "I/O error: disk full";
    case SHOAL_E_VERSION: return "unimplemented: unsupported format version";
    case SHOAL_E_PARAMETERS: return "unimplemented: parameters differ";
    case SHOAL_E_SESSIONCLOSED: return "unavailable: secure session closed";
    case SHOAL_E_BADSIGNATURE: return "unauthenticated: bad signature";
    case SHOAL_E_WRONGMESH: return "unauthenticated: another mesh";
    case SHOAL_E_EXPIRED: return "unauthenticated: certificate expired";
    case SHOAL_E_NOTYETVALID: return "unauthenticated: certificate not yet valid";
    case SHOAL_E_WRONGROLE: return "unauthenticated: role not accepted";
    case SHOAL_E_REVOKED: return "unauthenticated: device revoked";
    case SHOAL_E_SELFSIGNED: return "unauthenticated: self-signed certificate";
    case SHOAL_E_STATICKEY: return "unauthenticated: handshake key is not the certificate's";
    case SHOAL_E_UNKNOWNISSUER: return "unauthenticated: unknown issuer";
    case SHOAL_E_DECRYPT: return "unauthenticated: frame does not authenticate";
    case SHOAL_E_KEYPERMS: return "I/O error: key file readable by others";
    default: break;
  }
  const std::string_view name = code_name(primary_code(static_cast<std::uint32_t>(code)));
  return name.data();  // code_name returns static, NUL-terminated literals
}

shoal_options* shoal_options_new(void) { return new (std::nothrow) shoal_options(); }
void shoal_options_free(shoal_options* opts) { delete opts; }
int shoal_options_set_max_store_bytes(shoal_options* opts, uint64_t bytes, shoal_error* err) {
  if (opts == nullptr) return null_arg("opts", err);
  if (bytes < (std::uint64_t{1} << 20)) {
    return report(Status(Detail::kOutOfRange, "max store bytes must be at least 1048576, got " + std::to_string(bytes)), err);
  }
  opts->max_store_bytes = bytes;
  return report({}, err);
}

int shoal_options_set_timeout_ms(shoal_options* opts, uint32_t timeout_ms, shoal_error* err) {
  if (opts == nullptr) return null_arg("opts", err);
  opts->timeout_ms = timeout_ms;
  return report({}, err);
}

int shoal_open(const char* path, const shoal_options* opts, shoal_db** out, shoal_error* err) {
  if (path == nullptr) return null_arg("path", err);
  if (out == nullptr) return null_arg("out", err);
  *out = nullptr;
  return guarded(err, [&]() -> Status {
    DataDirOptions o;
    if (opts != nullptr) o.max_store_bytes = opts->max_store_bytes;
    shoal::capi::MeshAttachment* mesh = nullptr;
    SHOAL_ASSIGN_OR_RETURN(auto backend, shoal::capi::open_embedded(path, std::move(o), &mesh));
    auto db = std::make_unique<shoal_db>();
    db->backend = std::move(backend);
    db->mesh = mesh;
    *out = db.release();
    return {};
  });
}

int shoal_connect(const char* socket_path, const shoal_options* opts, shoal_db** out, shoal_error* err) {
  // The store size is the daemon's to decide; the call deadline is ours.
  shoal::capi::ConnectOptions options;
  if (opts != nullptr) options.timeout_ms = opts->timeout_ms;
  if (socket_path == nullptr) return null_arg("socket_path", err);
  if (out == nullptr) return null_arg("out", err);
  *out = nullptr;
  return guarded(err, [&]() -> Status {
    SHOAL_ASSIGN_OR_RETURN(auto entry, shoal::capi::load_client_library());
    std::unique_ptr<shoal::capi::Backend> backend;
    SHOAL_RETURN_IF_ERROR(entry.connect_with(socket_path, options, &backend));
    auto db = std::make_unique<shoal_db>();
    db->backend = std::move(backend);
    *out = db.release();
    return {};
  });
}

void shoal_close(shoal_db* db) {
  if (db == nullptr) return;
  try {
    // An embedded mesh the app did not stop (shoal_mesh.h): stopped first, while the node is whole.
    if (db->mesh != nullptr) {
      if (auto stop = db->mesh->take_mesh_stop()) stop();
    }
    std::vector<std::weak_ptr<WatchSlot>> watches;
    {
      std::lock_guard lock(db->watches_mu);
      watches.swap(db->watches);
    }
    for (auto& w : watches) {
      if (auto slot = w.lock()) {
        std::unique_ptr<shoal::capi::Watch> ending;
        {
          std::lock_guard lock(slot->mu);
          ending = std::move(slot->watch);
        }
        ending.reset();
      }
    }
    delete db;
  } catch (...) {
  }
}

int shoal_collection_create(shoal_db* db, const char* name, uint32_t dimension, shoal_metric metric,
                            shoal_error* err) {
  return shoal_collection_create_ex(db, name, dimension, metric, nullptr, err);
}

namespace {

// The first version of shoal_collection_options ends at `quantization`; later versions append.
constexpr std::size_t kCollectionOptionsV1Size = offsetof(shoal_collection_options, quantization) + sizeof(int);

// The spec's index fields from the caller's options (0: the CollectionSpec default). The limits
// themselves are checked by the node (index::validate_params), which names field, range and value.
Status apply_collection_options(const shoal_collection_options& o, CollectionSpec& spec) {
  if (o.struct_size < kCollectionOptionsV1Size) {
    return Status(Code::kInvalidArgument, "shoal_collection_options.struct_size must be at least " +
                                              std::to_string(kCollectionOptionsV1Size) + ", got " +
                                              std::to_string(o.struct_size));
  }
  if (o.struct_size > sizeof(shoal_collection_options)) {
    // A caller built against a later header: refuse only fields it set that this library lacks.
    const auto* extra = reinterpret_cast<const unsigned char*>(&o) + sizeof(shoal_collection_options);
    for (std::size_t i = 0; i < o.struct_size - sizeof(shoal_collection_options); ++i) {
      if (extra[i] != 0) {
        return Status(Code::kUnimplemented, "shoal_collection_options has a field this library (" +
                                                std::to_string(sizeof(shoal_collection_options)) +
                                                " bytes) does not know set at byte " +
                                                std::to_string(sizeof(shoal_collection_options) + i));
      }
    }
  }
  if (o.m != 0) spec.m = o.m;
  if (o.ef_construction != 0) spec.ef_construction = o.ef_construction;
  if (o.ef_search != 0) spec.ef_search = o.ef_search;
  switch (o.quantization) {
    case SHOAL_QUANTIZATION_DEFAULT: break;
    case SHOAL_QUANTIZATION_INT8: spec.quantize = true; break;
    case SHOAL_QUANTIZATION_NONE: spec.quantize = false; break;
    default:
      return Status(Detail::kUnknownName, "unknown quantization " + std::to_string(o.quantization) +
                                              " (SHOAL_QUANTIZATION_DEFAULT 0, _INT8 1, _NONE 2)");
  }
  return {};
}

}  // namespace

int shoal_collection_create_ex(shoal_db* db, const char* name, uint32_t dimension, shoal_metric metric,
                               const shoal_collection_options* opts, shoal_error* err) {
  if (db == nullptr) return null_arg("db", err);
  if (name == nullptr) return null_arg("name", err);
  const std::optional<Metric> m = metric_from_c(static_cast<int>(metric));
  if (!m) {
    return report(Status(Detail::kUnknownName, "unknown metric " + std::to_string(static_cast<int>(metric))), err);
  }
  return guarded(err, [&]() -> Status {
    CollectionSpec spec;
    spec.name = name;
    spec.dimension = dimension;
    spec.metric = *m;
    if (opts != nullptr) SHOAL_RETURN_IF_ERROR(apply_collection_options(*opts, spec));
    return db->b().create_collection(spec);
  });
}

int shoal_collection_drop(shoal_db* db, const char* name, shoal_error* err) {
  if (db == nullptr) return null_arg("db", err);
  if (name == nullptr) return null_arg("name", err);
  return guarded(err, [&] { return db->b().drop_collection(name); });
}

int shoal_collection_count(shoal_db* db, const char* name, uint64_t* out, shoal_error* err) {
  if (db == nullptr) return null_arg("db", err);
  if (name == nullptr) return null_arg("name", err);
  if (out == nullptr) return null_arg("out", err);
  return guarded(err, [&]() -> Status {
    SHOAL_ASSIGN_OR_RETURN(auto info, db->b().collection_info(name));
    *out = info.live_records;
    return {};
  });
}

int shoal_collection_list(shoal_db* db, shoal_name_list** out, shoal_error* err) {
  if (db == nullptr) return null_arg("db", err);
  if (out == nullptr) return null_arg("out", err);
  *out = nullptr;
  return guarded(err, [&]() -> Status {
    auto list = std::make_unique<shoal_name_list>();
    SHOAL_ASSIGN_OR_RETURN(auto infos, db->b().list_collections());
    for (const auto& info : infos) list->names.push_back(info.spec.name);
    std::sort(list->names.begin(), list->names.end());
    *out = list.release();
    return {};
  });
}

size_t shoal_name_list_count(const shoal_name_list* list) { return list == nullptr ? 0 : list->names.size(); }
const char* shoal_name_list_get(const shoal_name_list* list, size_t i) {
  return list == nullptr || i >= list->names.size() ? nullptr : list->names[i].c_str();
}
void shoal_name_list_free(shoal_name_list* list) { delete list; }

int shoal_collection_info(shoal_db* db, const char* name, shoal_collection_desc* out, size_t out_size,
                          shoal_error* err) {
  if (db == nullptr) return null_arg("db", err);
  if (name == nullptr) return null_arg("name", err);
  if (out == nullptr) return null_arg("out", err);
  if (out_size < kCollectionDescV1Size) {
    return report(Status(Code::kInvalidArgument, "out_size must be at least " + std::to_string(kCollectionDescV1Size) +
                                                     " (sizeof(shoal_collection_desc)), got " + std::to_string(out_size)),
                  err);
  }
  return guarded(err, [&]() -> Status {
    SHOAL_ASSIGN_OR_RETURN(auto info, db->b().collection_info(name));
    shoal_collection_desc d{};
    const std::size_t n = std::min(info.spec.name.size(), std::size_t{SHOAL_MAX_COLLECTION_NAME_BYTES});
    std::memcpy(d.name, info.spec.name.data(), n);
    d.name[n] = '\0';
    d.dimension = info.spec.dimension;
    d.metric = metric_to_c(info.spec.metric);
    d.count = info.live_records;
    d.m = info.spec.m;
    d.ef_construction = info.spec.ef_construction;
    d.ef_search = info.spec.ef_search;
    d.quantized = info.spec.quantize ? 1 : 0;
    d.index_bytes = info.index_bytes;
    // A caller compiled against a later, longer struct gets the fields this library knows; the
    // rest of its struct is left as it was.
    std::memcpy(out, &d, std::min(out_size, sizeof d));
    return {};
  });
}

shoal_meta* shoal_meta_new(void) { return new (std::nothrow) shoal_meta(); }
void shoal_meta_free(shoal_meta* meta) { delete meta; }
int shoal_meta_set_string(shoal_meta* meta, const char* key, const char* value, shoal_error* err) {
  if (value == nullptr) return null_arg("value", err);
  return guarded(err, [&] { return set_meta(meta, key, std::string(value)); });
}
int shoal_meta_set_int(shoal_meta* meta, const char* key, int64_t value, shoal_error* err) {
  return guarded(err, [&] { return set_meta(meta, key, std::int64_t{value}); });
}
int shoal_meta_set_float(shoal_meta* meta, const char* key, double value, shoal_error* err) {
  return guarded(err, [&] { return set_meta(meta, key, value); });
}
int shoal_meta_set_bool(shoal_meta* meta, const char* key, int value, shoal_error* err) {
  return guarded(err, [&] { return set_meta(meta, key, value != 0); });
}

int shoal_upsert(shoal_db* db, const char* collection, const char* id, size_t id_len,
                 const float* vector, size_t dimension, const shoal_meta* meta, const char* model,
                 shoal_error* err) {
  if (db == nullptr) return null_arg("db", err);
  if (collection == nullptr) return null_arg("collection", err);
  if (id == nullptr) return null_arg("id", err);
  if (vector == nullptr && dimension != 0) return null_arg("vector", err);
  return guarded(err, [&] {
    RecordValue v;
    v.vector.assign(vector, vector + dimension);
    v.metadata = copy_meta(meta);
    if (model != nullptr) v.model = model;
    return db->b().upsert(collection, std::string(id, id_len), std::move(v));
  });
}

int shoal_upsert_batch(shoal_db* db, const char* collection, size_t count, const char* const* ids,
                       const size_t* id_lens, const float* vectors, size_t dimension,
                       const shoal_meta* const* metas, const char* model, shoal_error* err) {
  if (db == nullptr) return null_arg("db", err);
  if (collection == nullptr) return null_arg("collection", err);
  if (count > 0 && (ids == nullptr || id_lens == nullptr || vectors == nullptr)) {
    return null_arg("ids, id_lens and vectors", err);
  }
  return guarded(err, [&]() -> Status {
    std::vector<RecordInput> recs;
    recs.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      if (ids[i] == nullptr) return Status(Code::kInvalidArgument, "ids[" + std::to_string(i) + "] is NULL");
      RecordValue v;
      v.vector.assign(vectors + i * dimension, vectors + (i + 1) * dimension);
      v.metadata = copy_meta(metas == nullptr ? nullptr : metas[i]);
      if (model != nullptr) v.model = model;
      recs.push_back(RecordInput{std::string(ids[i], id_lens[i]), std::move(v)});
    }
    return db->b().upsert_batch(collection, std::move(recs));
  });
}

int shoal_delete(shoal_db* db, const char* collection, const char* id, size_t id_len, shoal_error* err) {
  if (db == nullptr) return null_arg("db", err);
  if (collection == nullptr) return null_arg("collection", err);
  if (id == nullptr) return null_arg("id", err);
  return guarded(err, [&] { return db->b().remove(collection, std::string(id, id_len)); });
}

int shoal_get(shoal_db* db, const char* collection, const char* id, size_t id_len, shoal_record** out,
              shoal_error* err) {
  if (db == nullptr) return null_arg("db", err);
  if (collection == nullptr) return null_arg("collection", err);
  if (id == nullptr) return null_arg("id", err);
  if (out == nullptr) return null_arg("out", err);
  *out = nullptr;
  return guarded(err, [&]() -> Status {
    SHOAL_ASSIGN_OR_RETURN(auto r, db->b().get(collection, std::string(id, id_len)));
    if (r.record.siblings.empty()) return Status(Code::kInternal, "a record read returned no value");
    auto rec = std::make_unique<shoal_record>();
    rec->metadata_json = metadata_json(r.record.siblings.at(0).value.metadata);
    rec->result = std::move(r.record);
    *out = rec.release();
    // An evicted record the backend could not refill from the sink: its metadata, with the
    // typed error saying why (SHOAL_E_COLD, or SHOAL_E_CHECKSUM for a payload that does not match).
    return r.cold;
  });
}

void shoal_record_free(shoal_record* rec) { delete rec; }

const float* shoal_record_vector(const shoal_record* rec, size_t* dimension) {
  return shoal_record_sibling_vector(rec, 0, dimension);
}
const char* shoal_record_model(const shoal_record* rec) {
  return rec == nullptr ? nullptr : rec->result.siblings.at(0).value.model.c_str();
}
const char* shoal_record_metadata_json(const shoal_record* rec) {
  return rec == nullptr ? nullptr : rec->metadata_json.c_str();
}
size_t shoal_record_sibling_count(const shoal_record* rec) {
  return rec == nullptr ? 0 : rec->result.siblings.size();
}
const float* shoal_record_sibling_vector(const shoal_record* rec, size_t i, size_t* dimension) {
  if (rec == nullptr || i >= rec->result.siblings.size()) {
    if (dimension != nullptr) *dimension = 0;
    return nullptr;
  }
  const auto& v = rec->result.siblings[i].value.vector;
  if (dimension != nullptr) *dimension = v.size();
  return v.data();
}

int shoal_search(shoal_db* db, const char* collection, const float* query, size_t dimension,
                 uint32_t k, uint32_t ef, const char* filter, shoal_hit* hits, size_t capacity,
                 size_t* count, shoal_error* err) {
  return shoal_search_freshness(db, collection, query, dimension, k, ef, filter, hits, capacity, count, nullptr, err);
}

int shoal_search_freshness(shoal_db* db, const char* collection, const float* query, size_t dimension,
                           uint32_t k, uint32_t ef, const char* filter, shoal_hit* hits, size_t capacity,
                           size_t* count, shoal_freshness** freshness, shoal_error* err) {
  if (freshness != nullptr) *freshness = nullptr;
  if (int rc = check_search_args(db, "db", collection, query, dimension, k, hits, capacity, count, err); rc != SHOAL_OK) {
    return rc;
  }
  return guarded(err, [&]() -> Status {
    SHOAL_ASSIGN_OR_RETURN(auto answer, db->b().search(collection, std::span<const float>(query, dimension), k, ef,
                                                       filter == nullptr ? std::string() : std::string(filter),
                                                       /*with_metadata=*/false));
    const auto& found = answer.hits;
    SHOAL_RETURN_IF_ERROR(check_hit_count(found.size(), capacity, k, "the node"));
    std::unique_ptr<shoal_freshness> fresh;
    if (freshness != nullptr) {
      fresh = std::make_unique<shoal_freshness>();
      fresh->peers = std::move(answer.freshness);
    }
    for (std::size_t i = 0; i < found.size(); ++i) put_hit(hits[i], found[i].id, found[i].distance);
    *count = found.size();
    if (freshness != nullptr) *freshness = fresh.release();
    return {};
  });
}

int shoal_search_cold(shoal_db* db, const char* collection, const float* query, size_t dimension, uint32_t k,
                      uint32_t ef, shoal_hit* hits, unsigned char* cold, size_t capacity, size_t* count,
                      shoal_freshness** freshness, int* sink_code, shoal_error* sink_err, shoal_error* err) {
  if (freshness != nullptr) *freshness = nullptr;
  if (int rc = check_search_args(db, "db", collection, query, dimension, k, hits, capacity, count, err); rc != SHOAL_OK) {
    return rc;
  }
  return guarded(err, [&]() -> Status {
    SHOAL_ASSIGN_OR_RETURN(auto answer, db->b().search_cold(collection, std::span<const float>(query, dimension), k, ef));
    SHOAL_RETURN_IF_ERROR(check_hit_count(answer.hits.size(), capacity, k, "the daemon"));
    for (std::size_t i = 0; i < answer.hits.size(); ++i) {
      put_hit(hits[i], answer.hits[i].id, answer.hits[i].distance);
      if (cold != nullptr) cold[i] = answer.hits[i].cold ? 1 : 0;
    }
    *count = answer.hits.size();
    const int code = report(answer.sink_answered ? Status() : answer.sink_error, sink_err);
    if (sink_code != nullptr) *sink_code = code;
    if (freshness != nullptr) {
      auto fresh = std::make_unique<shoal_freshness>();
      fresh->peers = std::move(answer.freshness);
      *freshness = fresh.release();
    }
    return {};
  });
}

size_t shoal_freshness_count(const shoal_freshness* list) { return list == nullptr ? 0 : list->peers.size(); }
const char* shoal_freshness_device(const shoal_freshness* list, size_t i) {
  return list == nullptr || i >= list->peers.size() ? nullptr : list->peers[i].device.c_str();
}
int64_t shoal_freshness_since_last_delta_ms(const shoal_freshness* list, size_t i) {
  return list == nullptr || i >= list->peers.size() ? -1 : list->peers[i].since_last_delta_ms;
}
int shoal_freshness_up(const shoal_freshness* list, size_t i) {
  return list == nullptr || i >= list->peers.size() ? 0 : (list->peers[i].up ? 1 : 0);
}
const uint8_t* shoal_freshness_replica(const shoal_freshness* list, size_t i) {
  if (list == nullptr || i >= list->peers.size() || list->peers[i].replica.size() != 20) return nullptr;
  return reinterpret_cast<const uint8_t*>(list->peers[i].replica.data());
}
void shoal_freshness_free(shoal_freshness* list) { delete list; }

int shoal_stats_json(shoal_db* db, char** out, shoal_error* err) {
  if (out != nullptr) *out = nullptr;
  if (db == nullptr) return null_arg("db", err);
  if (out == nullptr) return null_arg("out", err);
  return guarded(err, [&]() -> Status {
    SHOAL_ASSIGN_OR_RETURN(const std::string text, db->b().stats_json());
    char* copy = static_cast<char*>(std::malloc(text.size() + 1));
    if (copy == nullptr) return Status(Code::kOverloaded, "out of memory");
    std::memcpy(copy, text.c_str(), text.size() + 1);
    *out = copy;
    return {};
  });
}

void shoal_string_free(char* s) { std::free(s); }

int shoal_watch(shoal_db* db, const char* collection, shoal_watch_fn cb, void* ctx, shoal_watch_handle** out,
                shoal_error* err) {
  if (out != nullptr) *out = nullptr;
  if (db == nullptr) return null_arg("db", err);
  if (cb == nullptr) return null_arg("cb", err);
  if (out == nullptr) return null_arg("out", err);
  return guarded(err, [&]() -> Status {
    // The C view of a batch: shoal_change structs pointing into the C++ changes.
    shoal::capi::ChangeSink sink = [cb, ctx](const std::vector<shoal::node::Change>& changes, bool gap) {
      std::vector<shoal_change> c(changes.size());
      std::vector<std::string> origins(changes.size());
      for (std::size_t i = 0; i < changes.size(); ++i) {
        c[i].seq = changes[i].seq;
        c[i].collection = changes[i].collection.c_str();
        c[i].id = changes[i].id.c_str();
        c[i].id_len = changes[i].id.size();
        c[i].deleted = changes[i].deleted ? 1 : 0;
        c[i].origin = nullptr;
        if (changes[i].origin) {
          origins[i] = changes[i].origin->encode();
          c[i].origin = reinterpret_cast<const uint8_t*>(origins[i].data());
        }
      }
      cb(ctx, c.data(), c.size(), gap ? 1 : 0);
    };
    auto slot = std::make_shared<WatchSlot>();
    SHOAL_ASSIGN_OR_RETURN(slot->watch, db->b().watch(collection == nullptr ? std::string() : std::string(collection),
                                                      std::move(sink)));
    {
      std::lock_guard lock(db->watches_mu);
      std::erase_if(db->watches, [](const auto& w) { return w.expired(); });
      db->watches.push_back(slot);
    }
    *out = new shoal_watch_handle{std::move(slot)};
    return {};
  });
}

void shoal_unwatch(shoal_watch_handle* watch) {
  if (watch == nullptr) return;
  try {
    std::unique_ptr<shoal::capi::Watch> ending;
    {
      std::lock_guard lock(watch->slot->mu);
      ending = std::move(watch->slot->watch);
    }
    ending.reset();  // joins the watch's thread (unless called from it)
    delete watch;
  } catch (...) {
  }
}

}  // extern "C"

int shoal_internal_mesh_attachment_v1(shoal_db* db, const char* build_key, void** out, shoal_error* err) {
  if (db == nullptr) return null_arg("db", err);
  if (build_key == nullptr) return null_arg("build_key", err);
  if (out == nullptr) return null_arg("out", err);
  *out = nullptr;
  return guarded(err, [&]() -> Status {
    const std::string mine = shoal::capi::mesh_attach_build_key();
    if (mine != build_key) {
      return Status(Detail::kVersionMismatch, std::string("libshoal_mesh comes from another build than libshoal: '") +
                                                  build_key + "', libshoal has '" + mine + "'");
    }
    if (db->mesh == nullptr) {
      return Status(Code::kInvalidArgument,
                    "the embedded mesh needs an embedded handle (shoal_open); this one is client mode (shoal_connect)");
    }
    *out = db->mesh;
    return {};
  });
}
