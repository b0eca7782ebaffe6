/* shoal_mesh.h: the embedded mesh of Shoal. An app that embeds Shoal (shoal_open, shoal.h) joins
 * the mesh itself, for devices with one app and no daemon: shoal_mesh_start runs, on a background
 * thread of the library, what shoald runs (the mesh host: listen, dial the configured peers, mDNS
 * discovery, keepalive, redial, revocations), from shoald's own configuration file (TOML; every
 * key in docs/operations.md, "shoald configuration"), with the same code.
 *
 * It lives in its own library, libshoal_mesh.so.0 (pkg-config shoal-mesh; CMake Shoal::mesh),
 * which links libshoal and the network stack (Cap'n Proto RPC, kj-async, Boost.Asio, libsodium,
 * libmdnsd, toml++). An app that wants only the local store links libshoal alone and pulls none
 * of it.
 *
 * Conventions are shoal.h's: int codes (0 is SHOAL_OK; test `(rc & 0xff)`), an optional
 * caller-owned shoal_error last, opaque handles whose destructor-like call accepts NULL.
 *
 * The configuration file: the [node] and [mesh] tables are used as shoald uses them.
 * node.data_dir must name the handle's own data directory (the one given to shoal_open): it holds
 * the device's identity.key (created at the first start; print its public key for enrolment with
 * `shoald --config FILE --print-device-key`), and node.certificate is the device's certificate
 * from `shoal mesh enrol`. The [api] and [metrics] tables are checked like every key but not
 * served: an embedded mesh opens no local API socket and no HTTP port (shoal_mesh_status_json
 * gives what the daemon's status page shows). Logs go to stderr at node.log_level.
 *
 * Threads: the mesh runs on one thread of its own and shares the node with the app's calls on
 * the shoal_db (which may come from any thread, as before). A write the app makes is pushed to
 * the peers at once (the mesh is woken after every write), and changes from peers are visible
 * to the app's next read and to its watches (shoal_watch). While the mesh runs, shoal_get on `db` of
 * a record evicted to the cold tier refills it from the sink ([sink] address) over the mesh's link,
 * as shoald does for its clients (shoal.h, shoal_get; docs/tiers.md, "Eviction"): SHOAL_OK with
 * the whole record, or SHOAL_E_COLD with its metadata when the sink cannot give it. Every call below may be made from
 * any thread, but not concurrently on one shoal_mesh with shoal_mesh_stop, nor with shoal_close
 * of its db.
 */
#ifndef SHOAL_MESH_H
#define SHOAL_MESH_H

#include <stddef.h>
#include <stdint.h>

#include "shoal.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SHOAL_MESH_BUILDING_LIBRARY)
#define SHOAL_MESH_API __attribute__((visibility("default")))
#else
#define SHOAL_MESH_API
#endif

typedef struct shoal_mesh shoal_mesh;

/* Starts the embedded mesh of the embedded handle `db` from the configuration file at
 * `config_path`. When it returns SHOAL_OK, the mesh listens on mesh.listen (see
 * shoal_mesh_status_json for the port when it was 0), dials its peers and runs until
 * shoal_mesh_stop or shoal_close(db); *out is the handle to stop it with. On any error nothing
 * runs, *out is NULL and the store is unchanged. Codes:
 * - SHOAL_EINVAL: a NULL argument; `db` is a client-mode handle (shoal_connect: the daemon
 *   already runs the mesh); node.data_dir is not the handle's data directory (the message names
 *   both).
 * - A configuration error, with the code and the message shoald gives for it: every problem,
 *   one line each, "FILE:LINE:COLUMN: key KEY = VALUE: PROBLEM" (SHOAL_E_MALFORMED,
 *   SHOAL_E_UNKNOWNNAME, SHOAL_E_OUTOFRANGE, SHOAL_E_TOOLARGE, or SHOAL_EINVAL for a missing
 *   key; SHOAL_EIO when the file cannot be read). The message is cut at
 *   SHOAL_ERROR_MESSAGE_BYTES; it begins with the first problem.
 * - SHOAL_E_EXISTS: a mesh already runs on this handle.
 * - The device's credentials: SHOAL_EIO (node.certificate cannot be read; identity.key cannot
 *   be written), SHOAL_E_KEYPERMS, the certificate decoder's codes, SHOAL_EINVAL (a certificate
 *   issued for another device key; the message names both key labels).
 * - SHOAL_EUNAVAILABLE or SHOAL_EIO: mesh.listen cannot be bound (in use), or discovery cannot
 *   start; the message names the address.
 * - SHOAL_E_VERSION: a libshoal from another build than this libshoal_mesh.
 * - SHOAL_ECORRUPTION: the revocations stored in the data directory do not decode. */
SHOAL_MESH_API int shoal_mesh_start(shoal_db *db, const char *config_path, shoal_mesh **out, shoal_error *err);

/* Stops the mesh and frees the handle: every link is closed with its close frame, the mDNS
 * goodbye is sent when discovery is on, the listening socket is closed, and the mesh's thread is
 * joined before it returns. The app's handle stays open and keeps everything written (a peer
 * catches up at the next start). Accepts NULL (SHOAL_OK). Also valid after shoal_close(db), which
 * stops a running mesh itself (then this only frees the handle). Codes: SHOAL_OK. */
SHOAL_MESH_API int shoal_mesh_stop(shoal_mesh *mesh, shoal_error *err);

/* Re-reads the configuration file and applies what shoald's SIGHUP applies: node.log_level and
 * peers added to [[mesh.peers]] (dialed now). Codes: the configuration errors of
 * shoal_mesh_start (nothing changed then); SHOAL_EINVAL when a key changed that needs a restart
 * (the other changes are applied; the message names the keys); SHOAL_EUNAVAILABLE when the mesh
 * was stopped (shoal_close); SHOAL_EINVAL for NULL. */
SHOAL_MESH_API int shoal_mesh_reload(shoal_mesh *mesh, shoal_error *err);

/* The mesh as one JSON object (UTF-8, NUL-terminated): "port" (the mesh's listening port),
 * "device" (this device's key label), "replica", "peers" (each: device, replica, remote, role,
 * tier "hot"/"warm", up, partitioned, lag_entries, lag_seconds, bytes and messages in and out,
 * last_contact_unix_ms), "handshake_failures" by reason, "collections", "delta_buffer_entries",
 * repair counters, "discovered_devices": the fields of shoald's /status.json. Keys are only
 * ever added. On success *out is a string freed with shoal_string_free (shoal.h). Codes:
 * SHOAL_EINVAL (a NULL argument), SHOAL_EUNAVAILABLE (the mesh was stopped by shoal_close). */
SHOAL_MESH_API int shoal_mesh_status_json(shoal_mesh *mesh, char **out, shoal_error *err);

/* A k-nearest-neighbour search that includes the cold tier (docs/tiers.md, "Cold search"): this
 * node's answer and the sink's ([sink] address in the mesh's config) for the same query, metric
 * and k, merged into at most k hits, closest first. A record live here answers locally; a
 * record this node deleted that the sink still holds stays out; records this node never held
 * come from the sink. hits[i] as shoal_search's; cold[i] (cold may be NULL) is 1 for a hit from
 * the sink, 0 for a local one. When the sink cannot answer (none configured, unreachable, it
 * refused), the local hits are returned and *sink_code (may be NULL) holds the code why, with its
 * text in sink_err (may be NULL); SHOAL_OK when the sink answered. ef as shoal_search's (0: the
 * collection's). Codes: those of shoal_search (SHOAL_EINVAL for NULL arguments, SHOAL_E_TOOLARGE for capacity < k,
 * a missing collection, a dimension mismatch), SHOAL_EUNAVAILABLE once the mesh is stopped. */
SHOAL_MESH_API int shoal_mesh_search_cold(shoal_mesh *mesh, const char *collection, const float *query,
                                          size_t dimension, uint32_t k, uint32_t ef, shoal_hit *hits,
                                          unsigned char *cold, size_t capacity, size_t *count, int *sink_code,
                                          shoal_error *sink_err, shoal_error *err);

/* Restores `collection` from the sink ([sink] address in the mesh's config; docs/tiers.md,
 * "Bootstrap from the sink"): pulls the sink's pages into this handle's node, so what was deleted
 * there stays deleted and writes the sink never saw stay; peers then bring the rest. A collection
 * the node lacks is created first with the sink's dimension and metric, and the index options its
 * members' uploads said (m, ef_construction, ef_search, quantization; the defaults when the sink
 * keeps none: a sink or members from before D62). Durable when it returns; safe to run again. *records (may be NULL): the records the
 * pages carried; *created (may be NULL): 1 when the collection was created. Codes: SHOAL_EINVAL
 * (NULL mesh or collection); SHOAL_EUNAVAILABLE (no sink configured, the sink not connected, or
 * the mesh stopped); SHOAL_E_NOCOLLECTION (the sink holds no such collection, or it is not here
 * and the sink cannot say its dimension or metric); the node's join codes (a page refused, with
 * nothing of it written). */
SHOAL_MESH_API int shoal_mesh_bootstrap(shoal_mesh *mesh, const char *collection, uint64_t *records, int *created,
                                        shoal_error *err);

#ifdef __cplusplus
}
#endif

#endif /* SHOAL_MESH_H */
