/* tests/capi/mesh_bootstrap_probe.c: an app that embeds the mesh restores a collection it does
 * not have from the sink (shoal_mesh_bootstrap; docs/tiers.md, "Bootstrap from the sink"). Driven
 * by tests/mesh/sink_cold_get_test.py, which runs the real sink holding the collection and enrols
 * this app's device; this program asserts what the C API returns.
 *
 * usage: mesh_bootstrap_probe DATA_DIR CONFIG COLLECTION RECORDS ID VECTOR OPTIONS
 * Proves: shoal_mesh_bootstrap creates COLLECTION (absent before) with the sink's dimension and
 * metric and the index options OPTIONS ("m,ef_construction,ef_search,quantized", as
 * shoal_collection_info reports them: the members' options the sink kept, D62) and restores
 * RECORDS records; record ID then reads back with exactly VECTOR ("1,2,3");
 * a second bootstrap creates nothing and leaves RECORDS records (idempotent); a NULL collection
 * is SHOAL_EINVAL. Exit 0 when all hold, 1 (the reason on stderr) otherwise. The only wait is for
 * the mesh's sink link to come up (SHOAL_EUNAVAILABLE before), bounded at 60 s. */
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

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: %s DATA_DIR CONFIG COLLECTION RECORDS ID VECTOR OPTIONS\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1], *config = argv[2], *coll = argv[3], *id = argv[5], *vector = argv[6];
  const uint64_t want_records = strtoull(argv[4], NULL, 10);
  shoal_error err;
  memset(&err, 0, sizeof err);
  shoal_db *db = NULL;
  int rc = shoal_open(dir, NULL, &db, &err);
  if (rc != SHOAL_OK) return failf("shoal_open", rc, &err);
  uint64_t count = 0;
  rc = shoal_collection_count(db, coll, &count, &err);
  if (rc != SHOAL_E_NOCOLLECTION) return failf("the collection must not exist before the bootstrap", rc, &err);
  shoal_mesh *mesh = NULL;
  rc = shoal_mesh_start(db, config, &mesh, &err);
  if (rc != SHOAL_OK) return failf("shoal_mesh_start", rc, &err);

  int result = 0;
  uint64_t records = 0;
  int created = 0;
  /* The sink link is dialed at start: until it is up the call says SHOAL_EUNAVAILABLE. */
  for (int tries = 0; tries < 1200; ++tries) {
    rc = shoal_mesh_bootstrap(mesh, coll, &records, &created, &err);
    if (rc != SHOAL_EUNAVAILABLE) break;
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  if (rc != SHOAL_OK) {
    result = failf("shoal_mesh_bootstrap", rc, &err);
  } else if (records != want_records || created != 1) {
    fprintf(stderr, "FAIL: bootstrap carried %llu records (want %llu), created %d (want 1)\n",
            (unsigned long long)records, (unsigned long long)want_records, created);
    result = 1;
  } else if ((rc = shoal_collection_count(db, coll, &count, &err)) != SHOAL_OK || count != want_records) {
    fprintf(stderr, "FAIL: after the bootstrap the collection counts %llu (code 0x%x), want %llu\n", (unsigned long long)count,
            (unsigned)rc, (unsigned long long)want_records);
    result = 1;
  }
  if (result == 0) {
    shoal_collection_desc desc;
    char got[96];
    memset(&desc, 0, sizeof desc);
    rc = shoal_collection_info(db, coll, &desc, sizeof desc, &err);
    snprintf(got, sizeof got, "%u,%u,%u,%d", (unsigned)desc.m, (unsigned)desc.ef_construction, (unsigned)desc.ef_search,
             desc.quantized);
    if (rc != SHOAL_OK || strcmp(got, argv[7]) != 0) {
      fprintf(stderr, "FAIL: the created collection's index options are %s (code 0x%x), want %s\n", got, (unsigned)rc,
              argv[7]);
      result = 1;
    }
  }
  if (result == 0) {
    shoal_record *rec = NULL;
    rc = shoal_get(db, coll, id, strlen(id), &rec, &err);
    size_t dim = 0;
    const float *v = rec == NULL ? NULL : shoal_record_vector(rec, &dim);
    float want[64];
    size_t n = 0;
    char *text = strdup(vector), *save = NULL;
    for (char *t = strtok_r(text, ",", &save); t != NULL && n < 64; t = strtok_r(NULL, ",", &save)) want[n++] = strtof(t, NULL);
    free(text);
    if (rc != SHOAL_OK || v == NULL || dim != n || memcmp(v, want, n * sizeof(float)) != 0) {
      fprintf(stderr, "FAIL: record %s after the bootstrap: code 0x%x, dimension %zu, want %s\n", id, (unsigned)rc, dim,
              vector);
      result = 1;
    }
    shoal_record_free(rec);
  }
  if (result == 0) {
    /* Again: the collection exists now, nothing is created, nothing changes. */
    rc = shoal_mesh_bootstrap(mesh, coll, &records, &created, &err);
    if (rc != SHOAL_OK || created != 0 || records != want_records) {
      fprintf(stderr, "FAIL: a second bootstrap: code 0x%x, created %d, %llu records (%s)\n", (unsigned)rc, created,
              (unsigned long long)records, err.message);
      result = 1;
    } else if (shoal_collection_count(db, coll, &count, &err) != SHOAL_OK || count != want_records) {
      fprintf(stderr, "FAIL: a second bootstrap changed the count to %llu\n", (unsigned long long)count);
      result = 1;
    }
  }
  if (result == 0 && (rc = shoal_mesh_bootstrap(mesh, NULL, NULL, NULL, &err)) != SHOAL_EINVAL) {
    result = failf("a NULL collection should be SHOAL_EINVAL", rc, &err);
  }
  if (result == 0) printf("embedded mesh: bootstrap created %s (index options %s) and restored %llu records\n", coll, argv[7],
                          (unsigned long long)records);
  shoal_mesh_stop(mesh, &err);
  shoal_close(db);
  return result;
}
