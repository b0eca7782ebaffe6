/* Proves, against tests/capi/shoal_test_server (the daemon's LocalApi, started by this test):
 * - the call deadline: with shoal_options_set_timeout_ms(500), a daemon stopped with SIGSTOP makes
 *   a search and a new shoal_connect return SHOAL_EUNAVAILABLE naming the deadline (never hang);
 *   after SIGCONT the same handle answers again;
 * - 1,000 local clients connecting and dropping (connect, one call, close; every 20th a child
 *   process that connects, loops on searches and is SIGKILLed mid-call) leave the daemon's open
 *   file descriptors within 8 of what they were after a 50-client warm-up, and its RSS within
 *   32 MiB of it (read from /proc/PID/status and /proc/PID/fd); the daemon still answers and
 *   reports 1 client (this test's) in shoal_stats_json. No timing is asserted: the fd count is
 *   re-read until it settles (at most 20 s, a bound on waiting for the daemon to see the hang-ups).
 * Also two helper modes for tests/capi/two_apps_cli_test.sh (no server of their own):
 *   app SOCKET COLLECTION PREFIX N   writes ids PREFIX-0..N-1 (dimension 8, batches of 10) and
 *                                    finds each batch's first record by search right after;
 *   check SOCKET COLLECTION PREFIX N [PREFIX N ...]   every listed id is there (shoal_get).
 * Prints "N passed, M failed". Usage: shoal_capi_client_scale_test scale SERVER DIR | app ... | check ... */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
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

enum { kDim = 8 };

static void vector_of(const char *id, float *v) {
  unsigned h = 2166136261u;
  for (const char *p = id; *p; ++p) h = (h ^ (unsigned char)*p) * 16777619u;
  for (int i = 0; i < kDim; ++i) {
    h = h * 1103515245u + 12345u;
    v[i] = (float)((h >> 8) % 1000) / 100.0f + (float)i;
  }
}

typedef struct server {
  pid_t pid;
  int in; /* its stdin: closing it stops the server */
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
    if (r <= 0 || line[n] == '\n') break;
    ++n;
  }
  line[n] = '\0';
  close(out[0]);
  s->pid = pid;
  s->in = in[1];
  return strcmp(line, "ready") == 0 ? 0 : -1;
}

static long rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long kib = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
  }
  fclose(f);
  return kib;
}

static int open_fds(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* 1 when every thread of pid is stopped ('T' in /proc/PID/task/TID/stat). kill(SIGSTOP) returns
 * before the stop takes effect: a thread running on the other core can still answer a call that
 * arrives right after, so the deadline check waits for the stop first (bounded). */
static int all_threads_stopped(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  if (d == NULL) return 0;
  int stopped = 1, seen = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && stopped) {
    if (e->d_name[0] == '.') continue;
    char stat_path[300], buf[512];
    snprintf(stat_path, sizeof stat_path, "/proc/%d/task/%s/stat", (int)pid, e->d_name);
    FILE *f = fopen(stat_path, "r");
    if (f == NULL) continue; /* the thread exited */
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *close_paren = strrchr(buf, ')'); /* the state follows "(comm) " */
    ++seen;
    if (close_paren == NULL || close_paren[1] != ' ' || (close_paren[2] != 'T' && close_paren[2] != 't')) stopped = 0;
  }
  closedir(d);
  return stopped && seen > 0;
}

static int connect_to(const char *sock, uint32_t timeout_ms, shoal_db **db, shoal_error *err) {
  shoal_options *o = shoal_options_new();
  shoal_options_set_timeout_ms(o, timeout_ms, NULL);
  int rc = shoal_connect(sock, o, db, err);
  shoal_options_free(o);
  return rc;
}

static int one_search(shoal_db *db, const char *coll, const char *id) {
  float q[kDim];
  vector_of(id, q);
  shoal_hit hits[4];
  size_t n = 0;
  return shoal_search(db, coll, q, kDim, 4, 16, NULL, hits, 4, &n, NULL);
}

/* A client that connects, says so on `ready`, then searches until it is killed. */
static pid_t dropping_child(const char *sock) {
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    shoal_db *db = NULL;
    if (connect_to(sock, 5000, &db, NULL) != SHOAL_OK) _exit(1);
    if (write(p[1], "r", 1) != 1) _exit(1);
    for (;;) (void)one_search(db, "c", "id-1");
  }
  close(p[1]);
  char c = 0;
  if (read(p[0], &c, 1) != 1) c = 0;
  close(p[0]);
  return c == 'r' ? pid : -1;
}

static int scale(const char *bin, const char *dir) {
  char sock[128];
  snprintf(sock, sizeof sock, "/tmp/shoal-scale-%d.sock", (int)getpid());
  unlink(sock);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) return 1;
  server s;
  if (start_server(&s, bin, dir, sock) != 0) {
    fprintf(stderr, "the test server did not start\n");
    return 1;
  }
  shoal_error err;
  shoal_db *db = NULL;
  CHECK(connect_to(sock, 500, &db, &err) == SHOAL_OK);
  CHECK(shoal_collection_create(db, "c", kDim, SHOAL_METRIC_L2, &err) == SHOAL_OK);
  for (int i = 0; i < 100; ++i) {
    char id[32];
    float v[kDim];
    snprintf(id, sizeof id, "id-%d", i);
    vector_of(id, v);
    CHECK(shoal_upsert(db, "c", id, strlen(id), v, kDim, NULL, NULL, &err) == SHOAL_OK);
  }

  /* --- The deadline: a stopped daemon makes calls fail, never hang. --- */
  kill(s.pid, SIGSTOP);
  for (int t = 0; t < 500 && !all_threads_stopped(s.pid); ++t) sleep_ms(10);
  CHECK(all_threads_stopped(s.pid));
  {
    float q[kDim];
    vector_of("id-1", q);
    shoal_hit hits[4];
    size_t n = 0;
    int rc = shoal_search(db, "c", q, kDim, 4, 16, NULL, hits, 4, &n, &err);
    CHECK(rc == SHOAL_EUNAVAILABLE);
    CHECK(strstr(err.message, "deadline of 500 ms") != NULL);
    shoal_db *other = NULL;
    rc = connect_to(sock, 500, &other, &err);
    CHECK(rc == SHOAL_EUNAVAILABLE && other == NULL);
    CHECK(strstr(err.message, "deadline of 500 ms") != NULL);
    printf("stopped daemon: %s\n", err.message);
  }
  kill(s.pid, SIGCONT);
  CHECK(one_search(db, "c", "id-1") == SHOAL_OK);

  /* --- 1,000 clients connecting and dropping. --- */
  for (int i = 0; i < 50; ++i) {
    shoal_db *c = NULL;
    if (connect_to(sock, 5000, &c, NULL) == SHOAL_OK) (void)one_search(c, "c", "id-2");
    shoal_close(c);
  }
  const long rss0 = rss_kib(s.pid);
  const int fds0 = open_fds(s.pid);
  int ok = 0, dropped = 0;
  for (int i = 0; i < 1000; ++i) {
    if (i % 20 == 19) {
      pid_t child = dropping_child(sock);
      if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        ++dropped;
      }
      continue;
    }
    shoal_db *c = NULL;
    if (connect_to(sock, 5000, &c, &err) != SHOAL_OK) {
      fprintf(stderr, "client %d: %s\n", i, err.message);
      continue;
    }
    char id[32];
    snprintf(id, sizeof id, "id-%d", i % 100);
    if (i % 2 == 0) {
      ok += one_search(c, "c", id) == SHOAL_OK;
    } else {
      shoal_record *rec = NULL;
      ok += shoal_get(c, "c", id, strlen(id), &rec, NULL) == SHOAL_OK;
      shoal_record_free(rec);
    }
    shoal_close(c);
  }
  CHECK(ok == 950);
  CHECK(dropped == 50);
  /* The daemon sees the last hang-ups asynchronously: re-read until settled (bounded). */
  int fds1 = open_fds(s.pid), one_client = 0;
  for (int t = 0; t < 200; ++t) {
    char *json = NULL;
    one_client = shoal_stats_json(db, &json, NULL) == SHOAL_OK && strstr(json, "\"clients\":1,") != NULL;
    if (t == 199 && json != NULL) fprintf(stderr, "stats: %s\n", json);
    shoal_string_free(json);
    fds1 = open_fds(s.pid);
    if (one_client && fds1 <= fds0 + 8) break;
    sleep_ms(100);
  }
  const long rss1 = rss_kib(s.pid);
  printf("daemon after 1000 clients: fds %d -> %d (margin 8), rss %ld -> %ld KiB (margin 32768)\n", fds0, fds1, rss0,
         rss1);
  CHECK(one_client);
  CHECK(fds0 > 0 && fds1 <= fds0 + 8);
#if defined(__SANITIZE_ADDRESS__)
  printf("RSS not bounded under AddressSanitizer (shadow memory and quarantine)\n");
#else
  CHECK(rss0 > 0 && rss1 <= rss0 + 32768);
#endif
  CHECK(one_search(db, "c", "id-3") == SHOAL_OK);
  shoal_close(db);
  close(s.in);
  int status = 0;
  waitpid(s.pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  unlink(sock);
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

static int app(const char *sock, const char *coll, const char *prefix, int n) {
  shoal_db *db = NULL;
  shoal_error err;
  if (connect_to(sock, 30000, &db, &err) != SHOAL_OK) {
    fprintf(stderr, "app %s: %s\n", prefix, err.message);
    return 1;
  }
  for (int first = 0; first < n; first += 10) {
    const int count = n - first < 10 ? n - first : 10;
    char idbuf[10][48];
    const char *ids[10];
    size_t lens[10];
    float vecs[10 * kDim];
    for (int j = 0; j < count; ++j) {
      snprintf(idbuf[j], sizeof idbuf[j], "%s-%d", prefix, first + j);
      ids[j] = idbuf[j];
      lens[j] = strlen(idbuf[j]);
      vector_of(idbuf[j], vecs + j * kDim);
    }
    int rc = shoal_upsert_batch(db, coll, (size_t)count, ids, lens, vecs, kDim, NULL, NULL, &err);
    CHECK(rc == SHOAL_OK);
    if (rc != SHOAL_OK) fprintf(stderr, "app %s: %s\n", prefix, err.message);
    /* Read-your-writes through the daemon: the batch's first record is its own nearest. */
    shoal_hit hits[1];
    size_t got = 0;
    rc = shoal_search(db, coll, vecs, kDim, 1, 0, NULL, hits, 1, &got, &err);
    CHECK(rc == SHOAL_OK && got == 1 && strcmp(hits[0].id, ids[0]) == 0);
  }
  shoal_close(db);
  printf("app %s: %d passed, %d failed\n", prefix, passed, failed);
  return failed == 0 ? 0 : 1;
}

static int check(const char *sock, const char *coll, int argc, char **argv) {
  shoal_db *db = NULL;
  shoal_error err;
  if (connect_to(sock, 30000, &db, &err) != SHOAL_OK) {
    fprintf(stderr, "check: %s\n", err.message);
    return 1;
  }
  for (int a = 0; a + 1 < argc; a += 2) {
    const int n = atoi(argv[a + 1]);
    int present = 0;
    for (int i = 0; i < n; ++i) {
      char id[64];
      snprintf(id, sizeof id, "%s%d", argv[a], i);
      shoal_record *rec = NULL;
      if (shoal_get(db, coll, id, strlen(id), &rec, &err) == SHOAL_OK) ++present;
      else fprintf(stderr, "check: %s: %s\n", id, err.message);
      shoal_record_free(rec);
    }
    printf("check: %s* %d of %d present\n", argv[a], present, n);
    CHECK(present == n);
  }
  shoal_close(db);
  printf("check: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 4 && strcmp(argv[1], "scale") == 0) return scale(argv[2], argv[3]);
  if (argc == 6 && strcmp(argv[1], "app") == 0) return app(argv[2], argv[3], argv[4], atoi(argv[5]));
  if (argc >= 6 && strcmp(argv[1], "check") == 0) return check(argv[2], argv[3], argc - 4, argv + 4);
  fprintf(stderr,
          "usage: %s scale SERVER DIR | app SOCKET COLLECTION PREFIX N | check SOCKET COLLECTION ID-PREFIX N ...\n",
          argv[0]);
  return 2;
}
