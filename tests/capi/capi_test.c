/* Proves the C API from C: open/close, collections, upsert (single and batch), get with the
 * winner's vector and metadata, search into caller arrays, delete, typed error codes with the
 * limit and value in the message (each message is checked for both, not only for being there),
 * strings that are not UTF-8 refused by name and offset with nothing stored, malformed filters
 * refused with their byte offset, a second open refused as unavailable naming this process,
 * NULL-tolerant destructors, and persistence across reopen.
 * Both modes: embedded (shoal_open DIR), and client mode when SHOAL_TEST_CONNECT names the socket
 * of a daemon serving DIR (tests/capi/run_client_mode.sh starts one): every check is the same,
 * codes and messages included, except that the second open of DIR names another process and a
 * "reopen" is a new connection.
 * Prints "N passed, M failed" and exits non-zero on any failure. Usage: shoal_capi_test DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal.h"

static int passed = 0, failed = 0;
#define CHECK(cond)                                                    \
  do {                                                                 \
    if (cond) {                                                        \
      ++passed;                                                        \
    } else {                                                           \
      ++failed;                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                  \
  } while (0)

/* Client mode when SHOAL_TEST_CONNECT is set: the handle is a connection to the daemon. */
static const char *connect_path(void) {
  const char *p = getenv("SHOAL_TEST_CONNECT");
  return p != NULL && *p != '\0' ? p : NULL;
}
static int open_db(const char *dir, const shoal_options *opts, shoal_db **db, shoal_error *err) {
  return connect_path() != NULL ? shoal_connect(connect_path(), opts, db, err) : shoal_open(dir, opts, db, err);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  shoal_error err;
  shoal_db *db = NULL;

  CHECK(shoal_version_number() == SHOAL_VERSION_NUMBER);
  CHECK(strcmp(shoal_version(), "0.1.0") == 0);
  /* Static descriptions name the cause; an unknown detail still names its primary code. */
  CHECK(strcmp(shoal_strerror(SHOAL_E_DIMENSION), "invalid argument: vector dimension mismatch") == 0);
  CHECK(strcmp(shoal_strerror(SHOAL_E_MALFORMED), "invalid argument: malformed input") == 0);
  CHECK(strcmp(shoal_strerror(0x7f01), "invalid argument") == 0);

  shoal_options *opts = shoal_options_new();
  CHECK(opts != NULL);
  CHECK(shoal_options_set_max_store_bytes(opts, 10, &err) == SHOAL_E_OUTOFRANGE);
  CHECK(strstr(err.message, "1048576") != NULL);
  CHECK(shoal_options_set_max_store_bytes(opts, 1ull << 30, NULL) == SHOAL_OK);
  CHECK(open_db(dir, opts, &db, &err) == SHOAL_OK);
  shoal_options_free(opts);
  CHECK(db != NULL);
  if (db == NULL) {
    fprintf(stderr, "open failed: %s\n", err.message);
    return 1;
  }

  CHECK(shoal_collection_create(db, "items", 3, SHOAL_METRIC_L2, &err) == SHOAL_OK);
  CHECK(shoal_collection_create(db, "items", 3, SHOAL_METRIC_L2, &err) == SHOAL_E_EXISTS);
  CHECK((shoal_collection_create(db, "bad name", 3, SHOAL_METRIC_L2, &err) & 0xff) == SHOAL_EINVAL);
  CHECK(shoal_collection_create(db, "x", 0, SHOAL_METRIC_L2, &err) == SHOAL_E_OUTOFRANGE);

  const float a[3] = {0, 0, 0}, b[3] = {1, 0, 0};
  shoal_meta *meta = shoal_meta_new();
  CHECK(shoal_meta_set_string(meta, "color", "red", NULL) == SHOAL_OK);
  CHECK(shoal_meta_set_int(meta, "year", 2024, NULL) == SHOAL_OK);
  CHECK(shoal_meta_set_float(meta, "score", 0.5, NULL) == SHOAL_OK);
  CHECK(shoal_meta_set_bool(meta, "ok", 1, NULL) == SHOAL_OK);
  CHECK(shoal_upsert(db, "items", "a", 1, a, 3, meta, "model-1", &err) == SHOAL_OK);
  CHECK(shoal_upsert(db, "items", "b", 1, b, 3, NULL, NULL, &err) == SHOAL_OK);
  shoal_meta_free(meta);

  /* Typed errors name the limit and the value, and change nothing. */
  const float nan3[3] = {NAN, 0, 0};
  CHECK(shoal_upsert(db, "items", "c", 1, a, 2, NULL, NULL, &err) == SHOAL_E_DIMENSION);
  CHECK(err.code == SHOAL_E_DIMENSION);
  CHECK(strstr(err.message, "dimension 2") != NULL && strstr(err.message, "3") != NULL);
  CHECK(shoal_upsert(db, "items", "c", 1, nan3, 3, NULL, NULL, &err) == SHOAL_E_NONFINITE);
  /* The message names the component and the value seen. */
  CHECK(strstr(err.message, "component 0 is NaN") != NULL);
  char long_id[300];
  memset(long_id, 'x', sizeof long_id);
  CHECK(shoal_upsert(db, "items", long_id, sizeof long_id, a, 3, NULL, NULL, &err) == SHOAL_E_TOOLARGE);
  CHECK(strstr(err.message, "256") != NULL && strstr(err.message, "300") != NULL);
  CHECK(shoal_upsert(db, "nope", "c", 1, a, 3, NULL, NULL, &err) == SHOAL_E_NOCOLLECTION);
  CHECK(strstr(err.message, "nope") != NULL);
  /* Strings that are not UTF-8: refused by name, rule and offset, and nothing is stored. */
  shoal_meta *bad = shoal_meta_new();
  CHECK(shoal_meta_set_string(bad, "note", "ab\xff" "cd", &err) == SHOAL_E_MALFORMED);
  CHECK(strstr(err.message, "metadata value of key 'note' must be valid UTF-8") != NULL);
  CHECK(strstr(err.message, "offset 2") != NULL && strstr(err.message, "ab\\xffcd") != NULL);
  CHECK(shoal_meta_set_int(bad, "k\xc0\x80", 1, &err) == SHOAL_E_MALFORMED);
  CHECK(strstr(err.message, "metadata key must be valid UTF-8; byte 0xc0 at offset 1") != NULL);
  shoal_meta_free(bad);
  CHECK(shoal_upsert(db, "items", "c\xfe", 2, a, 3, NULL, NULL, &err) == SHOAL_E_MALFORMED);
  CHECK(strstr(err.message, "record id must be valid UTF-8; byte 0xfe at offset 1") != NULL);
  CHECK(shoal_upsert(db, "items", "c", 1, a, 3, NULL, "m\xed\xa0\x80", &err) == SHOAL_E_MALFORMED);
  CHECK(strstr(err.message, "model tag must be valid UTF-8; byte 0xed at offset 1") != NULL);
  CHECK(shoal_upsert(NULL, "items", "c", 1, a, 3, NULL, NULL, &err) == SHOAL_EINVAL);
  uint64_t n = 0;
  CHECK(shoal_collection_count(db, "items", &n, NULL) == SHOAL_OK && n == 2);

  /* Batch: all or nothing. */
  const char *ids[3] = {"p", "q", "r"};
  size_t lens[3] = {1, 1, 1};
  float vecs[9] = {2, 0, 0, 3, 0, 0, 4, 0, 0};
  CHECK(shoal_upsert_batch(db, "items", 3, ids, lens, vecs, 3, NULL, NULL, &err) == SHOAL_OK);
  vecs[8] = INFINITY;
  const char *ids2[3] = {"s", "t", "u"};
  CHECK(shoal_upsert_batch(db, "items", 3, ids2, lens, vecs, 3, NULL, NULL, &err) == SHOAL_E_NONFINITE);
  CHECK(shoal_collection_count(db, "items", &n, NULL) == SHOAL_OK && n == 5);
  /* Group commit's totals: one group per accepted write on one thread (2 upserts, 1 batch); the
   * rejected ones above never joined a group. */
  char *stats = NULL;
  CHECK(shoal_stats_json(db, &stats, &err) == SHOAL_OK);
  CHECK(strstr(stats, "\"write_groups\":{\"groups\":3,\"largest\":1,\"writes\":3}") != NULL);
  CHECK(strstr(stats, "\"index_backlog\":") != NULL);
  shoal_string_free(stats);

  /* Get. */
  shoal_record *rec = NULL;
  CHECK(shoal_get(db, "items", "a", 1, &rec, &err) == SHOAL_OK);
  size_t dim = 0;
  const float *v = shoal_record_vector(rec, &dim);
  CHECK(dim == 3 && v != NULL && v[0] == 0.0f);
  CHECK(strcmp(shoal_record_model(rec), "model-1") == 0);
  CHECK(strstr(shoal_record_metadata_json(rec), "\"color\":\"red\"") != NULL);
  CHECK(shoal_record_sibling_count(rec) == 1);
  shoal_record_free(rec);
  shoal_record_free(NULL);
  CHECK(shoal_get(db, "items", "zz", 2, &rec, &err) == SHOAL_E_NORECORD);
  CHECK(rec == NULL);

  /* Search into a caller array. */
  shoal_hit hits[4];
  size_t count = 0;
  const float q[3] = {0.9f, 0, 0};
  CHECK(shoal_search(db, "items", q, 3, 2, 0, NULL, hits, 4, &count, &err) == SHOAL_OK);
  CHECK(count == 2);
  CHECK(strcmp(hits[0].id, "b") == 0 && hits[0].id_len == 1);
  CHECK(fabsf(hits[0].distance - 0.01f) < 1e-5f);
  CHECK(shoal_search(db, "items", q, 3, 4, 0, "color=red", hits, 4, &count, &err) == SHOAL_OK);
  CHECK(count == 1 && strcmp(hits[0].id, "a") == 0);
  CHECK(shoal_search(db, "items", q, 3, 0, 0, NULL, hits, 4, &count, &err) == SHOAL_E_OUTOFRANGE);
  CHECK(strstr(err.message, "k must be 1..1000, got 0") != NULL);
  CHECK(shoal_search(db, "items", q, 3, 8, 0, NULL, hits, 4, &count, &err) == SHOAL_E_TOOLARGE);
  CHECK(strstr(err.message, "k is 8") != NULL && strstr(err.message, "holds 4") != NULL);
  /* Cold search needs a sink: an embedded handle has none, and the client-mode stand-in daemon
   * runs no mesh; both refuse with a typed SHOAL_EUNAVAILABLE saying so (tests/mesh/
   * sink_operator_test.py covers a daemon with a sink). NULL arguments are SHOAL_EINVAL. */
  {
    unsigned char cold[4];
    shoal_freshness *cf = NULL;
    int sink_code = -1;
    count = 7;
    CHECK(shoal_search_cold(db, "items", q, 3, 2, 0, hits, cold, 4, &count, &cf, &sink_code, NULL, &err) ==
          SHOAL_EUNAVAILABLE);
    CHECK(err.code == SHOAL_EUNAVAILABLE && (strstr(err.message, "sink") != NULL || strstr(err.message, "mesh") != NULL));
    CHECK(count == 0 && cf == NULL);
    CHECK(shoal_search_cold(db, NULL, q, 3, 2, 0, hits, cold, 4, &count, NULL, NULL, NULL, &err) == SHOAL_EINVAL);
    CHECK(shoal_search_cold(db, "items", q, 3, 5, 0, hits, cold, 4, &count, NULL, NULL, NULL, &err) ==
          SHOAL_E_TOOLARGE);
  }
  CHECK(shoal_search(db, "items", q, 3, 2, 0, "color", hits, 4, &count, &err) == SHOAL_E_MALFORMED);
  CHECK(strstr(err.message, "at byte 5") != NULL);
  /* Malformed filters are refused with the byte offset, never matched against nothing. */
  CHECK(shoal_search(db, "items", q, 3, 2, 0, "color=\"red", hits, 4, &count, &err) == SHOAL_E_MALFORMED);
  CHECK(strstr(err.message, "unterminated") != NULL && strstr(err.message, "at byte 6") != NULL);
  CHECK(shoal_search(db, "items", q, 3, 2, 0, "year>>2021", hits, 4, &count, &err) == SHOAL_E_MALFORMED);
  CHECK(strstr(err.message, "at byte 5") != NULL);
  CHECK(shoal_search(db, "items", q, 3, 2, 0, "k\xff=1", hits, 4, &count, &err) == SHOAL_E_MALFORMED);
  CHECK(strstr(err.message, "not valid UTF-8 at byte 1") != NULL);
  /* A quoted comma is part of the value, not a separator. */
  CHECK(shoal_search(db, "items", q, 3, 4, 0, "color=\"red,blue\"", hits, 4, &count, &err) == SHOAL_OK);
  CHECK(count == 0);

  /* Delete. */
  CHECK(shoal_delete(db, "items", "b", 1, &err) == SHOAL_OK);
  CHECK(shoal_delete(db, "items", "b", 1, &err) == SHOAL_E_NORECORD);
  CHECK(shoal_search(db, "items", q, 3, 1, 0, NULL, hits, 4, &count, &err) == SHOAL_OK);
  CHECK(count == 1 && strcmp(hits[0].id, "a") == 0);

  /* A second open of the same directory is refused while the first is open (in client mode, the
   * daemon holds it). */
  shoal_db *db2 = NULL;
  CHECK(shoal_open(dir, NULL, &db2, &err) == SHOAL_EUNAVAILABLE);
  CHECK(err.code == SHOAL_EUNAVAILABLE && db2 == NULL);
  CHECK(strstr(err.message, connect_path() != NULL ? "already open in another process (PID "
                                                   : "already open in this process (PID ") != NULL);
  shoal_close(db);
  shoal_close(NULL);

  /* Reopen: everything acknowledged is there. */
  CHECK(open_db(dir, NULL, &db, &err) == SHOAL_OK);
  CHECK(shoal_collection_count(db, "items", &n, NULL) == SHOAL_OK && n == 4);
  CHECK(shoal_collection_drop(db, "items", &err) == SHOAL_OK);
  CHECK(shoal_collection_count(db, "items", &n, &err) == SHOAL_E_NOCOLLECTION);
  shoal_close(db);

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
