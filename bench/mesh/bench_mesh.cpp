// bench_mesh: the mesh on loopback through the product path, hosts as separate processes with
// their data directories on disk, enrolled with `shoal mesh init` / `shoal mesh enrol`, default
// MeshOptions and SyncOptions (issue 13, "Bench").
//
//   bench_mesh --shoal SHOAL_BIN [--work DIR] [--quick] [--only latency|throughput|reconnect]
//              [--samples3 N] [--samples10 N] [--records128 N] [--records768 N] [--per N]
//              [--writes N] [--write-batch N] [--partition-s S] [--poll-us U] [--diag-no-repair]
//   (--diag-no-repair is for diagnosis only: hosts turn SyncOptions::repair_enabled off, so the
//    figures no longer use default settings; the table says so.)
//   bench_mesh host --data DIR --certificate FILE [--peer PORT]...      (one host; internal)
//
// The same binary is the coordinator and, with `host`, one mesh host per child process: the
// product's data directory, MeshHost and links unchanged, plus a stdin/stdout control channel
// that stamps every event with the host's steady clock (CLOCK_MONOTONIC, shared by every process
// on the machine, so stamps from two hosts subtract).
//
// 1. Hot-tier propagation: one host writes a record (a durable upsert); every other host polls
//    get() and a k=1 search for it every --poll-us (100 us) and stamps when each first sees it.
//    Latency = visibility stamp - the writer's acknowledgement stamp. p50/p99 over every
//    (write, receiver) pair, for 3 hosts and 10 hosts (full mesh; the writer rotates).
//    Goal: p99 <= 20 ms for 3 hosts.
// 2. Sync throughput into a peer: host B is stopped, host A ingests N records (batches of --per),
//    B restarts and dials A; time from B's start to B holding all N (records/s, MB/s of vector
//    bytes). Anchor, in the same run and the same process: B ingests the same records locally in
//    batches of --per into a fresh data directory. Goal: sync >= 0.8x local. The channel's share:
//    seal+open cost per byte (security::Channel alone, measured here at the link's mean frame
//    size) times the bytes B's link received, over the sync time.
// 3. Reconnect-to-caught-up: A and B linked, then apart (B stopped, restarted with no peer and
//    not dialed by A) while each side makes --writes upserts (in durable batches of
//    --write-batch); the partition lasts at least --partition-s (default: as long as the writes
//    take); then B dials A: time from that heal to equal digests and live counts on both.
// Machine-readable lines start with "mesh ".
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/log.hpp"
#include "common/random.hpp"
#include "common/time.hpp"
#include "index/kernels.hpp"
#include "node/mesh/mesh_host.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/runtime/revocation_replica.hpp"
#include "security/certificate.hpp"
#include "security/channel.hpp"
#include "security/key_file.hpp"
#include "security/secret.hpp"
#include "transport/kj_loop.hpp"

using namespace shoal;

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "bench_mesh: %s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(2);
}

std::int64_t stamp() { return now_mono().ns(); }

// The vector of record `seed`: uniform in [0,1)^dim, the same in every process.
std::vector<float> vector_of(std::uint64_t seed, std::uint32_t dim) {
  Rng rng(seed * 0x9E3779B97F4A7C15ull + 0x51ED);
  std::vector<float> v(dim);
  for (auto& x : v) x = static_cast<float>(rng.next_u32() >> 8) * (1.0f / 16777216.0f);
  return v;
}

std::vector<node::RecordInput> records(const std::string& prefix, std::uint64_t first, std::uint64_t n,
                                       std::uint32_t dim) {
  std::vector<node::RecordInput> out;
  out.reserve(n);
  for (std::uint64_t i = first; i < first + n; ++i) {
    node::RecordInput r;
    r.id = prefix + std::to_string(i);
    r.value.vector = vector_of(i, dim);
    out.push_back(std::move(r));
  }
  return out;
}

// Ingests ids PREFIX<first..first+n) in durable batches of `per`.
Status ingest(node::SharedNode& db, const std::string& coll, const std::string& prefix, std::uint64_t first,
              std::uint64_t n, std::uint64_t per, std::uint32_t dim) {
  for (std::uint64_t i = first; i < first + n; i += per) {
    const std::uint64_t m = std::min(per, first + n - i);
    Status st = db.upsert_batch(coll, records(prefix, i, m, dim));
    if (!st.ok()) return st;
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Host mode: one mesh host, driven by lines on stdin; every answer is one line on stdout.
//   create NAME DIM                          -> ok
//   put NAME ID SEED                         -> ok T_ISSUE T_ACK      (one durable upsert)
//   batch NAME PREFIX FIRST N PER            -> ok T_START T_END
//   wait NAME ID SEED TIMEOUT_MS POLL_US     -> armed, then: seen T_GET T_SEARCH (0: not seen)
//   waitcount NAME N TIMEOUT_MS              -> count T_FIRST T_DONE LIVE STEPS (T_DONE 0: timed out;
//                                               STEPS: how often the live count was seen to change)
//   anchor DIR NAME DIM PREFIX FIRST N PER   -> anchor SECONDS  (a fresh data dir, no mesh)
//   state NAME                               -> state COLL LIVE ROOT UP
//   linkstats                                -> linkstats BYTES_IN BYTES_OUT MSGS_IN MSGS_OUT BATCHES_IN_REPAIRS
//   peer PORT                                -> ok T        (dials 127.0.0.1:PORT)
//   quit
// ---------------------------------------------------------------------------------------------

std::mutex say_mu;
void say(const std::string& line) {
  std::lock_guard lock(say_mu);
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

int host_main(int argc, char** argv) {
  std::int64_t t_start = 0;
  std::string data, cert_path;
  bool no_repair = false;
  std::vector<node::MeshPeerAddress> peers;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) die(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--data") data = v;
    else if (a == "--certificate") cert_path = v;
    else if (a == "--no-repair") no_repair = v == "1";
    else if (a == "--peer") peers.push_back({"127.0.0.1", static_cast<std::uint16_t>(std::stoul(v)), node::Tier::kHot});
    else die("host: unknown option " + a);
  }
  auto identity = security::load_or_create_identity(data);
  if (!identity.ok()) die(identity.status().to_string());
  std::ifstream f(cert_path, std::ios::binary);
  std::vector<std::uint8_t> cert_bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto cert = security::decode_certificate(cert_bytes);
  if (!cert.ok()) die(cert.status().with_context(cert_path).to_string());
  security::TrustAnchor anchor;
  anchor.mesh_id = cert->mesh_id;
  anchor.authorities = {cert->issuer_key};

  Logger logger(LogLevel::kWarn);
  node::RevocationReplica revocations(anchor);
  node::DataDirOptions dopts;
  dopts.node.revocations = &revocations;
  dopts.node.logger = &logger;
  if (no_repair) dopts.node.sync.repair_enabled = false;  // diagnosis only (--diag-no-repair)
  auto dir = node::open_data_dir(data, std::move(dopts));
  if (!dir.ok()) die(dir.status().to_string());
  node::SharedNode& db = (*dir)->node();

  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  transport::KjLoop loop(io);
  // The stamp the sync-throughput window starts at: the data directory is open, the mesh (and
  // its dials) start now.
  t_start = stamp();
  node::MeshOptions mo;  // defaults, but for the peers to dial
  mo.peers = peers;
  node::MeshCredentials creds;
  creds.identity = &*identity;
  creds.certificate = cert_bytes;
  creds.anchor = anchor;
  auto mesh = node::MeshHost::start(loop, db, revocations, std::move(creds), mo, &logger);
  if (!mesh.ok()) die(mesh.status().to_string());
  say("ready port=" + std::to_string((*mesh)->port()) + " t=" + std::to_string(t_start));

  std::atomic<bool> quitting{false};
  auto quit = [&] {
    if (quitting.exchange(true)) return;
    loop.post([&] {
      (*mesh)->stop();
      guard.reset();
      io.stop();
    });
  };
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) quit();
  });

  std::thread reader([&] {
    std::string line;
    while (!quitting && std::getline(std::cin, line)) {
      std::istringstream in(line);
      std::string cmd, name;
      in >> cmd >> name;
      auto fail = [&](const Status& st) { say("err " + st.to_string()); };
      if (cmd == "quit") break;
      if (cmd == "create") {
        std::uint32_t dim = 0;
        in >> dim;
        node::CollectionSpec spec;
        spec.name = name;
        spec.dimension = dim;
        Status st = db.create_collection(spec);
        st.ok() ? say("ok") : fail(st);
      } else if (cmd == "put") {
        std::string id;
        std::uint64_t seed = 0;
        in >> id >> seed;
        auto info = db.collection_info(name);
        if (!info.ok()) { fail(info.status()); continue; }
        node::RecordValue v;
        v.vector = vector_of(seed, info->spec.dimension);
        const std::int64_t t0 = stamp();
        Status st = db.upsert(name, id, std::move(v));
        const std::int64_t t1 = stamp();
        st.ok() ? say("ok " + std::to_string(t0) + " " + std::to_string(t1)) : fail(st);
      } else if (cmd == "batch") {
        std::string prefix;
        std::uint64_t first = 0, n = 0, per = 0;
        in >> prefix >> first >> n >> per;
        auto info = db.collection_info(name);
        if (!info.ok()) { fail(info.status()); continue; }
        const std::int64_t t0 = stamp();
        Status st = ingest(db, name, prefix, first, n, std::max<std::uint64_t>(per, 1), info->spec.dimension);
        const std::int64_t t1 = stamp();
        st.ok() ? say("ok " + std::to_string(t0) + " " + std::to_string(t1)) : fail(st);
      } else if (cmd == "wait") {
        std::string id;
        std::uint64_t seed = 0, timeout_ms = 0, poll_us = 100;
        in >> id >> seed >> timeout_ms >> poll_us;
        auto info = db.collection_info(name);
        if (!info.ok()) { fail(info.status()); continue; }
        const auto q = vector_of(seed, info->spec.dimension);
        node::SearchOptions so;
        so.k = 1;
        so.with_metadata = false;
        say("armed");
        const std::int64_t deadline = stamp() + static_cast<std::int64_t>(timeout_ms) * 1'000'000;
        std::int64_t t_get = 0, t_search = 0;
        while (stamp() < deadline) {
          if (t_get == 0 && db.get(name, id).ok()) t_get = stamp();
          if (t_search == 0) {
            auto hits = db.search(name, q, so);
            if (hits.ok() && !hits->empty() && hits->front().id == id) t_search = stamp();
          }
          if (t_get != 0 && t_search != 0) break;
          std::this_thread::sleep_for(std::chrono::microseconds(poll_us));
        }
        say("seen " + std::to_string(t_get) + " " + std::to_string(t_search));
      } else if (cmd == "waitcount") {
        std::uint64_t n = 0, timeout_ms = 0;
        in >> n >> timeout_ms;
        const std::int64_t deadline = stamp() + static_cast<std::int64_t>(timeout_ms) * 1'000'000;
        std::int64_t t_first = 0, t_done = 0;
        std::uint64_t live = 0, steps = 0;
        while (stamp() < deadline) {
          auto info = db.collection_info(name);
          const std::uint64_t was = live;
          live = info.ok() ? info->live_records : 0;
          steps += live != was ? 1 : 0;
          if (live > 0 && t_first == 0) t_first = stamp();
          if (live >= n) {
            t_done = stamp();
            break;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        say("count " + std::to_string(t_first) + " " + std::to_string(t_done) + " " + std::to_string(live) + " " + std::to_string(steps));
      } else if (cmd == "anchor") {
        std::string adir, coll, prefix;
        std::uint32_t dim = 0;
        std::uint64_t first = 0, n = 0, per = 0;
        adir = name;
        in >> coll >> dim >> prefix >> first >> n >> per;
        std::filesystem::remove_all(adir);
        double seconds = 0;
        Status st;
        {
          node::RevocationReplica arev(anchor);
          node::DataDirOptions ao;
          ao.node.revocations = &arev;
          ao.node.logger = &logger;
          auto adb = node::open_data_dir(adir, std::move(ao));
          if (!adb.ok()) { fail(adb.status()); continue; }
          node::CollectionSpec spec;
          spec.name = coll;
          spec.dimension = dim;
          st = (*adb)->node().create_collection(spec);
          const MonoTime t0 = now_mono();
          if (st.ok()) st = ingest((*adb)->node(), coll, prefix, first, n, std::max<std::uint64_t>(per, 1), dim);
          seconds = (now_mono() - t0).seconds_f();
        }
        std::filesystem::remove_all(adir);
        char buf[64];
        std::snprintf(buf, sizeof buf, "anchor %.6f", seconds);
        st.ok() ? say(buf) : fail(st);
      } else if (cmd == "state") {
        loop.post([&, name] {
          auto info = db.collection_info(name);
          auto root = db.digest_root(name);
          std::size_t up = 0;
          for (const auto& p : (*mesh)->peers()) up += p.up ? 1 : 0;
          say("state " + std::string(info.ok() ? "1" : "0") + " " + std::to_string(info.ok() ? info->live_records : 0) +
              " " + std::to_string(root.ok() ? *root : 0) + " " + std::to_string(up));
        });
      } else if (cmd == "linkstats") {
        loop.post([&] {
          transport::LinkStats s;
          for (const auto& p : (*mesh)->peers()) {
            s.bytes_in += p.bytes.bytes_in;
            s.bytes_out += p.bytes.bytes_out;
            s.messages_in += p.bytes.messages_in;
            s.messages_out += p.bytes.messages_out;
          }
          const node::SyncStats ss = db.sync_stats();
          say("linkstats " + std::to_string(s.bytes_in) + " " + std::to_string(s.bytes_out) + " " +
              std::to_string(s.messages_in) + " " + std::to_string(s.messages_out) + " " +
              std::to_string(ss.delta_batches_sent) + " " + std::to_string(ss.repair_sessions_completed) + " " +
              std::to_string(ss.buckets_repaired) + " " + std::to_string(ss.repair_bytes_received));
        });
      } else if (cmd == "peer") {
        const unsigned port = static_cast<unsigned>(std::stoul(name));
        const std::int64_t t = stamp();
        loop.post([&, port] { (*mesh)->add_peer({"127.0.0.1", static_cast<std::uint16_t>(port), node::Tier::kHot}); });
        say("ok " + std::to_string(t));
      } else if (!cmd.empty()) {
        say("err unknown command " + cmd);
      }
    }
    quit();
  });
  io.run();
  mesh->reset();
  reader.detach();
  dir->reset();
  std::fflush(stdout);
  std::_Exit(0);
}

// ---------------------------------------------------------------------------------------------
// Coordinator.
// ---------------------------------------------------------------------------------------------

std::string self_exe;
std::string shoal_bin;
std::string work;
bool diag_no_repair = false;  // --diag-no-repair: hosts run with SyncOptions::repair_enabled off

void run(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1);
    std::vector<char*> av;
    for (const auto& a : args) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    execv(av[0], av.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    die("command failed: " + cmd);
  }
}

class Host {
 public:
  Host(std::string name, const std::string& mesh_dir) : name_(std::move(name)) {
    data_ = work + "/" + name_;
    std::filesystem::create_directories(data_);
    auto id = security::load_or_create_identity(data_);
    if (!id.ok()) die(id.status().to_string());
    cert_ = data_ + "/device.cert";
    run({shoal_bin, "mesh", "enrol", "--mesh", mesh_dir, "--device-key-file", data_ + "/identity.key", "--role",
         "member", "--grant", "*:rw", "--days", "30", "--out", cert_});
  }
  ~Host() { quit(); }

  void start(const std::vector<std::uint16_t>& peers) {
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) die("pipe failed");
    std::vector<std::string> args = {self_exe, "host", "--data", data_, "--certificate", cert_, "--no-repair",
                                     diag_no_repair ? "1" : "0"};
    for (auto p : peers) {
      args.push_back("--peer");
      args.push_back(std::to_string(p));
    }
    spawned_ = stamp();
    pid_ = fork();
    if (pid_ < 0) die("fork failed");
    if (pid_ == 0) {
      dup2(to_child[0], 0);
      dup2(from_child[1], 1);
      std::vector<char*> av;
      for (const auto& a : args) av.push_back(const_cast<char*>(a.c_str()));
      av.push_back(nullptr);
      execv(av[0], av.data());
      _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    in_ = fdopen(to_child[1], "w");
    out_ = fdopen(from_child[0], "r");
    auto r = read();
    std::istringstream s(r);
    std::string word, port, t;
    s >> word >> port >> t;
    if (word != "ready") die(name_ + " did not start: " + r);
    port_ = static_cast<std::uint16_t>(std::stoul(port.substr(5)));
    started_ = std::stoll(t.substr(2));
  }

  void send(const std::string& line) {
    std::fputs((line + "\n").c_str(), in_);
    std::fflush(in_);
  }
  std::string read() {
    char* buf = nullptr;
    std::size_t cap = 0;
    const ssize_t n = getline(&buf, &cap, out_);
    std::string line = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    std::free(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty()) die(name_ + ": no answer (the host exited?)");
    if (line.rfind("err", 0) == 0) die(name_ + ": " + line);
    return line;
  }
  std::string ask(const std::string& line) {
    send(line);
    return read();
  }
  // The numbers after the answer's first word.
  std::vector<std::int64_t> ask_numbers(const std::string& line) {
    std::istringstream s(ask(line));
    std::string word;
    s >> word;
    std::vector<std::int64_t> v;
    std::int64_t x;
    while (s >> x) v.push_back(x);
    return v;
  }
  struct State {
    bool coll = false;
    std::uint64_t live = 0, root = 0;
    int up = 0;
  };
  State state(const std::string& coll) {
    std::istringstream s(ask("state " + coll));
    std::string word;
    int c = 0;
    State st;
    s >> word >> c >> st.live >> st.root >> st.up;
    st.coll = c == 1;
    return st;
  }
  void quit() {
    if (pid_ <= 0) return;
    send("quit");
    int status = 0;
    waitpid(pid_, &status, 0);
    std::fclose(in_);
    std::fclose(out_);
    pid_ = -1;
  }

  std::uint16_t port() const { return port_; }
  std::int64_t started() const { return started_; }
  std::int64_t spawned() const { return spawned_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_, data_, cert_;
  pid_t pid_ = -1;
  FILE* in_ = nullptr;
  FILE* out_ = nullptr;
  std::uint16_t port_ = 0;
  std::int64_t started_ = 0, spawned_ = 0;
};

template <typename F>
void wait_until(const std::string& what, F&& cond, double give_up_s = 120) {
  const MonoTime t0 = now_mono();
  while (!cond()) {
    if ((now_mono() - t0).seconds_f() > give_up_s) die("gave up waiting for " + what);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(rank);
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

std::string new_mesh(const std::string& tag) {
  const std::string dir = work + "/" + tag;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  run({shoal_bin, "mesh", "init", "--dir", dir + "/mesh"});
  return dir + "/mesh";
}

// ---- 1. propagation ------------------------------------------------------------------------

struct Propagation {
  int hosts = 0;
  std::size_t samples = 0, missed = 0;
  double get_p50 = 0, get_p99 = 0, search_p50 = 0, search_p99 = 0, all_p99 = 0, max = 0;
};

Propagation propagation(int n, int writes, int poll_us) {
  const std::string tag = "prop" + std::to_string(n);
  const std::string mesh = new_mesh(tag);
  std::vector<std::unique_ptr<Host>> hosts;
  for (int i = 0; i < n; ++i) {
    hosts.push_back(std::make_unique<Host>(tag + "/h" + std::to_string(i), mesh));
    std::vector<std::uint16_t> peers;
    for (int j = 0; j < i; ++j) peers.push_back(hosts[j]->port());
    hosts.back()->start(peers);
  }
  wait_until("a full mesh", [&] {
    for (auto& h : hosts)
      if (h->state("none").up != n - 1) return false;
    return true;
  });
  hosts[0]->ask("create lat 128");
  wait_until("the collection everywhere", [&] {
    for (auto& h : hosts)
      if (!h->state("lat").coll) return false;
    return true;
  });
  Propagation r;
  r.hosts = n;
  std::vector<double> get_ms, search_ms, last_ms;
  for (int w = 0; w < writes; ++w) {
    Host& writer = *hosts[static_cast<std::size_t>(w % n)];
    const std::string id = "w" + std::to_string(w);
    const std::string seed = std::to_string(1'000'000 + w);
    for (auto& h : hosts)
      if (h.get() != &writer) h->send("wait lat " + id + " " + seed + " 5000 " + std::to_string(poll_us));
    for (auto& h : hosts)
      if (h.get() != &writer) h->read();  // armed
    auto ack = writer.ask_numbers("put lat " + id + " " + seed);
    const std::int64_t t_ack = ack.at(1);
    double worst = 0;
    for (auto& h : hosts) {
      if (h.get() == &writer) continue;
      std::istringstream s(h->read());
      std::string word;
      std::int64_t tg = 0, ts = 0;
      s >> word >> tg >> ts;
      ++r.samples;
      if (tg == 0 || ts == 0) {
        ++r.missed;
        continue;
      }
      get_ms.push_back(static_cast<double>(tg - t_ack) / 1e6);
      search_ms.push_back(static_cast<double>(ts - t_ack) / 1e6);
      worst = std::max(worst, static_cast<double>(ts - t_ack) / 1e6);
    }
    last_ms.push_back(worst);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  r.get_p50 = pct(get_ms, 50);
  r.get_p99 = pct(get_ms, 99);
  r.search_p50 = pct(search_ms, 50);
  r.search_p99 = pct(search_ms, 99);
  r.all_p99 = pct(last_ms, 99);
  r.max = search_ms.empty() ? 0 : *std::max_element(search_ms.begin(), search_ms.end());
  for (auto& h : hosts) h->quit();
  return r;
}

// ---- 2. throughput ---------------------------------------------------------------------------

// Channel::seal + Channel::open_frame, ns per payload byte, at `payload` bytes per frame.
double channel_ns_per_byte(std::size_t payload, std::size_t total) {
  const std::size_t frames = std::max<std::size_t>(4, total / payload);
  std::vector<std::uint8_t> data(payload, 0x5a);
  std::array<std::uint8_t, 32> key{};
  key.fill(7);
  double best = 1e18;
  for (int rep = 0; rep < 3; ++rep) {
    security::noise::TransportKeys ka, kb;
    ka.send.initialize_key(key);
    kb.receive.initialize_key(key);
    security::ChannelLimits limits;
    limits.max_payload_bytes = std::max(limits.max_payload_bytes, payload);
    security::Channel a(std::move(ka), limits, MonoTime());
    security::Channel b(std::move(kb), limits, MonoTime());
    std::vector<std::uint8_t> buf;
    buf.reserve(payload + security::kFrameOverheadBytes);
    const MonoTime t0 = now_mono();
    for (std::size_t i = 0; i < frames; ++i) {
      buf.clear();
      if (!a.seal(data, MonoTime(), buf).ok()) die("seal failed");
      auto opened = b.open_frame(buf);
      if (!opened.ok()) die("open failed");
    }
    best = std::min(best, static_cast<double>((now_mono() - t0).ns()) / static_cast<double>(frames * payload));
  }
  return best;
}

struct Throughput {
  std::uint32_t dim = 0;
  std::uint64_t records = 0;
  double sync_s = 0, local_s = 0, a_ingest_s = 0, first_ms = 0;
  std::int64_t steps = 0;
  double bytes_in = 0, frames_in = 0, channel_ns_per_byte = 0, channel_share = 0;
  std::int64_t delta_batches = 0, repairs = 0, buckets = 0;
  double vector_mb() const { return static_cast<double>(records) * dim * 4 / 1e6; }
};

Throughput throughput_round(Host& a, Host& b, std::uint32_t dim, std::uint64_t n, std::uint64_t per) {
  Throughput t;
  t.dim = dim;
  t.records = n;
  const std::string coll = "t" + std::to_string(dim);
  a.ask("create " + coll + " " + std::to_string(dim));
  wait_until("B has " + coll, [&] { return b.state(coll).coll; });
  // The anchor: the same records into a fresh data directory in B's process, no mesh involved.
  t.local_s = std::stod(b.ask("anchor " + work + "/tput/anchor " + coll + " " + std::to_string(dim) + " r 0 " +
                              std::to_string(n) + " " + std::to_string(per))
                            .substr(7));
  b.quit();
  auto ing = a.ask_numbers("batch " + coll + " r 0 " + std::to_string(n) + " " + std::to_string(per));
  t.a_ingest_s = static_cast<double>(ing.at(1) - ing.at(0)) / 1e9;
  b.start({a.port()});
  auto c = b.ask_numbers("waitcount " + coll + " " + std::to_string(n) + " 600000");
  if (c.at(1) == 0) die("B did not receive all records of " + coll);
  t.sync_s = static_cast<double>(c.at(1) - b.started()) / 1e9;
  t.first_ms = static_cast<double>(c.at(0) - b.started()) / 1e6;
  t.steps = c.at(3);
  auto ls = b.ask_numbers("linkstats");
  t.bytes_in = static_cast<double>(ls.at(0));
  t.frames_in = static_cast<double>(ls.at(2));
  auto la = a.ask_numbers("linkstats");
  t.delta_batches = la.at(4);
  t.repairs = ls.at(5);
  t.buckets = ls.at(6);
  const std::size_t mean_frame = static_cast<std::size_t>(t.bytes_in / std::max(1.0, t.frames_in));
  t.channel_ns_per_byte = channel_ns_per_byte(std::max<std::size_t>(mean_frame, 64), std::size_t{64} << 20);
  t.channel_share = t.bytes_in * t.channel_ns_per_byte / 1e9 / t.sync_s;
  return t;
}

// ---- 3. reconnect ----------------------------------------------------------------------------

struct Reconnect {
  std::uint64_t writes = 0;
  double apart_s = 0, caught_up_s = 0, a_writes_s = 0, b_writes_s = 0;
};

Reconnect reconnect(std::uint64_t writes, std::uint64_t batch, double partition_s) {
  const std::string mesh = new_mesh("reconnect");
  Host a("reconnect/a", mesh), b("reconnect/b", mesh);
  a.start({});
  b.start({a.port()});
  wait_until("A and B linked", [&] { return a.state("none").up == 1 && b.state("none").up == 1; });
  a.ask("create r 128");
  a.ask("batch r base 0 1000 100");
  wait_until("B has the first 1,000", [&] { return b.state("r").live == 1000; });
  Reconnect r;
  r.writes = writes;
  // Apart: B stops, restarts with no peer (A never dialed B, so nothing redials it).
  const MonoTime apart = now_mono();
  b.quit();
  auto wa = a.ask_numbers("batch r a 100000 " + std::to_string(writes) + " " + std::to_string(batch));
  r.a_writes_s = static_cast<double>(wa.at(1) - wa.at(0)) / 1e9;
  b.start({});
  auto wb = b.ask_numbers("batch r b 200000 " + std::to_string(writes) + " " + std::to_string(batch));
  r.b_writes_s = static_cast<double>(wb.at(1) - wb.at(0)) / 1e9;
  if (a.state("none").up != 0 || b.state("none").up != 0) die("the partition leaked: a link is up");
  while ((now_mono() - apart).seconds_f() < partition_s) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  r.apart_s = (now_mono() - apart).seconds_f();
  // Heal: B dials A.
  const std::uint64_t expect = 1000 + 2 * writes;
  auto heal = b.ask_numbers("peer " + std::to_string(a.port()));
  wait_until(
      "digest equality",
      [&] {
        auto sa = a.state("r");
        auto sb = b.state("r");
        return sa.live == expect && sb.live == expect && sa.root == sb.root;
      },
      600);
  r.caught_up_s = static_cast<double>(stamp() - heal.at(0)) / 1e9;
  a.quit();
  b.quit();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "host") return host_main(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  if (!security::sodium_ready()) die("libsodium failed to initialise");
  self_exe = std::filesystem::canonical("/proc/self/exe").string();
  work = "bench-mesh-work";
  std::string only;
  bool quick = false;
  int samples3 = 300, samples10 = 100, poll_us = 100;
  std::uint64_t rec128 = 10000, rec768 = 3000, per = 1000, writes = 10000, write_batch = 100;
  double partition_s = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--shoal") shoal_bin = next();
    else if (a == "--work") work = next();
    else if (a == "--quick") quick = true;
    else if (a == "--only") only = next();
    else if (a == "--samples3") samples3 = std::stoi(next());
    else if (a == "--samples10") samples10 = std::stoi(next());
    else if (a == "--poll-us") poll_us = std::stoi(next());
    else if (a == "--records128") rec128 = std::stoull(next());
    else if (a == "--records768") rec768 = std::stoull(next());
    else if (a == "--per") per = std::stoull(next());
    else if (a == "--writes") writes = std::stoull(next());
    else if (a == "--write-batch") write_batch = std::stoull(next());
    else if (a == "--partition-s") partition_s = std::stod(next());
    else if (a == "--diag-no-repair") diag_no_repair = true;
    else {
      std::fprintf(stderr, "usage: bench_mesh --shoal SHOAL_BIN [--work DIR] [--quick] [--only latency|throughput|reconnect] ...\n");
      return 2;
    }
  }
  if (shoal_bin.empty()) die("give --shoal PATH (the shoal CLI, for mesh init/enrol)");
  shoal_bin = std::filesystem::canonical(shoal_bin).string();
  if (quick) {
    samples3 = std::min(samples3, 100);
    samples10 = std::min(samples10, 30);
    rec128 = std::min<std::uint64_t>(rec128, 5000);
    rec768 = std::min<std::uint64_t>(rec768, 1000);
    writes = std::min<std::uint64_t>(writes, 2000);
  }
  std::filesystem::remove_all(work);
  std::filesystem::create_directories(work);
  work = std::filesystem::canonical(work).string();
  const std::string isa(index::isa_name(index::best_kernels().isa));
  std::printf("bench_mesh: hosts as separate processes on loopback, data dirs under %s, %s; kernels %s; "
              "%u cores online\n",
              work.c_str(), diag_no_repair ? "DIAGNOSIS: digest repair OFF" : "default mesh/sync settings",
              isa.c_str(), std::thread::hardware_concurrency());
  std::fflush(stdout);

  std::vector<Propagation> props;
  std::vector<Throughput> tputs;
  std::optional<Reconnect> rec;
  const MonoTime t_all = now_mono();
  if (only.empty() || only == "latency") {
    for (int n : {3, 10}) {
      props.push_back(propagation(n, n == 3 ? samples3 : samples10, poll_us));
      const auto& p = props.back();
      std::printf("mesh propagation hosts=%d samples=%zu missed=%zu get_p50_ms=%.3f get_p99_ms=%.3f "
                  "search_p50_ms=%.3f search_p99_ms=%.3f all_receivers_p99_ms=%.3f max_ms=%.3f\n",
                  p.hosts, p.samples, p.missed, p.get_p50, p.get_p99, p.search_p50, p.search_p99, p.all_p99, p.max);
      std::fflush(stdout);
    }
  }
  if (only.empty() || only == "throughput") {
    const std::string mesh = new_mesh("tput");
    Host a("tput/a", mesh), b("tput/b", mesh);
    a.start({});
    b.start({a.port()});
    wait_until("A and B linked", [&] { return a.state("none").up == 1 && b.state("none").up == 1; });
    for (auto [dim, n] : {std::pair<std::uint32_t, std::uint64_t>{128, rec128}, {768, rec768}}) {
      tputs.push_back(throughput_round(a, b, dim, n, per));
      const auto& t = tputs.back();
      std::printf("mesh throughput dim=%u records=%llu sync_s=%.3f local_s=%.3f sync_rps=%.0f local_rps=%.0f "
                  "ratio=%.2f sync_MBps=%.1f first_record_ms=%.1f link_bytes_in=%.0f frames_in=%.0f "
                  "channel_ns_per_byte=%.3f channel_share=%.3f a_delta_batches=%lld b_repairs=%lld b_buckets=%lld "
                  "a_ingest_s=%.3f count_steps=%lld\n",
                  t.dim, static_cast<unsigned long long>(t.records), t.sync_s, t.local_s,
                  static_cast<double>(t.records) / t.sync_s, static_cast<double>(t.records) / t.local_s,
                  t.local_s / t.sync_s, t.vector_mb() / t.sync_s, t.first_ms, t.bytes_in, t.frames_in,
                  t.channel_ns_per_byte, t.channel_share, static_cast<long long>(t.delta_batches),
                  static_cast<long long>(t.repairs), static_cast<long long>(t.buckets), t.a_ingest_s, static_cast<long long>(t.steps));
      std::fflush(stdout);
    }
  }
  if (only.empty() || only == "reconnect") {
    rec = reconnect(writes, write_batch, partition_s);
    std::printf("mesh reconnect writes_per_side=%llu write_batch=%llu apart_s=%.2f a_writes_s=%.2f b_writes_s=%.2f "
                "caught_up_s=%.3f\n",
                static_cast<unsigned long long>(rec->writes), static_cast<unsigned long long>(write_batch), rec->apart_s,
                rec->a_writes_s, rec->b_writes_s, rec->caught_up_s);
    std::fflush(stdout);
  }

  std::printf("\n== Shoal mesh on loopback (kernels %s; %u cores shared, absolute figures noisy, ratios from one run)\n",
              isa.c_str(), std::thread::hardware_concurrency());
  std::printf("%-44s %-30s %s\n", "measure", "figure", "goal");
  char fig[128];
  for (const auto& p : props) {
    std::snprintf(fig, sizeof fig, "p50 %.2f ms, p99 %.2f ms", p.search_p50, p.search_p99);
    std::printf("%-44s %-30s %s\n", ("propagation to search, " + std::to_string(p.hosts) + " hosts").c_str(), fig,
                p.hosts == 3 ? (p.search_p99 <= 20 ? "p99 <= 20 ms: met" : "p99 <= 20 ms: MISSED") : "(reported)");
    std::snprintf(fig, sizeof fig, "p50 %.2f ms, p99 %.2f ms", p.get_p50, p.get_p99);
    std::printf("%-44s %-30s\n", ("propagation to get, " + std::to_string(p.hosts) + " hosts").c_str(), fig);
    std::snprintf(fig, sizeof fig, "p99 %.2f ms (%zu/%zu seen)", p.all_p99, p.samples - p.missed, p.samples);
    std::printf("%-44s %-30s\n", ("  slowest receiver per write, " + std::to_string(p.hosts) + " hosts").c_str(), fig);
  }
  for (const auto& t : tputs) {
    std::snprintf(fig, sizeof fig, "%.0f rec/s, %.1f MB/s", static_cast<double>(t.records) / t.sync_s,
                  t.vector_mb() / t.sync_s);
    std::printf("%-44s %-30s\n", ("sync into a peer, " + std::to_string(t.dim) + "-d x " + std::to_string(t.records)).c_str(),
                fig);
    std::snprintf(fig, sizeof fig, "%.0f rec/s, %.1f MB/s", static_cast<double>(t.records) / t.local_s,
                  t.vector_mb() / t.local_s);
    std::printf("%-44s %-30s\n", ("  local batched ingest on that peer (" + std::to_string(per) + "/batch)").c_str(), fig);
    std::snprintf(fig, sizeof fig, "%.2fx", t.local_s / t.sync_s);
    std::printf("%-44s %-30s %s\n", "  ratio sync/local", fig, t.local_s / t.sync_s >= 0.8 ? ">= 0.8x: met" : ">= 0.8x: MISSED");
    std::snprintf(fig, sizeof fig, "%.1f%% (%.2f ns/B x %.1f MB)", 100 * t.channel_share, t.channel_ns_per_byte,
                  t.bytes_in / 1e6);
    std::printf("%-44s %-30s\n", "  channel (seal+open) share of sync time", fig);
  }
  if (rec) {
    std::snprintf(fig, sizeof fig, "%.2f s", rec->caught_up_s);
    std::printf("%-44s %-30s %s\n",
                ("reconnect-to-caught-up, " + std::to_string(rec->writes) + " writes/side").c_str(), fig,
                ("(apart " + std::to_string(static_cast<int>(rec->apart_s + 0.5)) + " s)").c_str());
  }
  std::printf("total %.0f s\n", (now_mono() - t_all).seconds_f());
  std::filesystem::remove_all(work);
  return 0;
}
