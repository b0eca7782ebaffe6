/* Proves shoal_watch in either mode (embedded; client mode when SHOAL_TEST_CONNECT names the
 * socket of a daemon serving DIR): a watch sees every later upsert, batch and delete of its
 * collection, in order, with the id, the deleted flag and no origin (local writes), and nothing of
 * other collections or from before it started; a watch of every collection (NULL) sees both; the
 * callback runs on a library thread (not the caller's) and may call the library (shoal_get) and
 * even unwatch itself; after shoal_unwatch returns no callback runs; shoal_close ends the
 * remaining watches (their handles are still freed by shoal_unwatch); NULL arguments are EINVAL.
 * Also shoal_search_freshness: the same hits as shoal_search, and an empty freshness list (no mesh
 * behind this node). Prints "N passed, M failed". Usage: shoal_capi_watch_test DIR */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static const char *connect_path(void) {
  const char *p = getenv("SHOAL_TEST_CONNECT");
  return p != NULL && *p != '\0' ? p : NULL;
}
static int open_db(const char *dir, shoal_db **db, shoal_error *err) {
  return connect_path() != NULL ? shoal_connect(connect_path(), NULL, db, err) : shoal_open(dir, NULL, db, err);
}

/* What a callback saw, under a lock. */
#define MAX_SEEN 64
typedef struct seen {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int n;
  char text[MAX_SEEN][80]; /* "collection/id+" or "collection/id-" (deleted) */
  int origin_null;         /* every change had origin == NULL */
  int gaps;
  int calls;
  int on_caller_thread;    /* a call ran on the thread that made the watch */
  pthread_t caller;
  shoal_db *db;            /* for reads from inside the callback */
  int get_ok;              /* shoal_get of an upserted id worked inside the callback */
  shoal_watch_handle *self; /* unwatch from inside the callback when set */
  int unwatch_after;       /* ... after this many changes */
} seen;

static void seen_init(seen *s, shoal_db *db) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->origin_null = 1;
  s->caller = pthread_self();
  s->db = db;
}

static void on_changes(void *ctx, const shoal_change *changes, size_t count, int gap) {
  seen *s = (seen *)ctx;
  shoal_watch_handle *unwatch = NULL;
  /* A read through the library from inside the callback, of a record that is never deleted (a
   * batch may arrive after a later delete of its first record). */
  for (size_t i = 0; i < count && s->db != NULL; ++i) {
    if (changes[i].deleted || strcmp(changes[i].id, "a") == 0) continue;
    shoal_record *rec = NULL;
    if (shoal_get(s->db, changes[i].collection, changes[i].id, changes[i].id_len, &rec, NULL) == SHOAL_OK) {
      pthread_mutex_lock(&s->mu);
      s->get_ok = 1;
      pthread_mutex_unlock(&s->mu);
    }
    shoal_record_free(rec);
    break;
  }
  pthread_mutex_lock(&s->mu);
  ++s->calls;
  if (pthread_equal(pthread_self(), s->caller)) s->on_caller_thread = 1;
  if (gap) ++s->gaps;
  for (size_t i = 0; i < count && s->n < MAX_SEEN; ++i) {
    snprintf(s->text[s->n], sizeof s->text[s->n], "%s/%.*s%c", changes[i].collection, (int)changes[i].id_len,
             changes[i].id, changes[i].deleted ? '-' : '+');
    if (changes[i].origin != NULL) s->origin_null = 0;
    ++s->n;
  }
  if (s->self != NULL && s->n >= s->unwatch_after) {
    unwatch = s->self;
    s->self = NULL;
  }
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (unwatch != NULL) shoal_unwatch(unwatch); /* the watch's last call */
}

/* Waits up to 5 s until at least n changes were seen; returns how many were. */
static int wait_for(seen *s, int n) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 5;
  pthread_mutex_lock(&s->mu);
  while (s->n < n) {
    if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) != 0) break;
  }
  int got = s->n;
  pthread_mutex_unlock(&s->mu);
  return got;
}

static int count_now(seen *s) {
  pthread_mutex_lock(&s->mu);
  int n = s->n;
  pthread_mutex_unlock(&s->mu);
  return n;
}

static void pause_ms(int ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  shoal_error err;
  shoal_db *db = NULL;
  if (open_db(argv[1], &db, &err) != SHOAL_OK) {
    fprintf(stderr, "open failed: %s\n", err.message);
    return 1;
  }
  const float v[2] = {1, 0}, w[2] = {0, 1};
  CHECK(shoal_collection_create(db, "items", 2, SHOAL_METRIC_L2, &err) == SHOAL_OK);
  CHECK(shoal_collection_create(db, "other", 2, SHOAL_METRIC_L2, &err) == SHOAL_OK);
  /* Written before the watches: never reported. */
  CHECK(shoal_upsert(db, "items", "before", 6, v, 2, NULL, NULL, &err) == SHOAL_OK);

  /* NULL arguments. */
  shoal_watch_handle *h = NULL;
  seen one, all;
  seen_init(&one, db);
  seen_init(&all, NULL);
  CHECK(shoal_watch(NULL, "items", on_changes, &one, &h, &err) == SHOAL_EINVAL && h == NULL);
  CHECK(shoal_watch(db, "items", NULL, &one, &h, &err) == SHOAL_EINVAL);
  CHECK(strstr(err.message, "cb must not be NULL") != NULL);
  CHECK(shoal_watch(db, "items", on_changes, &one, NULL, &err) == SHOAL_EINVAL);
  shoal_unwatch(NULL);

  shoal_watch_handle *h_one = NULL, *h_all = NULL;
  CHECK(shoal_watch(db, "items", on_changes, &one, &h_one, &err) == SHOAL_OK && h_one != NULL);
  CHECK(shoal_watch(db, NULL, on_changes, &all, &h_all, &err) == SHOAL_OK && h_all != NULL);

  CHECK(shoal_upsert(db, "items", "a", 1, v, 2, NULL, NULL, &err) == SHOAL_OK);
  CHECK(shoal_upsert(db, "other", "x", 1, v, 2, NULL, NULL, &err) == SHOAL_OK);
  const char *ids[2] = {"b", "c"};
  size_t lens[2] = {1, 1};
  float vecs[4] = {1, 1, 2, 2};
  CHECK(shoal_upsert_batch(db, "items", 2, ids, lens, vecs, 2, NULL, NULL, &err) == SHOAL_OK);
  CHECK(shoal_delete(db, "items", "a", 1, &err) == SHOAL_OK);
  /* A refused write changes nothing and is not reported. */
  CHECK(shoal_upsert(db, "items", "bad", 3, v, 1, NULL, NULL, &err) == SHOAL_E_DIMENSION);

  CHECK(wait_for(&one, 4) == 4);
  CHECK(wait_for(&all, 5) == 5);
  pause_ms(300); /* nothing more arrives */
  pthread_mutex_lock(&one.mu);
  CHECK(one.n == 4);
  CHECK(strcmp(one.text[0], "items/a+") == 0);
  /* A batch is one change per record, in an order of its own. */
  CHECK((strcmp(one.text[1], "items/b+") == 0 && strcmp(one.text[2], "items/c+") == 0) ||
        (strcmp(one.text[1], "items/c+") == 0 && strcmp(one.text[2], "items/b+") == 0));
  CHECK(strcmp(one.text[3], "items/a-") == 0);
  CHECK(one.origin_null == 1 && one.gaps == 0);
  CHECK(one.on_caller_thread == 0);
  CHECK(one.get_ok == 1); /* the callback read through the library */
  pthread_mutex_unlock(&one.mu);
  pthread_mutex_lock(&all.mu);
  CHECK(all.n == 5);
  CHECK(strcmp(all.text[0], "items/a+") == 0 && strcmp(all.text[1], "other/x+") == 0);
  CHECK(strcmp(all.text[4], "items/a-") == 0);
  pthread_mutex_unlock(&all.mu);

  /* After shoal_unwatch returns, its callback never runs again. */
  shoal_unwatch(h_one);
  CHECK(shoal_upsert(db, "items", "d", 1, w, 2, NULL, NULL, &err) == SHOAL_OK);
  CHECK(wait_for(&all, 6) == 6);
  pause_ms(300);
  CHECK(count_now(&one) == 4);

  /* A callback may end its own watch: the call that does is the last. */
  seen self;
  seen_init(&self, NULL);
  shoal_watch_handle *h_self = NULL;
  CHECK(shoal_watch(db, "items", on_changes, &self, &h_self, &err) == SHOAL_OK);
  pthread_mutex_lock(&self.mu);
  self.self = h_self;
  self.unwatch_after = 1;
  pthread_mutex_unlock(&self.mu);
  CHECK(shoal_upsert(db, "items", "e", 1, w, 2, NULL, NULL, &err) == SHOAL_OK);
  CHECK(wait_for(&self, 1) >= 1);
  pause_ms(100);
  CHECK(shoal_upsert(db, "items", "f", 1, w, 2, NULL, NULL, &err) == SHOAL_OK);
  CHECK(wait_for(&all, 8) == 8);
  pause_ms(300);
  CHECK(count_now(&self) == 1);

  /* Freshness: the same hits as shoal_search; no peers behind this node. */
  shoal_hit hits[4], hits2[4];
  size_t n1 = 0, n2 = 0;
  shoal_freshness *fresh = NULL;
  CHECK(shoal_search(db, "items", v, 2, 3, 0, NULL, hits, 4, &n1, &err) == SHOAL_OK);
  CHECK(shoal_search_freshness(db, "items", v, 2, 3, 0, NULL, hits2, 4, &n2, &fresh, &err) == SHOAL_OK);
  CHECK(n1 == 3 && n2 == n1 && strcmp(hits[0].id, hits2[0].id) == 0 && hits[0].distance == hits2[0].distance);
  CHECK(fresh != NULL && shoal_freshness_count(fresh) == 0);
  CHECK(shoal_freshness_device(fresh, 0) == NULL && shoal_freshness_since_last_delta_ms(fresh, 0) == -1);
  CHECK(shoal_freshness_up(fresh, 0) == 0 && shoal_freshness_replica(fresh, 0) == NULL);
  shoal_freshness_free(fresh);
  shoal_freshness_free(NULL);
  CHECK(shoal_freshness_count(NULL) == 0);
  /* NULL freshness: exactly shoal_search. Errors leave *freshness NULL. */
  CHECK(shoal_search_freshness(db, "items", v, 2, 3, 0, NULL, hits2, 4, &n2, NULL, &err) == SHOAL_OK && n2 == 3);
  fresh = (shoal_freshness *)&err; /* any non-NULL value */
  CHECK(shoal_search_freshness(db, "nope", v, 2, 3, 0, NULL, hits2, 4, &n2, &fresh, &err) == SHOAL_E_NOCOLLECTION);
  CHECK(fresh == NULL && strstr(err.message, "nope") != NULL);

  /* shoal_close ends the remaining watch; its handle is still freed by shoal_unwatch. */
  shoal_close(db);
  int before_close = count_now(&all);
  pause_ms(300);
  CHECK(count_now(&all) == before_close);
  CHECK(all.on_caller_thread == 0 && all.gaps == 0);
  shoal_unwatch(h_all);

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
