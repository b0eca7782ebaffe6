/* tests/capi/cold_get_probe.c: shoal_get of one record that a device evicted to the cold tier, as
 * an app calls it (docs/api.md, "Evicted records"). Driven by tests/mesh/sink_cold_get_test.py,
 * which sets up the real daemon, the real sink and a real eviction; this program asserts what the
 * C API returns.
 *
 * usage: cold_get_probe connect SOCKET | open DATA_DIR | mesh DATA_DIR CONFIG
 *                       COLLECTION ID  whole VECTOR | cold METADATA_KEY
 *   connect: client mode (shoal_connect: the daemon refills);
 *   open:    embedded mode, no mesh (shoal_open: nothing can refill);
 *   mesh:    embedded mode with the embedded mesh running on the handle (shoal_mesh_start with
 *            CONFIG, shoald's format, whose [sink] address names the sink): shoal_get refills
 *            through the mesh's sink link. With `whole` the probe first waits (at most 60 s) for
 *            that link to come up (shoal_mesh_status_json's sink "connected"); with `cold` it
 *            reads at once.
 *   whole: proves shoal_get returns SHOAL_OK and the vector VECTOR ("1,2,3", compared exactly):
 *          the stub was refilled from the sink;
 *   cold:  proves shoal_get returns SHOAL_E_COLD, still sets the record (metadata containing
 *          METADATA_KEY, dimension 0, no vector) and names the record in the message.
 * Exit 0 when the expectation holds, 1 (with the reason on stderr) otherwise. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shoal.h"
#include "shoal_mesh.h"

static int failf(const char *what, int code, const shoal_error *err) {
  fprintf(stderr, "FAIL: %s (code 0x%x: %s)\n", what, (unsigned)code, err->message);
  return 1;
}

/* Waits until the embedded mesh's sink link is up (the "sink" object of its status says
 * "connected":true), at most 60 s. */
static int wait_for_sink(shoal_mesh *mesh, shoal_error *err) {
  for (int tries = 0; tries < 1200; ++tries) {
    char *json = NULL;
    int rc = shoal_mesh_status_json(mesh, &json, err);
    if (rc != SHOAL_OK) return failf("shoal_mesh_status_json", rc, err);
    const char *sink = strstr(json, "\"sink\":{");
    const int up = sink != NULL && strstr(sink, "\"connected\":true") != NULL;
    shoal_string_free(json);
    if (up) return 0;
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  fprintf(stderr, "FAIL: the embedded mesh's sink link did not come up in 60 s\n");
  return 1;
}

int main(int argc, char **argv) {
  const int mesh_mode = argc > 1 && strcmp(argv[1], "mesh") == 0;
  if (argc != (mesh_mode ? 8 : 7)) {
    fprintf(stderr, "usage: %s connect SOCKET|open DIR|mesh DIR CONFIG COLLECTION ID whole VECTOR|cold METADATA_KEY\n",
            argv[0]);
    return 2;
  }
  const int at = mesh_mode ? 4 : 3;
  const char *mode = argv[1], *path = argv[2], *coll = argv[at], *id = argv[at + 1], *expect = argv[at + 2],
             *arg = argv[at + 3];
  shoal_error err;
  memset(&err, 0, sizeof err);
  shoal_db *db = NULL;
  int rc = strcmp(mode, "connect") == 0 ? shoal_connect(path, NULL, &db, &err) : shoal_open(path, NULL, &db, &err);
  if (rc != SHOAL_OK) return failf("open the handle", rc, &err);
  shoal_mesh *mesh = NULL;
  if (mesh_mode) {
    rc = shoal_mesh_start(db, argv[3], &mesh, &err);
    if (rc != SHOAL_OK) return failf("shoal_mesh_start", rc, &err);
    if (strcmp(expect, "whole") == 0 && wait_for_sink(mesh, &err) != 0) return 1;
  }

  shoal_record *rec = NULL;
  rc = shoal_get(db, coll, id, strlen(id), &rec, &err);
  int result = 0;
  size_t dim = 0;
  const float *v = rec == NULL ? NULL : shoal_record_vector(rec, &dim);
  if (strcmp(expect, "whole") == 0) {
    if (rc != SHOAL_OK) {
      result = failf("shoal_get of the evicted record should refill it from the sink", rc, &err);
    } else {
      /* The expected vector, parsed from "a,b,c". */
      size_t n = 0;
      float want[64];
      char *text = strdup(arg), *save = NULL;
      for (char *t = strtok_r(text, ",", &save); t != NULL && n < 64; t = strtok_r(NULL, ",", &save)) {
        want[n++] = strtof(t, NULL);
      }
      free(text);
      if (dim != n || v == NULL || memcmp(v, want, n * sizeof(float)) != 0) {
        fprintf(stderr, "FAIL: the refilled vector has dimension %zu, want %zu values %s\n", dim, n, arg);
        result = 1;
      } else {
        printf("whole (%s): %s refilled, dimension %zu\n", mode, id, dim);
      }
    }
  } else {
    const char *meta = rec == NULL ? NULL : shoal_record_metadata_json(rec);
    if (rc != SHOAL_E_COLD) {
      result = failf("shoal_get of the evicted record with no reachable sink should be SHOAL_E_COLD", rc, &err);
    } else if (err.code != SHOAL_E_COLD || rec == NULL) {
      result = failf("SHOAL_E_COLD should fill err and still set the record", rc, &err);
    } else if (dim != 0) {
      result = failf("a cold record has no vector", rc, &err);
    } else if (meta == NULL || strstr(meta, arg) == NULL) {
      fprintf(stderr, "FAIL: the cold record's metadata %s lacks %s\n", meta == NULL ? "(null)" : meta, arg);
      result = 1;
    } else if (strstr(err.message, id) == NULL) {
      result = failf("the cold error should name the record", rc, &err);
    } else {
      printf("cold (%s): %s metadata %s; %s\n", mode, id, meta, err.message);
    }
  }
  shoal_record_free(rec);
  if (mesh != NULL && shoal_mesh_stop(mesh, &err) != SHOAL_OK) result = failf("shoal_mesh_stop", rc, &err);
  shoal_close(db);
  return result;
}
