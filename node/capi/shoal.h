/* shoal.h: the C API of Shoal, an embeddable vector database for disconnected edge devices.
 *
 * Two modes, one handle. Embedded mode: shoal_open() runs a node inside the calling process, on a
 * data directory that holds an LMDB environment. Client mode: shoal_connect() talks to a running
 * daemon (shoald) over its Unix socket; every call below works the same on either handle, with
 * the same codes and messages (docs/api.md, "Client mode"). Everything below is C99 and
 * ABI-stable within a major version.
 *
 * Conventions
 * - Every fallible call returns an int code: 0 (SHOAL_OK) on success. The low byte is the
 *   primary code, grouped by what the caller should do (SHOAL_EINVAL: fix the call, ...); the
 *   bits above it are a detail code (SHOAL_E_DIMENSION, ...). Test `(rc & 0xff)` to survive new
 *   detail codes. shoal_strerror(rc) gives a static description.
 * - The last argument of a fallible call is an optional, caller-owned `shoal_error *err` (may be
 *   NULL). On failure it receives the code and a message naming the limit and the value seen.
 *   Nothing to free, and no "last error" state.
 * - Handles are opaque. Each has a constructor and a destructor; destructors accept NULL.
 * - Inputs are copied; nothing the caller passes is retained after a call returns.
 * - Fixed-size outputs (top-k hits) go to caller arrays with a capacity and an out-count.
 *   Variable-size outputs (a record read by shoal_get) are library objects freed by their
 *   matching shoal_*_free; pointers read from them live until that free.
 * - Lengths are size_t. Strings are NUL-terminated UTF-8 unless a length is given.
 *
 * Threads: a shoal_db handle may be used from any number of threads at once; calls are
 * serialised inside (client mode: sent on the handle's one connection, answered in parallel). A
 * shoal_record or shoal_meta belongs to one thread at a time. The library runs threads of its
 * own: watch callbacks (shoal_watch), in embedded mode an index thread (it inserts acknowledged
 * writes into the search index; until then searches scan them exactly, so a search always sees
 * every acknowledged write) and, in client mode, the connection's.
 * Durability: when shoal_upsert, shoal_upsert_batch or shoal_delete returns SHOAL_OK, the change
 * is committed and synced to disk and survives a crash or power loss. Writes made at the same
 * time from several threads share one commit and one sync (group commit), each returning only
 * after the commit that holds it.
 */
#ifndef SHOAL_H
#define SHOAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SHOAL_BUILDING_LIBRARY)
#define SHOAL_API __attribute__((visibility("default")))
#else
#define SHOAL_API
#endif

/* Compile-time version; shoal_version_number() gives the run-time one. */
#define SHOAL_VERSION_MAJOR 0
#define SHOAL_VERSION_MINOR 1
#define SHOAL_VERSION_PATCH 0
#define SHOAL_VERSION_NUMBER (SHOAL_VERSION_MAJOR * 10000 + SHOAL_VERSION_MINOR * 100 + SHOAL_VERSION_PATCH)

/* Primary codes (the low byte of every return code). Stable; never reused. */
#define SHOAL_OK 0
#define SHOAL_EINVAL 1           /* invalid argument: fix the call */
#define SHOAL_ENOTFOUND 2        /* not found: a normal outcome */
#define SHOAL_ECONFLICT 3        /* conflict: re-read */
#define SHOAL_EUNAVAILABLE 4     /* unavailable: reconnect */
#define SHOAL_EOVERLOADED 5      /* overloaded: back off */
#define SHOAL_EUNAUTHENTICATED 6 /* unauthenticated: stop */
#define SHOAL_ECORRUPTION 7      /* corruption: quarantine and re-sync */
#define SHOAL_EIO 8              /* I/O: report or retry */
#define SHOAL_EUNIMPLEMENTED 9   /* unimplemented or unsupported version: fall back */
#define SHOAL_EINTERNAL 10       /* internal: a bug in Shoal */

/* Detail codes: (detail << 8) | primary. */
#define SHOAL_E_DIMENSION 0x101      /* vector dimension differs from the collection's */
#define SHOAL_E_NONFINITE 0x201      /* NaN or infinity in a vector or a float value */
#define SHOAL_E_ZEROVECTOR 0x301     /* zero vector under the cosine metric */
#define SHOAL_E_TOOLARGE 0x401       /* a size above a limit (id, metadata, batch, k) */
#define SHOAL_E_OUTOFRANGE 0x501     /* a number outside its range (ef, k = 0, ...) */
#define SHOAL_E_MALFORMED 0x601      /* text or bytes that do not parse */
#define SHOAL_E_UNKNOWNNAME 0x701    /* an unknown name (metric, option) */
#define SHOAL_E_NOCOLLECTION 0x102   /* no such collection */
#define SHOAL_E_NORECORD 0x202       /* no such record */
#define SHOAL_E_EXISTS 0x103         /* already exists */
#define SHOAL_E_QUEUEFULL 0x105
#define SHOAL_E_QUOTA 0x205
#define SHOAL_E_CHECKSUM 0x107
#define SHOAL_E_TRUNCATED 0x207
#define SHOAL_E_BADMAGIC 0x307
#define SHOAL_E_MAPFULL 0x108        /* the store reached its configured maximum size */
#define SHOAL_E_DISKFULL 0x208       /* the disk is full */
#define SHOAL_E_VERSION 0x109        /* a format or protocol version this build cannot read */
#define SHOAL_E_PARAMETERS 0x209     /* parameters differ from what a file was made for */
/* Mesh security (docs/security.md): why a peer, a certificate or a session was refused. Not
   returned by the local calls above; reported by the mesh and by client mode. */
#define SHOAL_E_SESSIONCLOSED 0x104  /* a secure session already closed by an earlier error */
#define SHOAL_E_BADSIGNATURE 0x106   /* a signature that does not verify */
#define SHOAL_E_WRONGMESH 0x206      /* a certificate or handshake for another mesh */
#define SHOAL_E_EXPIRED 0x306        /* a certificate past its not_after */
#define SHOAL_E_NOTYETVALID 0x406    /* a certificate before its not_before */
#define SHOAL_E_WRONGROLE 0x506      /* a role not accepted here */
#define SHOAL_E_REVOKED 0x606        /* a revoked device key */
#define SHOAL_E_SELFSIGNED 0x706     /* a certificate signed by the device, not the authority */
#define SHOAL_E_STATICKEY 0x806      /* the handshake key is not the certificate's key */
#define SHOAL_E_UNKNOWNISSUER 0x906  /* issued by a key that is not a trusted authority */
#define SHOAL_E_DECRYPT 0xa06        /* a frame that does not authenticate (tampered, replayed) */
#define SHOAL_E_KEYPERMS 0x308       /* a key file readable by group or others */
#define SHOAL_E_COLD 0x204           /* an evicted record (a stub) whose payload the sink cannot give now */

#define SHOAL_ERROR_MESSAGE_BYTES 256
#define SHOAL_MAX_ID_BYTES 256
#define SHOAL_MAX_COLLECTION_NAME_BYTES 64

typedef struct shoal_error {
  int code;                                /* the full code, as returned */
  char message[SHOAL_ERROR_MESSAGE_BYTES]; /* NUL-terminated, truncated if longer */
} shoal_error;

typedef enum shoal_metric { SHOAL_METRIC_L2 = 0, SHOAL_METRIC_IP = 1, SHOAL_METRIC_COSINE = 2 } shoal_metric;

typedef struct shoal_db shoal_db;
typedef struct shoal_options shoal_options;
typedef struct shoal_meta shoal_meta;
typedef struct shoal_record shoal_record;

/* One search hit: a fixed-size value written into a caller array. */
typedef struct shoal_hit {
  float distance;                   /* smaller is closer for every metric */
  size_t id_len;
  char id[SHOAL_MAX_ID_BYTES + 1];  /* NUL-terminated copy of the record id */
} shoal_hit;

/* Versions. */
SHOAL_API const char *shoal_version(void);   /* "0.1.0", static */
SHOAL_API int shoal_version_number(void);    /* SHOAL_VERSION_NUMBER of the library */
/* A static description of a code ("invalid argument: vector dimension mismatch"). */
SHOAL_API const char *shoal_strerror(int code);

/* Options for shoal_open. NULL options mean defaults. */
SHOAL_API shoal_options *shoal_options_new(void);
SHOAL_API void shoal_options_free(shoal_options *opts);
/* Largest store size in bytes the map may grow to (default 64 GiB). */
SHOAL_API int shoal_options_set_max_store_bytes(shoal_options *opts, uint64_t bytes, shoal_error *err);
/* Client mode (shoal_connect): how long each call, shoal_connect's own round trip included,
 * waits for the daemon's answer before it fails with SHOAL_EUNAVAILABLE, the message naming the
 * deadline (a write may still take effect: re-read). Default 30000 ms; 0: no deadline. Embedded
 * handles ignore it. */
SHOAL_API int shoal_options_set_timeout_ms(shoal_options *opts, uint32_t timeout_ms, shoal_error *err);

/* Opens (creating if needed) the data directory `path`. On success *out is a handle to close
 * with shoal_close. Codes:
 * - SHOAL_EUNAVAILABLE: the directory is open in another handle, of this process or another
 *   one. The message names the holder's PID and says "this process" when it is ours. This is
 *   "unavailable" (retry once the holder closes it), not an I/O error: the call and the disk are
 *   fine, the directory is busy, and a second handle in one process would not help either (share
 *   the first; a shoal_db may be used from any thread).
 * - SHOAL_EIO: the directory or its LOCK file cannot be created or locked for any other reason.
 * - SHOAL_E_VERSION: a data directory from an incompatible version; SHOAL_ECORRUPTION. */
SHOAL_API int shoal_open(const char *path, const shoal_options *opts, shoal_db **out, shoal_error *err);
/* Client mode: connects to the daemon listening on the Unix socket `socket_path` (shoald's
 * [api] socket). On success *out is a handle on which every call of this header works as on an
 * embedded one, with the same codes and messages (the daemon runs the call and returns its
 * status); close it with shoal_close, which closes the connection. `opts` may be NULL; its store
 * size does not apply (the daemon's configuration decides). The connection and its network stack
 * live in libshoal_client.so.0, loaded at the first shoal_connect from libshoal's own directory,
 * else by the dynamic loader's search ($SHOAL_CLIENT_LIBRARY, a path, replaces both). Calls from
 * several threads are sent on the one connection and answered in parallel. Codes:
 * - SHOAL_EUNAVAILABLE: nothing listens on socket_path (the message names it and the reason),
 *   the daemon closed the connection at once (its API policy refuses this user), or
 *   libshoal_client cannot be loaded (the message names the library and dlerror()). A call on a
 *   handle whose connection was lost fails with SHOAL_EUNAVAILABLE; the call is not retried, and
 *   the next call connects again.
 * - SHOAL_E_VERSION: a libshoal_client from another build than this libshoal.
 * - SHOAL_EINVAL: a NULL or too long socket_path (a NULL out).
 * Differences from embedded: shoal_upsert_batch refuses a request above the local API's 16 MiB
 * message limit with SHOAL_E_TOOLARGE (split the batch), and shoal_stats_json says more (the
 * daemon's peers); see docs/api.md, "Client mode". */
SHOAL_API int shoal_connect(const char *socket_path, const shoal_options *opts, shoal_db **out, shoal_error *err);
/* Closes the handle (embedded: every acknowledged write is already durable; index updates still
 * queued are applied now only for a collection whose index snapshot close rewrites, and
 * otherwise replayed by the next open, so close costs O(changes); client: the connection is
 * closed).
 * Ends the handle's watches (their handles must still be freed with shoal_unwatch). Accepts NULL. */
SHOAL_API void shoal_close(shoal_db *db);

/* Collections. Names are 1..SHOAL_MAX_COLLECTION_NAME_BYTES (64) bytes of [A-Za-z0-9_.-], not
 * starting with '.'; dimension 1..4096. shoal_collection_create uses the default index options
 * (see shoal_collection_options): M 16, ef_construction 200, ef_search 64, int8 quantization. */
SHOAL_API int shoal_collection_create(shoal_db *db, const char *name, uint32_t dimension,
                                      shoal_metric metric, shoal_error *err);

/* Index options of a collection, for shoal_collection_create_ex. Zero-initialise it and set
 * struct_size first: `shoal_collection_options o = {sizeof o};`. A field left 0 takes its
 * default. Fields are only ever appended; a caller built against a later header passes its larger
 * struct_size, and this library refuses fields it does not know only when they are set (non-zero)
 * with SHOAL_EUNIMPLEMENTED. */
typedef enum shoal_quantization {
  SHOAL_QUANTIZATION_DEFAULT = 0, /* the library's default: int8 */
  SHOAL_QUANTIZATION_INT8 = 1,    /* int8 graph vectors, results re-ranked with the float vectors */
  SHOAL_QUANTIZATION_NONE = 2     /* float graph vectors (more memory traffic per search) */
} shoal_quantization;
typedef struct shoal_collection_options {
  size_t struct_size;       /* sizeof(shoal_collection_options) as the caller compiled it */
  uint32_t m;               /* HNSW graph degree, 2..256; 0: 16 */
  uint32_t ef_construction; /* HNSW beam width while inserting, 1..65536; 0: 200 */
  uint32_t ef_search;       /* the ef a search uses when it passes ef = 0, 1..65536; 0: 64 */
  int quantization;         /* a shoal_quantization value */
} shoal_collection_options;

/* shoal_collection_create with index options (`opts` may be NULL: every default). Same codes, plus
 * SHOAL_E_OUTOFRANGE (m, ef_construction or ef_search outside its range; the message names the
 * field, the range and the value), SHOAL_E_UNKNOWNNAME (a quantization that is not one of the
 * shoal_quantization values), SHOAL_EINVAL (struct_size smaller than the first version of the
 * struct), SHOAL_EUNIMPLEMENTED (a later struct with a field this library does not know set). The
 * options are stored with the collection, replicated with it to peers, and reported by
 * shoal_collection_info. On any error nothing is created. Defaults and why: docs/api.md. */
SHOAL_API int shoal_collection_create_ex(shoal_db *db, const char *name, uint32_t dimension, shoal_metric metric,
                                         const shoal_collection_options *opts, shoal_error *err);
SHOAL_API int shoal_collection_drop(shoal_db *db, const char *name, shoal_error *err);
/* Number of live records in a collection. */
SHOAL_API int shoal_collection_count(shoal_db *db, const char *name, uint64_t *out, shoal_error *err);

/* The names of the collections, in byte order of their names. On success *out is a list freed
 * with shoal_name_list_free; it is a copy (collections created or dropped later do not change it).
 * Codes: SHOAL_EINVAL (a NULL argument). */
typedef struct shoal_name_list shoal_name_list;
SHOAL_API int shoal_collection_list(shoal_db *db, shoal_name_list **out, shoal_error *err);
SHOAL_API size_t shoal_name_list_count(const shoal_name_list *list);   /* 0 for NULL */
/* Name i (NUL-terminated), or NULL when i >= count. Lives until shoal_name_list_free. */
SHOAL_API const char *shoal_name_list_get(const shoal_name_list *list, size_t i);
SHOAL_API void shoal_name_list_free(shoal_name_list *list);

/* A collection's parameters and state, written by shoal_collection_info into a caller struct.
 * Fields are only ever appended (never reordered or resized), and the caller passes the size it
 * was compiled with, so a program built against this header keeps working with later libraries. */
typedef struct shoal_collection_desc {
  char name[SHOAL_MAX_COLLECTION_NAME_BYTES + 1]; /* NUL-terminated */
  uint32_t dimension;
  shoal_metric metric;
  uint64_t count;            /* live records (as shoal_collection_count) */
  uint32_t m;                /* HNSW graph degree */
  uint32_t ef_construction;  /* HNSW beam width while inserting */
  uint32_t ef_search;        /* the ef a search uses when it passes ef = 0 */
  int quantized;             /* 1 when the graph holds int8-quantized vectors, else 0 */
  uint64_t index_bytes;      /* memory held by the collection's index (approximate) */
} shoal_collection_desc;

/* Describes collection `name`: pass `out` and `out_size` = sizeof(shoal_collection_desc). The
 * library writes min(out_size, its own size) bytes. Codes: SHOAL_E_NOCOLLECTION (no such
 * collection, or a dropped one), SHOAL_EINVAL (a NULL argument, or out_size smaller than the
 * first version of the struct, which ended at index_bytes). On error *out is unchanged. */
SHOAL_API int shoal_collection_info(shoal_db *db, const char *name, shoal_collection_desc *out,
                                    size_t out_size, shoal_error *err);

/* Metadata builder: string, integer, float and bool values under string keys. Keys and string
 * values must be valid UTF-8: otherwise SHOAL_E_MALFORMED, naming the key, the offset of the first
 * invalid byte and the value seen, and `meta` is unchanged. Setting a key again replaces it. */
SHOAL_API shoal_meta *shoal_meta_new(void);
SHOAL_API void shoal_meta_free(shoal_meta *meta);
SHOAL_API int shoal_meta_set_string(shoal_meta *meta, const char *key, const char *value, shoal_error *err);
SHOAL_API int shoal_meta_set_int(shoal_meta *meta, const char *key, int64_t value, shoal_error *err);
SHOAL_API int shoal_meta_set_float(shoal_meta *meta, const char *key, double value, shoal_error *err);
SHOAL_API int shoal_meta_set_bool(shoal_meta *meta, const char *key, int value, shoal_error *err);

/* Inserts or replaces record `id` (id_len bytes, 1..256, valid UTF-8, no NUL). `meta` and
 * `model` (valid UTF-8, up to 128 bytes) may be NULL. Durable when it returns SHOAL_OK. On any
 * error the store is unchanged. Codes: SHOAL_E_DIMENSION, SHOAL_E_NONFINITE, SHOAL_E_ZEROVECTOR,
 * SHOAL_E_TOOLARGE, SHOAL_E_MALFORMED (an id, model tag or metadata string that is not UTF-8;
 * the message names the field and the offset), SHOAL_E_NOCOLLECTION, SHOAL_E_MAPFULL,
 * SHOAL_E_DISKFULL, SHOAL_EIO. */
SHOAL_API int shoal_upsert(shoal_db *db, const char *collection, const char *id, size_t id_len,
                           const float *vector, size_t dimension, const shoal_meta *meta,
                           const char *model, shoal_error *err);
/* Atomic batch of `count` records: vectors is count x dimension floats, ids[i] has id_lens[i]
 * bytes; metas may be NULL (or hold NULL entries). All or nothing. */
SHOAL_API int shoal_upsert_batch(shoal_db *db, const char *collection, size_t count,
                                 const char *const *ids, const size_t *id_lens, const float *vectors,
                                 size_t dimension, const shoal_meta *const *metas, const char *model,
                                 shoal_error *err);
/* Deletes record `id`. SHOAL_E_NORECORD when there is no live record of that id. */
SHOAL_API int shoal_delete(shoal_db *db, const char *collection, const char *id, size_t id_len,
                           shoal_error *err);

/* Reads record `id`. On success *out is a record freed with shoal_record_free. */
/* A record evicted to the cold-tier sink (docs/tiers.md, "Eviction") is held as a stub. In client
 * mode (shoal_connect) the daemon refills it from its sink (the payload checked against the stub's
 * digest; the store keeps the stub) and shoal_get returns it whole with SHOAL_OK; in embedded mode
 * (shoal_open) the embedded mesh does the same over its own sink link while it runs on the handle
 * (shoal_mesh_start, shoal_mesh.h; the call then waits for the sink's answer). When it cannot (no
 * sink configured, the sink unreachable or without the record, or an embedded handle with no mesh
 * running), shoal_get returns SHOAL_E_COLD ("cold, unavailable"; the message says why) and still
 * sets *out, whose
 * metadata and model tag are the record's and whose vector has dimension 0 (free it as usual);
 * SHOAL_E_CHECKSUM, with the same *out, when the sink's payload does not match the stub. */
SHOAL_API int shoal_get(shoal_db *db, const char *collection, const char *id, size_t id_len,
                        shoal_record **out, shoal_error *err);
SHOAL_API void shoal_record_free(shoal_record *rec);
/* The winning value's vector (dimension floats), model tag, and metadata as JSON text (UTF-8).
 * Pointers live until shoal_record_free. A record stored before UTF-8 was enforced is still
 * read: in the JSON, each invalid byte sequence of a key or string value becomes U+FFFD; the
 * model tag is returned as stored. */
SHOAL_API const float *shoal_record_vector(const shoal_record *rec, size_t *dimension);
SHOAL_API const char *shoal_record_model(const shoal_record *rec);
SHOAL_API const char *shoal_record_metadata_json(const shoal_record *rec);
/* Concurrent values of the record (1 when there is no conflict); siblings are 0..count-1 and
 * sibling 0 is the winner. */
SHOAL_API size_t shoal_record_sibling_count(const shoal_record *rec);
SHOAL_API const float *shoal_record_sibling_vector(const shoal_record *rec, size_t i, size_t *dimension);

/* k-nearest-neighbour search. `filter` (may be NULL or empty) is a conjunction like
 * "color=red,year>=2020" in the grammar of docs/api.md ("Filters"); anything else is
 * SHOAL_E_MALFORMED with "at byte N" (0-based) in the message. ef = 0 picks the default. Hits
 * are written to hits[0..*count), closest first; *count < k only when fewer than k records
 * match. */
SHOAL_API int shoal_search(shoal_db *db, const char *collection, const float *query, size_t dimension,
                           uint32_t k, uint32_t ef, const char *filter, shoal_hit *hits,
                           size_t capacity, size_t *count, shoal_error *err);

/* How fresh a search answer is: in client mode, one entry per peer the daemon has synced with,
 * with the peer's device label and the milliseconds since the daemon last applied a delta from
 * it (-1: none since the daemon started). Empty in embedded mode (no mesh in the process). A
 * list freed with shoal_freshness_free; accessors return 0, -1 or NULL for NULL or i >= count. */
typedef struct shoal_freshness shoal_freshness;
/* shoal_search, plus the answer's freshness in *freshness (may be NULL: then as shoal_search). On
 * success *freshness is a list to free; on error it is NULL. Codes: those of shoal_search. */
SHOAL_API int shoal_search_freshness(shoal_db *db, const char *collection, const float *query, size_t dimension,
                                     uint32_t k, uint32_t ef, const char *filter, shoal_hit *hits,
                                     size_t capacity, size_t *count, shoal_freshness **freshness,
                                     shoal_error *err);
/* A search that includes the cold tier (docs/tiers.md, "Cold search"), in client mode: the
 * daemon's hits and its sink's ([sink] address in shoald's config) for the same query, metric
 * and k, merged into at most k hits, closest first, exactly as shoal_mesh_search_cold (shoal_mesh.h)
 * merges them: a record live on the daemon answers from there; a record it deleted that the sink
 * still holds stays out; records it never held come from the sink. hits[i] as shoal_search's;
 * cold[i] (cold may be NULL) is 1 for a hit from the sink. *freshness (may be NULL) as
 * shoal_search_freshness's. When the sink cannot answer (none configured, not connected, it
 * refused) the daemon's own hits are returned and *sink_code (may be NULL) holds the code why,
 * with its text in sink_err (may be NULL); SHOAL_OK when the sink answered. No filter: the sink
 * does not filter. Codes: those of shoal_search; SHOAL_EUNAVAILABLE for a handle from shoal_open
 * ("no sink is configured": only the embedded mesh's shoal_mesh_search_cold reaches a sink
 * from an app without a daemon). */
SHOAL_API int shoal_search_cold(shoal_db *db, const char *collection, const float *query, size_t dimension,
                                uint32_t k, uint32_t ef, shoal_hit *hits, unsigned char *cold, size_t capacity,
                                size_t *count, shoal_freshness **freshness, int *sink_code, shoal_error *sink_err,
                                shoal_error *err);
SHOAL_API size_t shoal_freshness_count(const shoal_freshness *list);
/* The peer's device label (NUL-terminated); lives until shoal_freshness_free. */
SHOAL_API const char *shoal_freshness_device(const shoal_freshness *list, size_t i);
/* Milliseconds since the last delta from the peer; -1 when none since the daemon started. */
SHOAL_API int64_t shoal_freshness_since_last_delta_ms(const shoal_freshness *list, size_t i);
/* 1 when the daemon is linked to the peer now, else 0. */
SHOAL_API int shoal_freshness_up(const shoal_freshness *list, size_t i);
/* The peer's replica id (20 bytes), or NULL when the daemon did not report it. */
SHOAL_API const uint8_t *shoal_freshness_replica(const shoal_freshness *list, size_t i);
SHOAL_API void shoal_freshness_free(shoal_freshness *list);

/* The node's statistics as a JSON object (UTF-8, NUL-terminated), in both modes: "replica",
 * "collections", "live_records", "delta_buffer_entries", "index_bytes", "index_backlog" (index
 * operations committed and still queued for the index) and "write_groups" (group commit's totals:
 * "groups", "writes", "largest"); client mode adds the
 * daemon's view of the mesh ("peers": device, replica, remote, role, tier, up,
 * since_last_delta_ms, bytes_in, bytes_out; "mesh"; "api"), embedded mode "last_delta_seq" and
 * "index_source". Keys are only ever added. On success *out is a string freed with
 * shoal_string_free. Codes: SHOAL_EINVAL (a NULL argument), SHOAL_EUNAVAILABLE (client mode). */
SHOAL_API int shoal_stats_json(shoal_db *db, char **out, shoal_error *err);
/* Frees a string returned by the library (shoal_stats_json). Accepts NULL. */
SHOAL_API void shoal_string_free(char *s);

/* Watching changes, in both modes. One record changed, as passed to a shoal_watch_fn; pointers
 * live until the callback returns. This struct never changes (callbacks receive arrays of it). */
typedef struct shoal_change {
  uint64_t seq;             /* position in the node's change log; increases */
  const char *collection;   /* NUL-terminated */
  const char *id;           /* the record id, id_len bytes (NUL-terminated too) */
  size_t id_len;
  int deleted;              /* 1: the record was deleted; 0: inserted or replaced */
  const uint8_t *origin;    /* 20-byte replica id of the peer it came from; NULL for a local write */
} shoal_change;
/* Called with changes in order, count >= 1, or count = 0 with gap = 1. gap = 1: some changes
 * were missed before these (the node trimmed its change log past the watcher, or, in client mode,
 * the connection was lost; re-read what matters). Runs on a thread of the library, never on the
 * caller's: one call at a time per watch, for as long as it returns. It may call any shoal_*
 * function, including shoal_unwatch of its own watch (the current call is then the last). */
typedef void (*shoal_watch_fn)(void *ctx, const shoal_change *changes, size_t count, int gap);
typedef struct shoal_watch_handle shoal_watch_handle;
/* Calls cb(ctx, ...) with every change made after this call (local writes, and changes applied
 * from peers) to records of `collection` (NULL or "" for every collection), until shoal_unwatch.
 * Embedded mode: a library thread per watch reads the change log after each write (and at least
 * every 200 ms). Client mode: the daemon streams the changes. In client mode a lost connection
 * ends the stream with one count = 0, gap = 1 call, and the next call that reconnects the handle
 * resumes the watch. Codes: SHOAL_EINVAL (a NULL db, cb or out), SHOAL_EUNAVAILABLE (client mode,
 * no connection). */
SHOAL_API int shoal_watch(shoal_db *db, const char *collection, shoal_watch_fn cb, void *ctx,
                          shoal_watch_handle **out, shoal_error *err);
/* Ends the watch: when it returns (called from another thread than the watch's), cb is not
 * running and will not be called again. Frees the handle. Accepts NULL. Call it before or after
 * shoal_close of its db, never concurrently with it. */
SHOAL_API void shoal_unwatch(shoal_watch_handle *watch);

#ifdef __cplusplus
}
#endif

#endif /* SHOAL_H */
