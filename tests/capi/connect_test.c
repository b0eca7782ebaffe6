/* Proves what only client mode has (shoal_connect), against tests/capi/shoal_test_server, which
 * this test starts, kills and restarts itself:
 * - a client library that cannot be loaded ($SHOAL_CLIENT_LIBRARY pointing nowhere) fails
 *   shoal_connect with SHOAL_EUNAVAILABLE naming the library and the loader's reason, and a later
 *   shoal_connect loads the real one;
 * - nothing listening, a NULL or too long path: SHOAL_EUNAVAILABLE naming the path / SHOAL_EINVAL;
 * - four threads writing and searching on one handle at once all succeed, and every write is there;
 * - after the daemon is killed (SIGKILL) while two threads write through the handle, every call
 *   returns OK or SHOAL_EUNAVAILABLE (none hangs, none is retried), a watch hears of it once
 *   (count 0, gap 1), and calls keep failing while nothing listens;
 * - every refused call returns exactly the code and the message an embedded handle returns for
 *   it (an embedded handle on DIR-embedded runs the same calls side by side);
 * - once a daemon listens again on the same socket, the next call reconnects: every write
 *   acknowledged before the kill is there (nothing acknowledged is lost), and the watch resumes.
 * Prints "N passed, M failed". Usage: shoal_capi_connect_test SERVER DIR */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

typedef struct server {
  pid_t pid;
  int in;  /* its stdin: closing it stops the server */
} server;

/* Starts SERVER DIR SOCKET and waits for its "ready" line. */
static int start_server(server *s, const char *bin, const char *dir, const char *sock) {
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    execl(bin, bin, dir, sock, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  char line[16] = {0};
  size_t n = 0;
  while (n < sizeof line - 1) {
    ssize_t r = read(out[0], line + n, 1);
    if (r <= 0) break;
    if (line[n] == '\n') break;
    ++n;
  }
  line[n] = '\0';
  close(out[0]);
  s->pid = pid;
  s->in = in[1];
  return strcmp(line, "ready") == 0 ? 0 : -1;
}

static int stop_server(server *s) {
  close(s->in);
  int status = 0;
  waitpid(s->pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void kill_server(server *s) {
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
  close(s->in);
}

/* Four writers on one handle. */
typedef struct worker {
  shoal_db *db;
  int index;
  int failures;
} worker;

static void *work(void *arg) {
  worker *w = (worker *)arg;
  shoal_error err;
  for (int i = 0; i < 50; ++i) {
    char id[32];
    int len = snprintf(id, sizeof id, "w%d-%d", w->index, i);
    float v[4] = {(float)w->index, (float)i, 1.0f, 0.5f};
    if (shoal_upsert(w->db, "items", id, (size_t)len, v, 4, NULL, NULL, &err) != SHOAL_OK) {
      fprintf(stderr, "worker %d upsert: %s\n", w->index, err.message);
      ++w->failures;
    }
    shoal_hit hits[5];
    size_t count = 0;
    if (shoal_search(w->db, "items", v, 4, 5, 0, NULL, hits, 5, &count, &err) != SHOAL_OK || count == 0 ||
        strcmp(hits[0].id, id) != 0) {
      ++w->failures;
    }
  }
  return NULL;
}

/* Writes k<index>-0, k<index>-1, ... until a call fails; counts what was acknowledged. */
typedef struct loader {
  shoal_db *db;
  int index;
  int acked;     /* k<index>-0 .. k<index>-(acked-1) were acknowledged */
  int last_rc;   /* the failing call's code */
} loader;

static void *load(void *arg) {
  loader *l = (loader *)arg;
  shoal_error err;
  for (int i = 0; i < 1000000; ++i) {
    char id[32];
    int len = snprintf(id, sizeof id, "k%d-%d", l->index, i);
    float v[4] = {(float)i, (float)l->index, 2.0f, 3.0f};
    int rc = shoal_upsert(l->db, "items", id, (size_t)len, v, 4, NULL, NULL, &err);
    if (rc != SHOAL_OK) {
      l->last_rc = rc;
      return NULL;
    }
    l->acked = i + 1;
  }
  return NULL;
}

typedef struct seen {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int changes;
  int gap_calls;
  char last[64];
} seen;

static void on_changes(void *ctx, const shoal_change *changes, size_t count, int gap) {
  seen *s = (seen *)ctx;
  pthread_mutex_lock(&s->mu);
  if (gap && count == 0) ++s->gap_calls;
  for (size_t i = 0; i < count; ++i) {
    ++s->changes;
    snprintf(s->last, sizeof s->last, "%.*s", (int)changes[i].id_len, changes[i].id);
  }
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* Waits up to 5 s for pred(s). */
static int wait_until(seen *s, int (*pred)(seen *)) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 5;
  pthread_mutex_lock(&s->mu);
  while (!pred(s)) {
    if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) != 0) break;
  }
  int ok = pred(s);
  pthread_mutex_unlock(&s->mu);
  return ok;
}
static int saw_gap(seen *s) { return s->gap_calls >= 1; }
static int saw_after(seen *s) { return strcmp(s->last, "after") == 0; }

/* The same call on the embedded handle `e` and the client handle `c`: same code, same message. */
static shoal_error err_e, err_c;
static void same(int line, int rc_e, int rc_c) {
  ++passed;
  if (rc_e == rc_c && rc_e != SHOAL_OK && strcmp(err_e.message, err_c.message) == 0) return;
  --passed;
  ++failed;
  fprintf(stderr, "%s:%d: modes differ:\n  embedded 0x%x %s\n  client   0x%x %s\n", __FILE__, line, rc_e,
          err_e.message, rc_c, err_c.message);
}
#define SAME(call_with_db_and_err)                   \
  do {                                                \
    shoal_db *db_ = emb;                              \
    shoal_error *err_ = &err_e;                       \
    int rc_e_ = (call_with_db_and_err);               \
    db_ = cli;                                        \
    err_ = &err_c;                                    \
    int rc_c_ = (call_with_db_and_err);               \
    same(__LINE__, rc_e_, rc_c_);                     \
  } while (0)

static void compare_errors(shoal_db *emb, shoal_db *cli) {
  const float a[4] = {0, 0, 0, 0};
  float bad[4] = {1, 2, 3, 4};
  bad[2] = HUGE_VALF; /* infinity */
  char long_id[300];
  memset(long_id, 'x', sizeof long_id);
  shoal_record *rec = NULL;
  shoal_hit hits[4];
  size_t count = 0;
  uint64_t n = 0;
  shoal_collection_desc d;
  CHECK(shoal_collection_create(emb, "cmp", 4, SHOAL_METRIC_COSINE, &err_e) == SHOAL_OK);
  CHECK(shoal_collection_create(cli, "cmp", 4, SHOAL_METRIC_COSINE, &err_c) == SHOAL_OK);
  SAME(shoal_collection_create(db_, "cmp", 4, SHOAL_METRIC_COSINE, err_));
  SAME(shoal_collection_create(db_, "cmp", 5, SHOAL_METRIC_COSINE, err_));
  SAME(shoal_collection_create(db_, "bad name", 3, SHOAL_METRIC_L2, err_));
  SAME(shoal_collection_create(db_, ".hidden", 3, SHOAL_METRIC_L2, err_));
  SAME(shoal_collection_create(db_, "x", 0, SHOAL_METRIC_L2, err_));
  SAME(shoal_collection_create(db_, "x", 5000, SHOAL_METRIC_L2, err_));
  SAME(shoal_collection_create(db_, "x", 3, (shoal_metric)7, err_));
  SAME(shoal_collection_drop(db_, "nope", err_));
  SAME(shoal_collection_count(db_, "nope", &n, err_));
  SAME(shoal_collection_info(db_, "nope", &d, sizeof d, err_));
  SAME(shoal_upsert(db_, "cmp", "a", 1, a, 3, NULL, NULL, err_));
  SAME(shoal_upsert(db_, "cmp", "a", 1, bad, 4, NULL, NULL, err_));
  SAME(shoal_upsert(db_, "cmp", "a", 1, a, 4, NULL, NULL, err_)); /* zero vector under cosine */
  SAME(shoal_upsert(db_, "cmp", long_id, sizeof long_id, bad, 4, NULL, NULL, err_));
  SAME(shoal_upsert(db_, "cmp", "", 0, bad, 4, NULL, NULL, err_));
  SAME(shoal_upsert(db_, "nope", "a", 1, a, 4, NULL, NULL, err_));
  SAME(shoal_upsert(db_, "cmp", "c\xfe", 2, a, 4, NULL, NULL, err_));
  SAME(shoal_upsert(db_, "cmp", "c", 1, a, 4, NULL, "m\xed\xa0\x80", err_));
  const char *ids[3] = {"p", "q", "r"};
  size_t lens[3] = {1, 1, 1};
  float vecs[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
  vecs[9] = bad[2];
  SAME(shoal_upsert_batch(db_, "cmp", 3, ids, lens, vecs, 4, NULL, NULL, err_));
  SAME(shoal_upsert_batch(db_, "nope", 3, ids, lens, vecs, 4, NULL, NULL, err_));
  SAME(shoal_upsert_batch(db_, "cmp", 3, ids, lens, vecs, 3, NULL, NULL, err_));
  SAME(shoal_upsert_batch(db_, "cmp", 1, ids, lens, vecs, 3, NULL, NULL, err_)); /* a batch of one */
  SAME(shoal_upsert_batch(db_, "cmp", 1, ids, lens, vecs + 8, 4, NULL, NULL, err_));
  SAME(shoal_get(db_, "cmp", "zz", 2, &rec, err_));
  SAME(shoal_get(db_, "nope", "zz", 2, &rec, err_));
  SAME(shoal_get(db_, "cmp", long_id, sizeof long_id, &rec, err_));
  SAME(shoal_delete(db_, "cmp", "zz", 2, err_));
  SAME(shoal_delete(db_, "nope", "zz", 2, err_));
  const float q[4] = {1, 0, 0, 0};
  SAME(shoal_search(db_, "cmp", q, 4, 0, 0, NULL, hits, 4, &count, err_));
  SAME(shoal_search(db_, "cmp", q, 4, 8, 0, NULL, hits, 4, &count, err_));
  SAME(shoal_search(db_, "cmp", q, 3, 2, 0, NULL, hits, 4, &count, err_));
  SAME(shoal_search(db_, "cmp", a, 4, 2, 0, NULL, hits, 4, &count, err_));
  SAME(shoal_search(db_, "nope", q, 4, 2, 0, NULL, hits, 4, &count, err_));
  SAME(shoal_search(db_, "cmp", q, 4, 2, 0, "color", hits, 4, &count, err_));
  SAME(shoal_search(db_, "cmp", q, 4, 2, 0, "color=\"red", hits, 4, &count, err_));
  SAME(shoal_search(db_, "cmp", q, 4, 2, 0, "k\xff=1", hits, 4, &count, err_));
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SERVER DIR\n", argv[0]);
    return 2;
  }
  const char *bin = argv[1], *dir = argv[2];
  char tmp[] = "/tmp/shoal-connect.XXXXXX";
  if (mkdtemp(tmp) == NULL) return 1;
  char sock[128];
  snprintf(sock, sizeof sock, "%s/api.sock", tmp);
  shoal_error err;
  shoal_db *db = NULL;

  /* The client library cannot be loaded: the message names it and the loader's reason. */
  setenv("SHOAL_CLIENT_LIBRARY", "/nonexistent/libshoal_client.so.0", 1);
  CHECK(shoal_connect(sock, NULL, &db, &err) == SHOAL_EUNAVAILABLE && db == NULL);
  CHECK(strstr(err.message, "/nonexistent/libshoal_client.so.0") != NULL);
  CHECK(strstr(err.message, "No such file") != NULL);
  unsetenv("SHOAL_CLIENT_LIBRARY");

  /* Nothing listens yet; bad paths. */
  CHECK(shoal_connect(sock, NULL, &db, &err) == SHOAL_EUNAVAILABLE && db == NULL);
  CHECK(strstr(err.message, sock) != NULL);
  CHECK(shoal_connect(NULL, NULL, &db, &err) == SHOAL_EINVAL);
  char long_path[200];
  memset(long_path, 'p', sizeof long_path - 1);
  long_path[sizeof long_path - 1] = '\0';
  CHECK(shoal_connect(long_path, NULL, &db, &err) == SHOAL_EINVAL);
  CHECK(strstr(err.message, "199") != NULL);

  server srv;
  if (start_server(&srv, bin, dir, sock) != 0) {
    fprintf(stderr, "cannot start %s\n", bin);
    return 1;
  }
  CHECK(shoal_connect(sock, NULL, &db, &err) == SHOAL_OK && db != NULL);
  if (db == NULL) {
    fprintf(stderr, "connect: %s\n", err.message);
    kill_server(&srv);
    return 1;
  }
  CHECK(shoal_collection_create(db, "items", 4, SHOAL_METRIC_L2, &err) == SHOAL_OK);

  /* Refused calls: the same code and message as embedded. */
  char emb_dir[512];
  snprintf(emb_dir, sizeof emb_dir, "%s-embedded", dir);
  shoal_db *emb = NULL;
  CHECK(shoal_open(emb_dir, NULL, &emb, &err) == SHOAL_OK);
  if (emb != NULL) compare_errors(emb, db);
  shoal_close(emb);

  /* Four threads at once on one handle. */
  pthread_t threads[4];
  worker workers[4];
  for (int i = 0; i < 4; ++i) {
    workers[i].db = db;
    workers[i].index = i;
    workers[i].failures = 0;
    pthread_create(&threads[i], NULL, work, &workers[i]);
  }
  int failures = 0;
  for (int i = 0; i < 4; ++i) {
    pthread_join(threads[i], NULL);
    failures += workers[i].failures;
  }
  CHECK(failures == 0);
  uint64_t n = 0;
  CHECK(shoal_collection_count(db, "items", &n, &err) == SHOAL_OK && n == 200);

  seen s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  shoal_watch_handle *watch = NULL;
  CHECK(shoal_watch(db, "items", on_changes, &s, &watch, &err) == SHOAL_OK);

  /* The daemon dies under load: calls fail as unavailable, the watch hears of the gap once. */
  loader loaders[2];
  pthread_t load_threads[2];
  for (int i = 0; i < 2; ++i) {
    loaders[i].db = db;
    loaders[i].index = i;
    loaders[i].acked = 0;
    loaders[i].last_rc = 0;
    pthread_create(&load_threads[i], NULL, load, &loaders[i]);
  }
  struct timespec load_time = {0, 300 * 1000000L};
  nanosleep(&load_time, NULL);
  kill_server(&srv);
  for (int i = 0; i < 2; ++i) {
    pthread_join(load_threads[i], NULL);
    CHECK((loaders[i].last_rc & 0xff) == SHOAL_EUNAVAILABLE);
    CHECK(loaders[i].acked > 0);
  }
  fprintf(stderr, "acknowledged before the kill: %d and %d writes\n", loaders[0].acked, loaders[1].acked);
  const float v[4] = {9, 9, 9, 9};
  int rc = shoal_upsert(db, "items", "lost", 4, v, 4, NULL, NULL, &err);
  CHECK((rc & 0xff) == SHOAL_EUNAVAILABLE && err.code == rc);
  fprintf(stderr, "after the kill: %s\n", err.message);
  CHECK(wait_until(&s, saw_gap));
  rc = shoal_collection_count(db, "items", &n, &err);
  CHECK((rc & 0xff) == SHOAL_EUNAVAILABLE);
  CHECK(strstr(err.message, sock) != NULL);
  shoal_hit hits[2];
  size_t count = 7;
  rc = shoal_search(db, "items", v, 4, 1, 0, NULL, hits, 2, &count, &err);
  CHECK((rc & 0xff) == SHOAL_EUNAVAILABLE && count == 0);

  /* A daemon again on the same socket (the stale socket file is replaced): the next call
   * reconnects, nothing acknowledged was lost, and the watch resumes. */
  if (start_server(&srv, bin, dir, sock) != 0) {
    fprintf(stderr, "cannot restart %s\n", bin);
    return 1;
  }
  /* Every acknowledged write is there; a write whose answer was lost may be there or not. */
  uint64_t acked = (uint64_t)(loaders[0].acked + loaders[1].acked);
  CHECK(shoal_collection_count(db, "items", &n, &err) == SHOAL_OK && n >= 200 + acked && n <= 200 + acked + 2);
  int missing = 0;
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < loaders[t].acked; ++i) {
      char id[32];
      int len = snprintf(id, sizeof id, "k%d-%d", t, i);
      shoal_record *r = NULL;
      if (shoal_get(db, "items", id, (size_t)len, &r, &err) != SHOAL_OK) ++missing;
      shoal_record_free(r);
    }
  }
  CHECK(missing == 0);
  shoal_record *rec = NULL;
  CHECK(shoal_get(db, "items", "lost", 4, &rec, &err) == SHOAL_E_NORECORD);
  CHECK(shoal_get(db, "items", "w3-49", 5, &rec, &err) == SHOAL_OK && rec != NULL);
  shoal_record_free(rec);
  /* The watch re-subscribes as the connection comes back; give it a moment. */
  struct timespec t = {0, 200 * 1000000L};
  nanosleep(&t, NULL);
  CHECK(shoal_upsert(db, "items", "after", 5, v, 4, NULL, NULL, &err) == SHOAL_OK);
  CHECK(wait_until(&s, saw_after));
  pthread_mutex_lock(&s.mu);
  CHECK(s.gap_calls == 1);
  pthread_mutex_unlock(&s.mu);

  shoal_unwatch(watch);
  shoal_close(db);
  CHECK(stop_server(&srv) == 0);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmp);

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
