/* examples/mesh_app.c: an app that embeds Shoal and joins the mesh itself (no daemon), with the
 * embedded mesh of shoal_mesh.h.
 *
 * Opens the data directory named by the configuration's node.data_dir, starts the mesh from
 * shoald's configuration file (the same TOML; docs/operations.md, "The embedded mesh"), stores a
 * record, searches, prints the mesh's status, and keeps running for SECONDS so that its peers
 * sync with it, then stops the mesh and closes.
 *   ./mesh_app DATA_DIR CONFIG [SECONDS]
 * Enrol the device first: `shoald --config CONFIG --print-device-key` prints its key, and
 * `shoal mesh enrol --device-key KEY ... --out DATA_DIR/device.cert` makes node.certificate.
 * Build: cc mesh_app.c $(pkg-config --cflags --libs shoal-mesh) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoal.h"
#include "shoal_mesh.h"

static void check(int rc, const shoal_error *err, const char *what) {
  if (rc != SHOAL_OK && rc != SHOAL_E_EXISTS) { /* the collection exists on a rerun, or a peer made it */
    fprintf(stderr, "%s failed (code 0x%x): %s\n", what, rc, err->message);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s DATA_DIR CONFIG [SECONDS]\n", argv[0]);
    return 2;
  }
  int seconds = 0;
  if (argc > 3) {
    char *end = NULL;
    errno = 0;
    const long v = strtol(argv[3], &end, 10);
    if (end == argv[3] || *end != '\0' || errno != 0 || v < 0 || v > 86400) {
      fprintf(stderr, "SECONDS must be a whole number 0..86400, got '%s'\n", argv[3]);
      return 2;
    }
    seconds = (int)v;
  }
  shoal_error err;
  shoal_db *db = NULL;
  shoal_mesh *mesh = NULL;
  check(shoal_open(argv[1], NULL, &db, &err), &err, "shoal_open");
  /* From here on, every write is pushed to the peers, and theirs arrive in this store. */
  check(shoal_mesh_start(db, argv[2], &mesh, &err), &err, "shoal_mesh_start");
  check(shoal_collection_create(db, "photos", 4, SHOAL_METRIC_COSINE, &err), &err, "create");

  const float v[4] = {0.9f, 0.1f, 0.0f, 0.1f};
  check(shoal_upsert(db, "photos", "beach.jpg", strlen("beach.jpg"), v, 4, NULL, NULL, &err), &err, "upsert");

  const float q[4] = {1.0f, 0.0f, 0.0f, 0.0f};
  shoal_hit hits[5];
  size_t n = 0;
  check(shoal_search(db, "photos", q, 4, 5, 0, NULL, hits, 5, &n, &err), &err, "search");
  for (size_t i = 0; i < n; ++i) printf("%zu. %s (distance %.3f)\n", i + 1, hits[i].id, hits[i].distance);

  for (int s = 0; s < seconds; ++s) sleep(1);
  char *status = NULL;
  check(shoal_mesh_status_json(mesh, &status, &err), &err, "status");
  printf("mesh: %s\n", status);
  shoal_string_free(status);

  check(shoal_mesh_stop(mesh, &err), &err, "shoal_mesh_stop"); /* goodbye sent, thread joined */
  shoal_close(db);
  return 0;
}
