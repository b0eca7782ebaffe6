/* bench/client/bench_client.c: client mode against embedded mode, through the C API (shoal.h)
 * with default settings, on the same data in the same run (issue 14).
 *
 * Embedded: shoal_open on a fresh directory. Client: shoal_connect to the daemon this program
 * starts as SERVER DIR SOCKET (it prints "ready" and stops when its stdin closes) on another fresh
 * directory: bench/client/shoald_server.sh, a real shoald with default API settings (what
 * scripts/bench-client.sh runs), or tests/capi/shoal_test_server (the daemon's LocalApi, no mesh). Both get the same Fashion-MNIST subset
 * (train images, --n of them, 784-d floats) by shoal_upsert_batch in batches of 500; then:
 * - write throughput: records per second of those batches (client / embedded);
 * - QPS at ef=16, k=10: 4 threads on --q test images each (embedded: one shared handle, as an app
 *   would; client: each thread its own shoal_connect handle, as four apps would);
 * - the added latency per call: one thread, p50 and p99 of single searches;
 * - the transport's anchor: bare Unix-socket round trips of the same sizes, 4 pairs at once, and
 *   the client-mode QPS they allow when the CPU is the limit (search plus one round trip); once
 *   with both ends in this process, once with the serving ends in a child process (as a daemon).
 * Prints one line per figure and the ratios; the goal is client/embedded QPS >= 0.7.
 * Usage: bench_client SERVER [--n 10000] [--q 1000] [--dir /tmp/shoal-bench-client]
 *                            [--data /usr/share/datasets/fashion-mnist] */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "shoal.h"

enum { kDim = 784, kThreads = 4, kBatch = 500, kK = 10, kEf = 16 };

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Reads `count` 28x28 images from a gzip IDX file as floats in [0, 255]. */
static float *read_idx(const char *path, size_t count) {
  gzFile f = gzopen(path, "rb");
  if (f == NULL) return NULL;
  unsigned char head[16];
  if (gzread(f, head, 16) != 16 || head[2] != 0x08 || head[3] != 3) {
    gzclose(f);
    return NULL;
  }
  const size_t have = ((size_t)head[4] << 24) | ((size_t)head[5] << 16) | ((size_t)head[6] << 8) | head[7];
  if (count > have) count = have;
  unsigned char *raw = malloc(count * kDim);
  float *out = malloc(count * kDim * sizeof(float));
  if (gzread(f, raw, (unsigned)(count * kDim)) != (int)(count * kDim)) {
    free(raw);
    free(out);
    gzclose(f);
    return NULL;
  }
  for (size_t i = 0; i < count * kDim; ++i) out[i] = (float)raw[i];
  free(raw);
  gzclose(f);
  return out;
}

static int die(const char *what, const shoal_error *err) {
  fprintf(stderr, "bench_client: %s: %s\n", what, err != NULL ? err->message : "");
  exit(1);
}

/* Loads the data; returns records per second. */
static double load(shoal_db *db, const float *data, size_t n) {
  shoal_error err;
  if (shoal_collection_create(db, "fm", kDim, SHOAL_METRIC_L2, &err) != SHOAL_OK) die("create", &err);
  char idbuf[kBatch][24];
  const char *ids[kBatch];
  size_t lens[kBatch];
  const double t0 = now_s();
  for (size_t first = 0; first < n; first += kBatch) {
    const size_t count = n - first < kBatch ? n - first : kBatch;
    for (size_t j = 0; j < count; ++j) {
      snprintf(idbuf[j], sizeof idbuf[j], "img-%zu", first + j);
      ids[j] = idbuf[j];
      lens[j] = strlen(idbuf[j]);
    }
    if (shoal_upsert_batch(db, "fm", count, ids, lens, data + first * kDim, kDim, NULL, NULL, &err) != SHOAL_OK) {
      die("upsert_batch", &err);
    }
  }
  return (double)n / (now_s() - t0);
}

typedef struct job {
  shoal_db *db;
  const char *socket; /* client mode: connect a handle of its own */
  const float *queries;
  size_t q;
  double *lat; /* per-query seconds, or NULL */
  size_t hits;
} job;

static void *search_loop(void *arg) {
  job *j = arg;
  shoal_db *db = j->db;
  shoal_error err;
  if (j->socket != NULL && shoal_connect(j->socket, NULL, &db, &err) != SHOAL_OK) die("connect", &err);
  shoal_hit hits[kK];
  for (size_t i = 0; i < j->q; ++i) {
    size_t n = 0;
    const double t0 = j->lat != NULL ? now_s() : 0;
    if (shoal_search(db, "fm", j->queries + i * kDim, kDim, kK, kEf, NULL, hits, kK, &n, &err) != SHOAL_OK) {
      die("search", &err);
    }
    if (j->lat != NULL) j->lat[i] = now_s() - t0;
    j->hits += n;
  }
  if (j->socket != NULL) shoal_close(db);
  return NULL;
}

/* QPS of kThreads threads, each running all q queries. */
static double qps(shoal_db *db, const char *socket, const float *queries, size_t q) {
  pthread_t t[kThreads];
  job jobs[kThreads];
  const double t0 = now_s();
  for (int i = 0; i < kThreads; ++i) {
    jobs[i] = (job){db, socket, queries, q, NULL, 0};
    pthread_create(&t[i], NULL, search_loop, &jobs[i]);
  }
  for (int i = 0; i < kThreads; ++i) pthread_join(t[i], NULL);
  return (double)(kThreads * q) / (now_s() - t0);
}

/* The anchor for the transport: q round trips on a bare Unix stream socket pair per thread, kThreads
 * pairs at once, a request of a search's size (3,308 bytes) and an answer of its size (668), no
 * work between, blocking send/recv: what any socket RPC costs on this machine at least (two
 * syscalls and one sleep and wake-up per side). */
enum { kReqBytes = 3308, kRspBytes = 668 };
typedef struct pingpong {
  int fd;
  size_t q;
  int serve;
} pingpong;

static void *pingpong_loop(void *arg) {
  pingpong *p = arg;
  char buf[kReqBytes];
  memset(buf, 0, sizeof buf);
  for (size_t i = 0; i < p->q; ++i) {
    const size_t out = p->serve ? kRspBytes : kReqBytes, in = p->serve ? kReqBytes : kRspBytes;
    if (!p->serve && send(p->fd, buf, out, 0) != (ssize_t)out) break;
    for (size_t got = 0; got < in;) {
      const ssize_t r = recv(p->fd, buf, sizeof buf, 0);
      if (r <= 0) return NULL;
      got += (size_t)r;
    }
    if (p->serve && send(p->fd, buf, out, 0) != (ssize_t)out) break;
  }
  return NULL;
}

/* Round trips per second of kThreads socket pairs. In one process (threads), or, with
 * `processes`, with the serving ends in a child process, as a client and its daemon are: on a
 * guest whose address-space switches are dear (this paravirtualised one), a wake-up that crosses
 * processes costs about twice one between threads (D55). */
static double socket_floor(size_t q, int processes) {
  pthread_t t[2 * kThreads];
  pingpong p[2 * kThreads];
  int sv[kThreads][2];
  for (int i = 0; i < kThreads; ++i) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0) return 0;
  }
  pid_t child = -1;
  if (processes) {
    child = fork();
    if (child < 0) return 0;
    if (child == 0) {
      for (int i = 0; i < kThreads; ++i) {
        close(sv[i][0]);
        p[i] = (pingpong){sv[i][1], q, 1};
        pthread_create(&t[i], NULL, pingpong_loop, &p[i]);
      }
      for (int i = 0; i < kThreads; ++i) pthread_join(t[i], NULL);
      _exit(0);
    }
  }
  const double t0 = now_s();
  int n = 0;
  for (int i = 0; i < kThreads; ++i) {
    p[n] = (pingpong){sv[i][0], q, 0};
    pthread_create(&t[n], NULL, pingpong_loop, &p[n]);
    ++n;
    if (!processes) {
      p[n] = (pingpong){sv[i][1], q, 1};
      pthread_create(&t[n], NULL, pingpong_loop, &p[n]);
      ++n;
    }
  }
  for (int i = 0; i < n; ++i) pthread_join(t[i], NULL);
  const double rate = (double)(kThreads * q) / (now_s() - t0);
  for (int i = 0; i < kThreads; ++i) {
    close(sv[i][0]);
    close(sv[i][1]);
  }
  if (child > 0) waitpid(child, NULL, 0);
  return rate;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* p50 and p99 (microseconds) of single searches from one thread. */
static void latency(shoal_db *db, const float *queries, size_t q, double *p50, double *p99) {
  double *lat = malloc(q * sizeof(double));
  job j = {db, NULL, queries, q, lat, 0};
  search_loop(&j);
  qsort(lat, q, sizeof(double), cmp_double);
  *p50 = lat[q / 2] * 1e6;
  *p99 = lat[(size_t)((double)q * 0.99)] * 1e6;
  free(lat);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SERVER [--n 10000] [--q 1000] [--dir DIR] [--data DIR]\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  const char *server = argv[1];
  size_t n = 10000, q = 1000;
  const char *dir = "/tmp/shoal-bench-client", *data_dir = "/usr/share/datasets/fashion-mnist";
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--n") == 0) n = strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--q") == 0) q = strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--dir") == 0) dir = argv[i + 1];
    else if (strcmp(argv[i], "--data") == 0) data_dir = argv[i + 1];
  }
  char path[512], emb[512], cli[512], sock[128], cmd[1200];
  snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", data_dir);
  float *data = read_idx(path, n);
  snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", data_dir);
  float *queries = read_idx(path, q);
  if (data == NULL || queries == NULL) {
    fprintf(stderr, "bench_client: cannot read Fashion-MNIST from %s\n", data_dir);
    return 1;
  }
  snprintf(emb, sizeof emb, "%s/embedded", dir);
  snprintf(cli, sizeof cli, "%s/client", dir);
  snprintf(sock, sizeof sock, "/tmp/shoal-bench-%d.sock", (int)getpid());
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
  if (system(cmd) != 0) return 1;

  /* The daemon stand-in: stdin is a pipe we close to stop it; "ready" on its stdout. */
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    execl(server, server, cli, sock, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  char line[16] = {0};
  for (size_t k = 0; k < sizeof line - 1; ++k) {
    if (read(out[0], line + k, 1) != 1 || line[k] == '\n') {
      line[k] = '\0';
      break;
    }
  }
  if (strcmp(line, "ready") != 0) {
    fprintf(stderr, "bench_client: the server did not start\n");
    return 1;
  }

  shoal_error err;
  shoal_db *e = NULL, *c = NULL;
  if (shoal_open(emb, NULL, &e, &err) != SHOAL_OK) die("open", &err);
  if (shoal_connect(sock, NULL, &c, &err) != SHOAL_OK) die("connect", &err);
  printf("bench_client: Fashion-MNIST %zu x %d, %zu queries, k=%d ef=%d, %d threads/clients, default settings\n", n,
         kDim, q, kK, kEf, kThreads);
  const double we = load(e, data, n), wc = load(c, data, n);
  printf("write  embedded %10.0f records/s   client %10.0f records/s   client/embedded %.2f\n", we, wc, wc / we);
  /* One warm-up pass each, then the measured ones. */
  (void)qps(e, NULL, queries, q / 4 + 1);
  (void)qps(c, sock, queries, q / 4 + 1);
  const double qe = qps(e, NULL, queries, q), qc = qps(c, sock, queries, q);
  printf("search embedded %10.0f QPS        client %10.0f QPS        client/embedded %.2f (goal >= 0.70)\n", qe, qc,
         qc / qe);
  /* When the CPU is the limit, a call costs a search plus at least one bare round trip, so client
   * mode cannot pass 1 / (1/embedded + 1/floor) on this machine, whatever the RPC layer does. */
  const double floor_rt = socket_floor(q, 0);
  const double bound = 1.0 / (1.0 / qe + 1.0 / floor_rt);
  printf("anchor socket round trips %10.0f /s (%d pairs, no work); CPU-bound client mode at most %.0f QPS = %.2f x "
         "embedded; client reached %.2f of that\n",
         floor_rt, kThreads, bound, bound / qe, qc / bound);
  /* The same with the serving ends in another process, as the daemon is. */
  const double floor_xp = socket_floor(q, 1);
  const double bound_xp = 1.0 / (1.0 / qe + 1.0 / floor_xp);
  printf("anchor across processes %10.0f /s (%d pairs, no work); CPU-bound client mode at most %.0f QPS = %.2f x "
         "embedded; client reached %.2f of that\n",
         floor_xp, kThreads, bound_xp, bound_xp / qe, qc / bound_xp);
  double e50, e99, c50, c99;
  latency(e, queries, q, &e50, &e99);
  latency(c, queries, q, &c50, &c99);
  printf("latency one thread: embedded p50 %.1f us p99 %.1f us; client p50 %.1f us p99 %.1f us; added p50 %.1f us "
         "p99 %.1f us\n",
         e50, e99, c50, c99, c50 - e50, c99 - e99);
  printf("bench_client ratio_qps=%.2f ratio_write=%.2f added_p50_us=%.1f added_p99_us=%.1f socket_rt_per_s=%.0f "
         "bound_ratio=%.2f socket_rt_xproc_per_s=%.0f bound_ratio_xproc=%.2f\n",
         qc / qe, wc / we, c50 - e50, c99 - e99, floor_rt, bound / qe, floor_xp, bound_xp / qe);
  shoal_close(c);
  shoal_close(e);
  close(in[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  free(data);
  free(queries);
  return 0;
}
