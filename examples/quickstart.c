/* examples/quickstart.c: the smallest useful program on the C API.
 *
 * Opens (or creates) a data directory, creates a 4-d cosine collection, stores three records
 * with metadata, searches with and without a filter, and reads one record back.
 *   ./quickstart [DIR]        (default ./quickstart-data)
 * Every call's code is checked; on error the message names the limit and the value seen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal.h"

static void check(int rc, const shoal_error *err, const char *what) {
  if (rc != SHOAL_OK && (rc & 0xff) != SHOAL_ECONFLICT) { /* "exists" is fine on a rerun */
    fprintf(stderr, "%s failed (code 0x%x): %s\n", what, rc, err->message);
    exit(1);
  }
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "quickstart-data";
  shoal_error err;
  shoal_db *db = NULL;
  check(shoal_open(dir, NULL, &db, &err), &err, "shoal_open");
  check(shoal_collection_create(db, "photos", 4, SHOAL_METRIC_COSINE, &err), &err, "create");

  const struct { const char *id; float v[4]; const char *place; } items[] = {
      {"beach.jpg", {0.9f, 0.1f, 0.0f, 0.1f}, "outdoor"},
      {"forest.jpg", {0.7f, 0.6f, 0.1f, 0.0f}, "outdoor"},
      {"kitchen.jpg", {0.0f, 0.2f, 0.9f, 0.3f}, "indoor"},
  };
  for (size_t i = 0; i < 3; ++i) {
    shoal_meta *meta = shoal_meta_new();
    check(shoal_meta_set_string(meta, "place", items[i].place, &err), &err, "meta");
    check(shoal_meta_set_int(meta, "year", 2024, &err), &err, "meta");
    check(shoal_upsert(db, "photos", items[i].id, strlen(items[i].id), items[i].v, 4, meta,
                       "demo-embedder-v1", &err), &err, "upsert");
    shoal_meta_free(meta);
  }

  const float query[4] = {0.8f, 0.3f, 0.0f, 0.1f};
  shoal_hit hits[3];
  size_t count = 0;
  check(shoal_search(db, "photos", query, 4, 3, 0, NULL, hits, 3, &count, &err), &err, "search");
  printf("nearest to the query:\n");
  for (size_t i = 0; i < count; ++i) printf("  %-12s distance %.4f\n", hits[i].id, hits[i].distance);

  check(shoal_search(db, "photos", query, 4, 3, 0, "place=indoor", hits, 3, &count, &err), &err,
        "filtered search");
  printf("nearest indoor photo: %s\n", count > 0 ? hits[0].id : "(none)");

  shoal_record *rec = NULL;
  check(shoal_get(db, "photos", "beach.jpg", 9, &rec, &err), &err, "get");
  printf("beach.jpg metadata %s, model %s\n", shoal_record_metadata_json(rec), shoal_record_model(rec));
  shoal_record_free(rec);

  /* A bad request gets a typed error and changes nothing. */
  const float wrong[3] = {1, 2, 3};
  int rc = shoal_upsert(db, "photos", "bad", 3, wrong, 3, NULL, NULL, &err);
  printf("upsert of a 3-d vector: code 0x%x (%s)\n", rc, err.message);

  shoal_close(db);
  return 0;
}
