/* Proves the embedded mesh (shoal_mesh.h, libshoal_mesh) against a real shoald on loopback, which
 * tests/capi/mesh_test.py enrols, configures and starts; this program is the app. It links
 * libshoal and libshoal_mesh only, and reads shoald's store through client mode (shoal_connect):
 * - a configuration error (mesh.listen = "0.0.0.0:99999") fails shoal_mesh_start with the
 *   daemon's error: the code of a number out of range and a message naming the file, its line
 *   and the key; nothing runs and the handle keeps working;
 * - a client-mode handle is refused (SHOAL_EINVAL naming client mode); so is a configuration
 *   whose node.data_dir is another directory than the handle's (naming node.data_dir);
 * - with the app's configuration the mesh starts; a collection and a record the app writes reach
 *   shoald, a record written on shoald reaches the app, and deletes on either side reach the
 *   other (convergence, polled with a 60 s bound that only decides when to give up);
 * - shoal_mesh_status_json lists shoald's device as an up peer and gives the listening port;
 *   a second start on the same handle is SHOAL_E_EXISTS; reload of an unchanged file is OK;
 * - shoal_mesh_stop, then the handle still works offline, and shoal_close;
 * - after a reopen the mesh starts again and a write reaches shoald; then shoal_close with the
 *   mesh still running returns (it stops the mesh and lets go of the node: the directory opens
 *   again), and shoal_mesh_stop afterwards only frees the handle.
 * Prints "N passed, M failed".
 * Usage: shoal_capi_mesh_test APP_DIR APP_CONFIG BAD_CONFIG OTHER_DIR_CONFIG SHOALD_SOCKET SHOALD_DEVICE_LABEL */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shoal.h"
#include "shoal_mesh.h"

static int passed = 0, failed = 0;
#define CHECK(cond)                                                             \
  do {                                                                          \
    if (cond) {                                                                 \
      ++passed;                                                                 \
    } else {                                                                    \
      ++failed;                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                           \
  } while (0)

static const int kGiveUpMs = 60000;

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* 1 when `id` is live in collection "c" of db, 0 when it is not (or no such collection yet). */
static int has(shoal_db *db, const char *id) {
  shoal_record *rec = NULL;
  int rc = shoal_get(db, "c", id, strlen(id), &rec, NULL);
  shoal_record_free(rec);
  return rc == SHOAL_OK;
}

/* Waits until has(db, id) == want; returns 1 when it got there within kGiveUpMs. */
static int wait_for(shoal_db *db, const char *id, int want) {
  for (int waited = 0; waited < kGiveUpMs; waited += 20) {
    if (has(db, id) == want) return 1;
    sleep_ms(20);
  }
  fprintf(stderr, "gave up waiting for %s to be %s\n", id, want ? "present" : "absent");
  return 0;
}

static int upsert(shoal_db *db, const char *id, float x) {
  const float v[4] = {x, 1.0f, 2.0f, 3.0f};
  shoal_error err;
  int rc = shoal_upsert(db, "c", id, strlen(id), v, 4, NULL, NULL, &err);
  if (rc != SHOAL_OK) fprintf(stderr, "upsert %s: %s\n", id, err.message);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s APP_DIR APP_CONFIG BAD_CONFIG OTHER_DIR_CONFIG SHOALD_SOCKET SHOALD_DEVICE\n", argv[0]);
    return 2;
  }
  const char *app_dir = argv[1], *app_config = argv[2], *bad_config = argv[3], *other_config = argv[4];
  const char *socket_path = argv[5], *shoald_device = argv[6];
  shoal_error err;
  shoal_db *app = NULL, *daemon = NULL;
  shoal_mesh *mesh = NULL;

  if (shoal_open(app_dir, NULL, &app, &err) != SHOAL_OK) {
    fprintf(stderr, "open %s: %s\n", app_dir, err.message);
    return 1;
  }
  if (shoal_connect(socket_path, NULL, &daemon, &err) != SHOAL_OK) {
    fprintf(stderr, "connect %s: %s\n", socket_path, err.message);
    return 1;
  }

  /* A configuration error: the daemon's message (file, line, key), nothing runs. */
  int rc = shoal_mesh_start(app, bad_config, &mesh, &err);
  CHECK(rc == SHOAL_E_OUTOFRANGE);
  CHECK(err.code == rc);
  CHECK(mesh == NULL);
  char where[512];
  snprintf(where, sizeof where, "%s:6:", bad_config);
  CHECK(strstr(err.message, where) != NULL);
  CHECK(strstr(err.message, "mesh.listen") != NULL && strstr(err.message, "99999") != NULL);
  printf("a bad configuration: %s\n", err.message);
  CHECK(shoal_collection_create(app, "c", 4, SHOAL_METRIC_L2, &err) == SHOAL_OK);

  /* A client-mode handle: the daemon runs the mesh. */
  rc = shoal_mesh_start(daemon, app_config, &mesh, &err);
  CHECK(rc == SHOAL_EINVAL);
  CHECK(strstr(err.message, "client mode") != NULL);
  CHECK(mesh == NULL);
  /* Another data directory than the handle's. */
  rc = shoal_mesh_start(app, other_config, &mesh, &err);
  CHECK(rc == SHOAL_EINVAL);
  CHECK(strstr(err.message, "node.data_dir") != NULL);
  CHECK(mesh == NULL);
  CHECK(shoal_mesh_start(NULL, app_config, &mesh, &err) == SHOAL_EINVAL);
  CHECK(shoal_mesh_stop(NULL, &err) == SHOAL_OK);

  /* Start and converge both ways, deletes too. */
  rc = shoal_mesh_start(app, app_config, &mesh, &err);
  CHECK(rc == SHOAL_OK);
  if (rc != SHOAL_OK) {
    fprintf(stderr, "start: %s\n", err.message);
    return 1;
  }
  CHECK(upsert(app, "from-app", 1.0f) == SHOAL_OK);
  CHECK(wait_for(daemon, "from-app", 1));
  CHECK(upsert(daemon, "from-daemon", 2.0f) == SHOAL_OK);
  CHECK(wait_for(app, "from-daemon", 1));
  CHECK(shoal_delete(app, "c", "from-daemon", strlen("from-daemon"), &err) == SHOAL_OK);
  CHECK(wait_for(daemon, "from-daemon", 0));
  CHECK(shoal_delete(daemon, "c", "from-app", strlen("from-app"), &err) == SHOAL_OK);
  CHECK(wait_for(app, "from-app", 0));
  /* The app's search sees a peer's record. */
  CHECK(upsert(daemon, "near", 7.0f) == SHOAL_OK);
  CHECK(wait_for(app, "near", 1));
  {
    const float q[4] = {7.0f, 1.0f, 2.0f, 3.0f};
    shoal_hit hits[2];
    size_t n = 0;
    CHECK(shoal_search(app, "c", q, 4, 1, 0, NULL, hits, 2, &n, &err) == SHOAL_OK);
    CHECK(n == 1 && strcmp(hits[0].id, "near") == 0);
  }
  printf("converged both ways (upserts and deletes)\n");

  /* Status: shoald is an up peer; the port is there. */
  char *status = NULL;
  CHECK(shoal_mesh_status_json(mesh, &status, &err) == SHOAL_OK);
  CHECK(status != NULL && strstr(status, "\"port\":") != NULL);
  CHECK(status != NULL && strstr(status, shoald_device) != NULL);
  CHECK(status != NULL && strstr(status, "\"up\":true") != NULL);
  if (status != NULL) printf("status: %.300s\n", status);
  shoal_string_free(status);
  /* A search that includes the cold tier, with no [sink] in the app's config: the local answer,
   * every hit marked local, and the reason the sink did not answer. */
  {
    const float q[4] = {7.0f, 1.0f, 2.0f, 3.0f};
    shoal_hit hits[2];
    unsigned char cold[2] = {7, 7};
    size_t n = 0;
    int sink_code = SHOAL_OK;
    shoal_error sink_err;
    CHECK(shoal_mesh_search_cold(mesh, "c", q, 4, 1, 0, hits, cold, 2, &n, &sink_code, &sink_err, &err) == SHOAL_OK);
    CHECK(n == 1 && strcmp(hits[0].id, "near") == 0 && cold[0] == 0);
    CHECK(sink_code == SHOAL_EUNAVAILABLE);
    CHECK(strstr(sink_err.message, "no sink is configured") != NULL);
    CHECK(shoal_mesh_search_cold(mesh, "c", q, 4, 3, 0, hits, cold, 2, &n, NULL, NULL, &err) == SHOAL_E_TOOLARGE);
    CHECK(shoal_mesh_search_cold(mesh, "nope", q, 4, 1, 0, hits, NULL, 2, &n, NULL, NULL, &err) != SHOAL_OK);
    CHECK(shoal_mesh_search_cold(NULL, "c", q, 4, 1, 0, hits, NULL, 2, &n, NULL, NULL, &err) == SHOAL_EINVAL);
  }
  /* One mesh per handle; an unchanged file reloads cleanly. */
  shoal_mesh *second = NULL;
  CHECK(shoal_mesh_start(app, app_config, &second, &err) == SHOAL_E_EXISTS);
  CHECK(second == NULL);
  CHECK(shoal_mesh_reload(mesh, &err) == SHOAL_OK);

  /* Stop, then the handle works offline; a write made now is not seen by shoald. */
  CHECK(shoal_mesh_stop(mesh, &err) == SHOAL_OK);
  mesh = NULL;
  CHECK(upsert(app, "offline", 3.0f) == SHOAL_OK);
  CHECK(has(app, "offline"));
  shoal_close(app);
  app = NULL;

  /* Reopen: the mesh starts again, the offline write catches up, a new one goes at once. */
  CHECK(shoal_open(app_dir, NULL, &app, &err) == SHOAL_OK);
  CHECK(shoal_mesh_start(app, app_config, &mesh, &err) == SHOAL_OK);
  CHECK(wait_for(daemon, "offline", 1));
  CHECK(upsert(app, "late", 4.0f) == SHOAL_OK);
  CHECK(wait_for(daemon, "late", 1));
  /* Close with the mesh running: shoal_close stops it; stop afterwards only frees the handle. */
  shoal_close(app);
  app = NULL;
  CHECK(shoal_mesh_stop(mesh, &err) == SHOAL_OK);
  mesh = NULL;
  /* The directory is free again (the mesh let go of the node): a new open succeeds. */
  CHECK(shoal_open(app_dir, NULL, &app, &err) == SHOAL_OK);
  CHECK(has(app, "late"));
  shoal_close(app);
  shoal_close(daemon);

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
