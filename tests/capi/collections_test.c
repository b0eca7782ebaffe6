/* Proves the C API's collection listing and description: shoal_collection_list returns every live
 * collection in byte order of the names, as a copy that later creates and drops do not change, and
 * leaves a dropped one out; shoal_collection_info reports the name, dimension, metric, live count
 * and index parameters each collection was created with, follows upserts and deletes, refuses an
 * unknown or dropped collection with SHOAL_E_NOCOLLECTION (naming it) and a too small or NULL out
 * with SHOAL_EINVAL, leaving the caller's struct unchanged on error, and writes no byte past the
 * out_size it is given (an older caller's struct). shoal_collection_create_ex stores the index
 * options it is given (0 fields and NULL take the defaults: M 16, efConstruction 200, ef 64, int8)
 * and refuses values outside their limits with typed errors naming field, range and value, an
 * unknown quantization, a short struct_size and set fields of a later struct. Everything survives
 * a reopen. NULL-tolerant accessors.
 * Both modes: embedded, and client mode when SHOAL_TEST_CONNECT names the socket of a daemon
 * serving DIR (a reopen is then a new connection).
 * Prints "N passed, M failed" and exits non-zero on any failure. Usage: shoal_capi_collections_test DIR */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal.h"

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

/* The names of the collections, joined by commas, into buf. */
static const char *names(shoal_db *db, char *buf, size_t cap) {
  shoal_name_list *list = NULL;
  shoal_error err;
  buf[0] = '\0';
  if (shoal_collection_list(db, &list, &err) != SHOAL_OK) return "(error)";
  for (size_t i = 0; i < shoal_name_list_count(list); ++i) {
    if (i > 0) strncat(buf, ",", cap - strlen(buf) - 1);
    strncat(buf, shoal_name_list_get(list, i), cap - strlen(buf) - 1);
  }
  shoal_name_list_free(list);
  return buf;
}

static const char *connect_path(void) {
  const char *p = getenv("SHOAL_TEST_CONNECT");
  return p != NULL && *p != '\0' ? p : NULL;
}
static int open_db(const char *dir, shoal_db **db, shoal_error *err) {
  return connect_path() != NULL ? shoal_connect(connect_path(), NULL, db, err) : shoal_open(dir, NULL, db, err);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  shoal_error err;
  shoal_db *db = NULL;
  char buf[512];
  if (open_db(argv[1], &db, &err) != SHOAL_OK) {
    fprintf(stderr, "open failed: %s\n", err.message);
    return 1;
  }

  /* An empty directory lists nothing. */
  shoal_name_list *list = NULL;
  CHECK(shoal_collection_list(db, &list, &err) == SHOAL_OK && list != NULL);
  CHECK(shoal_name_list_count(list) == 0);
  CHECK(shoal_name_list_get(list, 0) == NULL);
  shoal_name_list_free(list);

  CHECK(shoal_collection_create(db, "photos", 4, SHOAL_METRIC_COSINE, &err) == SHOAL_OK);
  CHECK(shoal_collection_create(db, "audio.v2", 128, SHOAL_METRIC_IP, &err) == SHOAL_OK);
  CHECK(shoal_collection_create(db, "Zeta", 3, SHOAL_METRIC_L2, &err) == SHOAL_OK);
  CHECK(shoal_collection_create(db, "tmp", 2, SHOAL_METRIC_L2, &err) == SHOAL_OK);
  /* Byte order: upper case before lower case. */
  CHECK(strcmp(names(db, buf, sizeof buf), "Zeta,audio.v2,photos,tmp") == 0);

  /* The list is a copy: a drop after it was taken does not change it. */
  CHECK(shoal_collection_list(db, &list, &err) == SHOAL_OK);
  CHECK(shoal_collection_drop(db, "tmp", &err) == SHOAL_OK);
  CHECK(shoal_name_list_count(list) == 4 && strcmp(shoal_name_list_get(list, 3), "tmp") == 0);
  shoal_name_list_free(list);
  CHECK(strcmp(names(db, buf, sizeof buf), "Zeta,audio.v2,photos") == 0);

  /* Info: what the collection was created with, and its live count. */
  const float v1[4] = {1, 0, 0, 0}, v2[4] = {0, 1, 0, 0};
  CHECK(shoal_upsert(db, "photos", "a", 1, v1, 4, NULL, NULL, &err) == SHOAL_OK);
  CHECK(shoal_upsert(db, "photos", "b", 1, v2, 4, NULL, NULL, &err) == SHOAL_OK);
  shoal_collection_desc d;
  memset(&d, 0xab, sizeof d);
  CHECK(shoal_collection_info(db, "photos", &d, sizeof d, &err) == SHOAL_OK);
  CHECK(strcmp(d.name, "photos") == 0);
  CHECK(d.dimension == 4 && d.metric == SHOAL_METRIC_COSINE && d.count == 2);
  /* The defaults: M 16, efConstruction 200, ef 64, int8 quantization. */
  CHECK(d.m == 16 && d.ef_construction == 200 && d.ef_search == 64 && d.quantized == 1);
  CHECK(d.index_bytes > 0); /* both modes: the local API carries the index size */
  CHECK(shoal_delete(db, "photos", "a", 1, &err) == SHOAL_OK);
  CHECK(shoal_collection_info(db, "photos", &d, sizeof d, &err) == SHOAL_OK && d.count == 1);
  uint64_t n = 0;
  CHECK(shoal_collection_count(db, "photos", &n, NULL) == SHOAL_OK && n == d.count);
  CHECK(shoal_collection_info(db, "audio.v2", &d, sizeof d, &err) == SHOAL_OK);
  CHECK(strcmp(d.name, "audio.v2") == 0 && d.dimension == 128 && d.metric == SHOAL_METRIC_IP && d.count == 0);
  CHECK(shoal_collection_info(db, "Zeta", &d, sizeof d, &err) == SHOAL_OK);
  CHECK(d.dimension == 3 && d.metric == SHOAL_METRIC_L2);

  /* Typed errors, and the caller's struct untouched on error. */
  shoal_collection_desc before;
  memcpy(&before, &d, sizeof d);
  CHECK(shoal_collection_info(db, "nope", &d, sizeof d, &err) == SHOAL_E_NOCOLLECTION);
  CHECK(err.code == SHOAL_E_NOCOLLECTION && strstr(err.message, "nope") != NULL);
  CHECK(shoal_collection_info(db, "tmp", &d, sizeof d, &err) == SHOAL_E_NOCOLLECTION); /* dropped */
  CHECK(memcmp(&before, &d, sizeof d) == 0);
  CHECK(shoal_collection_info(db, "photos", &d, 8, &err) == SHOAL_EINVAL);
  CHECK(strstr(err.message, "got 8") != NULL);
  CHECK(memcmp(&before, &d, sizeof d) == 0);
  CHECK(shoal_collection_info(db, "photos", NULL, sizeof d, &err) == SHOAL_EINVAL);
  CHECK(shoal_collection_info(NULL, "photos", &d, sizeof d, &err) == SHOAL_EINVAL);
  CHECK(shoal_collection_info(db, NULL, &d, sizeof d, &err) == SHOAL_EINVAL);
  CHECK(shoal_collection_list(db, NULL, &err) == SHOAL_EINVAL);
  CHECK(shoal_collection_list(NULL, &list, &err) == SHOAL_EINVAL);
  CHECK(shoal_name_list_count(NULL) == 0 && shoal_name_list_get(NULL, 0) == NULL);
  shoal_name_list_free(NULL);

  /* A caller compiled against a later, longer struct: the library writes exactly its own fields
   * and nothing past them. */
  struct {
    shoal_collection_desc d;
    unsigned char later_fields[32];
  } longer;
  memset(&longer, 0xcd, sizeof longer);
  CHECK(shoal_collection_info(db, "photos", &longer.d, sizeof longer, &err) == SHOAL_OK);
  CHECK(longer.d.count == 1 && strcmp(longer.d.name, "photos") == 0);
  int untouched = 1;
  for (size_t i = 0; i < sizeof longer.later_fields; ++i) untouched &= longer.later_fields[i] == 0xcd;
  CHECK(untouched);

  /* A name of the maximum length fits with its NUL. */
  char longest[SHOAL_MAX_COLLECTION_NAME_BYTES + 1];
  memset(longest, 'n', SHOAL_MAX_COLLECTION_NAME_BYTES);
  longest[SHOAL_MAX_COLLECTION_NAME_BYTES] = '\0';
  CHECK(shoal_collection_create(db, longest, 2, SHOAL_METRIC_L2, &err) == SHOAL_OK);
  CHECK(shoal_collection_info(db, longest, &d, sizeof d, &err) == SHOAL_OK && strcmp(d.name, longest) == 0);
  CHECK(shoal_collection_drop(db, longest, &err) == SHOAL_OK);

  /* Index options (shoal_collection_create_ex): stored with the collection and reported back. */
  shoal_collection_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.m = 24;
  o.ef_construction = 300;
  o.ef_search = 96;
  o.quantization = SHOAL_QUANTIZATION_NONE;
  CHECK(shoal_collection_create_ex(db, "tuned", 8, SHOAL_METRIC_L2, &o, &err) == SHOAL_OK);
  CHECK(shoal_collection_info(db, "tuned", &d, sizeof d, &err) == SHOAL_OK);
  CHECK(d.m == 24 && d.ef_construction == 300 && d.ef_search == 96 && d.quantized == 0);
  /* Fields left 0 take the defaults; NULL options are every default. */
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.ef_search = 40;
  CHECK(shoal_collection_create_ex(db, "partly", 8, SHOAL_METRIC_IP, &o, &err) == SHOAL_OK);
  CHECK(shoal_collection_info(db, "partly", &d, sizeof d, &err) == SHOAL_OK);
  CHECK(d.m == 16 && d.ef_construction == 200 && d.ef_search == 40 && d.quantized == 1);
  CHECK(shoal_collection_create_ex(db, "plain", 8, SHOAL_METRIC_COSINE, NULL, &err) == SHOAL_OK);
  CHECK(shoal_collection_info(db, "plain", &d, sizeof d, &err) == SHOAL_OK);
  CHECK(d.m == 16 && d.ef_search == 64 && d.quantized == 1);
  CHECK(shoal_collection_drop(db, "plain", &err) == SHOAL_OK);
  /* Limits: typed errors naming the field, the range and the value seen; nothing is created. */
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.m = 1;
  CHECK(shoal_collection_create_ex(db, "bad", 8, SHOAL_METRIC_L2, &o, &err) == SHOAL_E_OUTOFRANGE);
  CHECK(strstr(err.message, "m must be in [2, 256], got 1") != NULL);
  o.m = 257;
  CHECK(shoal_collection_create_ex(db, "bad", 8, SHOAL_METRIC_L2, &o, &err) == SHOAL_E_OUTOFRANGE);
  CHECK(strstr(err.message, "got 257") != NULL);
  o.m = 0;
  o.ef_construction = 65537;
  CHECK(shoal_collection_create_ex(db, "bad", 8, SHOAL_METRIC_L2, &o, &err) == SHOAL_E_OUTOFRANGE);
  CHECK(strstr(err.message, "ef_construction") != NULL && strstr(err.message, "65537") != NULL);
  o.ef_construction = 0;
  o.ef_search = 70000;
  CHECK(shoal_collection_create_ex(db, "bad", 8, SHOAL_METRIC_L2, &o, &err) == SHOAL_E_OUTOFRANGE);
  CHECK(strstr(err.message, "ef_search") != NULL && strstr(err.message, "70000") != NULL);
  o.ef_search = 0;
  o.quantization = 7;
  CHECK(shoal_collection_create_ex(db, "bad", 8, SHOAL_METRIC_L2, &o, &err) == SHOAL_E_UNKNOWNNAME);
  CHECK(strstr(err.message, "quantization 7") != NULL);
  o.quantization = 0;
  o.struct_size = 4;
  CHECK(shoal_collection_create_ex(db, "bad", 8, SHOAL_METRIC_L2, &o, &err) == SHOAL_EINVAL);
  CHECK(strstr(err.message, "got 4") != NULL);
  {
    /* A caller built against a later header: unknown fields left 0 are fine, set ones refused. */
    struct {
      shoal_collection_options o;
      unsigned char later_fields[16];
    } later;
    memset(&later, 0, sizeof later);
    later.o.struct_size = sizeof later;
    later.o.m = 20;
    CHECK(shoal_collection_create_ex(db, "later", 8, SHOAL_METRIC_L2, &later.o, &err) == SHOAL_OK);
    CHECK(shoal_collection_info(db, "later", &d, sizeof d, &err) == SHOAL_OK && d.m == 20);
    CHECK(shoal_collection_drop(db, "later", &err) == SHOAL_OK);
    later.later_fields[3] = 1;
    CHECK(shoal_collection_create_ex(db, "later2", 8, SHOAL_METRIC_L2, &later.o, &err) == SHOAL_EUNIMPLEMENTED);
  }
  CHECK(strcmp(names(db, buf, sizeof buf), "Zeta,audio.v2,partly,photos,tuned") == 0);
  /* The tuned collection searches like any other (float graph, ef from the spec). */
  {
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(shoal_upsert(db, "tuned", "x", 1, v, 8, NULL, NULL, &err) == SHOAL_OK);
    shoal_hit hit[1];
    size_t nh = 0;
    CHECK(shoal_search(db, "tuned", v, 8, 1, 0, NULL, hit, 1, &nh, &err) == SHOAL_OK);
    CHECK(nh == 1 && strcmp(hit[0].id, "x") == 0 && hit[0].distance == 0.0f);
  }

  /* Reopen: the same list and parameters. */
  shoal_close(db);
  db = NULL;
  CHECK(open_db(argv[1], &db, &err) == SHOAL_OK);
  if (db == NULL) return 1;
  CHECK(strcmp(names(db, buf, sizeof buf), "Zeta,audio.v2,partly,photos,tuned") == 0);
  CHECK(shoal_collection_info(db, "photos", &d, sizeof d, &err) == SHOAL_OK);
  CHECK(d.dimension == 4 && d.metric == SHOAL_METRIC_COSINE && d.count == 1);
  CHECK(d.quantized == 1);
  CHECK(shoal_collection_info(db, "tuned", &d, sizeof d, &err) == SHOAL_OK);
  CHECK(d.m == 24 && d.ef_construction == 300 && d.ef_search == 96 && d.quantized == 0 && d.count == 1);
  CHECK(shoal_collection_info(db, "partly", &d, sizeof d, &err) == SHOAL_OK);
  CHECK(d.m == 16 && d.ef_search == 40 && d.quantized == 1);
  shoal_close(db);

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
