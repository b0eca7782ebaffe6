// node/daemon/demo_main.cpp: shoal-demo, the README's run command: three gateways, each a real
// shoald process with its own data directory, find each other, share a Fashion-MNIST subset,
// answer searches, survive a partition with writes and deletes on both sides, and heal.
//
//   shoal-demo --shoald PATH [--gateways 3] [--images 10000] [--dataset DIR] [--work DIR]
//              [--mode auto|netns|loopback]
//
// Modes: `netns` (when root and `ip netns` works): each gateway in its own network namespace on
// a bridge, discovering the others by mDNS with no configured address, and the partition is a
// veth link taken down. `loopback` otherwise (multicast never leaves a namespace the program did
// not make, so peers are configured by address): the partition is the cut-off gateway restarted
// with no peers, and the heal restarts it with them. Apps talk to each gateway over its local
// API socket (Unix sockets are files: reachable from the root namespace in both modes).
// The device certificates are issued in-process by a throwaway mesh authority.
// Ends with exactly one line:
//   demo gateways=<n> discovered=<n> converged=<yes|no> lost=<n> resurrected=<n> converge_ms=<t>
// Exit 0 when converged with nothing lost or resurrected, 1 otherwise, 2 for a usage error (an
// unknown option, a number outside its range). The gateways end with the demo, however it ends.
#include <boost/asio/io_context.hpp>

#include <capnp/message.h>
#include <signal.h>
#include <sodium.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/whole_number.hpp"
#include "node/io/datasets.hpp"
#include "security/certificate.hpp"
#include "security/key_file.hpp"
#include "transport/kj_loop.hpp"
#include "transport/link.hpp"
#include "transport/local_link.hpp"
#include "transport/node_api.capnp.h"

using namespace shoal;
namespace api = transport::api;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kCollection = "fmnist";
// The demo reads its images and 400 more (the writes on both sides of the partition) from the
// 60,000 rows of Fashion-MNIST's training file.
constexpr std::size_t kMaxImages = 60000 - 400;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

int sh(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

[[noreturn]] void die(const std::string& why) {
  std::cerr << "shoal-demo: " << why << "\n";
  std::exit(1);
}

// A usage error: exit 2.
[[noreturn]] void usage_error(const std::string& why) {
  std::cerr << "shoal-demo: " << why << "\n"
            << "usage: shoal-demo --shoald PATH [--gateways 2..8] [--images 1..59600] [--dataset DIR] [--work DIR] "
               "[--mode auto|netns|loopback]\n";
  std::exit(2);
}

// A whole number in [lo, hi] (decimal digits only), else a usage error naming the option, the
// range and the value seen (std::stoul read "-1" as 2^64 - 1, and "x" ended in std::terminate).
std::size_t whole_number(const std::string& option, const std::string& text, std::size_t lo, std::size_t hi) {
  const std::optional<std::size_t> value = parse_whole_number(std::string_view(text), lo, hi);
  if (!value) usage_error(option + " " + whole_number_refusal(lo, hi, text.substr(0, 40)));
  return *value;
}

struct Gateway {
  int index = 0;
  std::string dir, config, socket, ns, address, veth;
  std::uint16_t port = 0;
  pid_t pid = -1;
  kj::Own<transport::LocalLink> link;
  std::optional<api::Node::Client> node;
};

class Demo {
 public:
  Demo(std::string shoald, std::string work, std::string mode) : shoald_(std::move(shoald)), work_(std::move(work)), mode_(std::move(mode)), loop_(io_) {}

  ~Demo() { cleanup(); }

  void setup(int n) {
    fs::remove_all(work_);
    fs::create_directories(work_);
    auto authority = security::generate_identity();
    if (!authority.ok()) die(authority.status().to_string());
    randombytes_buf(anchor_mesh_.data(), anchor_mesh_.size());
    tag_ = std::to_string(::getpid() % 100000);
    if (mode_ == "auto") mode_ = (::geteuid() == 0 && sh("ip netns add shoal-demo-probe-" + tag_) == 0) ? "netns" : "loopback";
    sh("ip netns del shoal-demo-probe-" + tag_);
    if (mode_ == "netns") {
      bridge_ns_ = "shoal-demo-br-" + tag_;
      if (sh("ip netns add " + bridge_ns_) != 0) die("cannot create network namespaces (need root)");
      sh("ip netns exec " + bridge_ns_ + " ip link add br0 type bridge");
      sh("ip netns exec " + bridge_ns_ + " ip link set br0 up");
    }
    for (int i = 0; i < n; ++i) {
      Gateway g;
      g.index = i + 1;
      g.dir = work_ + "/gw" + std::to_string(i + 1);
      fs::create_directories(g.dir);
      auto id = security::load_or_create_identity(g.dir);
      if (!id.ok()) die(id.status().to_string());
      security::Certificate c;
      c.role = security::DeviceRole::kMember;
      c.mesh_id = anchor_mesh_;
      c.device_key = id->public_key();
      c.serial = static_cast<std::uint64_t>(i + 1);
      const std::int64_t now_s = now_wall().ns() / 1'000'000'000;
      c.not_before_s = now_s - 3600;
      c.not_after_s = now_s + 86400;
      c.grants = {{"*", security::kReadWrite}};
      auto issued = security::issue_certificate(c, *authority);
      if (!issued.ok()) die(issued.status().to_string());
      auto bytes = security::encode_certificate(*issued);
      std::ofstream(g.dir + "/device.cert", std::ios::binary).write(reinterpret_cast<const char*>(bytes->data()),
                                                                     static_cast<std::streamsize>(bytes->size()));
      g.socket = g.dir + "/shoald.sock";
      g.config = g.dir + "/shoald.toml";
      if (mode_ == "netns") {
        g.ns = "shoal-demo-" + tag_ + "-" + std::to_string(g.index);
        g.address = "10.77.0." + std::to_string(g.index);
        g.port = 7411;
        g.veth = "v" + tag_ + "g" + std::to_string(g.index);
        const std::string peer_end = "b" + tag_ + "g" + std::to_string(g.index);
        sh("ip netns add " + g.ns);
        sh("ip link add " + g.veth + " type veth peer name " + peer_end);
        sh("ip link set " + g.veth + " netns " + g.ns);
        sh("ip link set " + peer_end + " netns " + bridge_ns_);
        sh("ip netns exec " + bridge_ns_ + " ip link set " + peer_end + " master br0");
        sh("ip netns exec " + bridge_ns_ + " ip link set " + peer_end + " up");
        sh("ip netns exec " + g.ns + " ip addr add " + g.address + "/24 dev " + g.veth);
        sh("ip netns exec " + g.ns + " ip link set " + g.veth + " up");
        sh("ip netns exec " + g.ns + " ip link set lo up");
      } else {
        g.address = "127.0.0.1";
        g.port = free_loopback_port();
      }
      gateways_.push_back(std::move(g));
    }
  }

  // A port the kernel just handed out on 127.0.0.1 (bound, then released). Another process may
  // still take it before shoald binds: start() then picks another.
  static std::uint16_t free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(fd);
      die(std::string("probing a free loopback port: ") + std::strerror(errno));
    }
    ::close(fd);
    return ntohs(a.sin_port);
  }

  void write_config(Gateway& g, bool with_peers) {
    std::ostringstream t;
    t << "[node]\ndata_dir = \"" << g.dir << "\"\ncertificate = \"" << g.dir << "/device.cert\"\nlog_level = \"warn\"\n\n"
      << "[mesh]\nlisten = \"" << g.address << ":" << g.port << "\"\n";
    if (mode_ == "netns") {
      t << "discovery = true\ndiscovery_interface = \"" << g.address << "\"\n";
    } else {
      t << "discovery = false\n";
      if (with_peers) {
        for (auto& o : gateways_) {
          if (o.index != g.index) t << "\n[[mesh.peers]]\naddress = \"127.0.0.1:" << o.port << "\"\ntier = \"hot\"\n";
        }
      }
    }
    t << "\n[api]\nsocket = \"" << g.socket << "\"\n\n[metrics]\nenabled = false\n";
    std::ofstream(g.config) << t.str();
  }

  void start(Gateway& g, bool with_peers = true) {
    for (int attempt = 1;; ++attempt) {
      if (try_start(g, with_peers)) return;
      // Loopback only: the port was taken between the probe and shoald's bind. The gateways
      // started before it are dialed by it, so a new port of its own is enough.
      if (mode_ != "loopback" || attempt == 5) die("gateway " + std::to_string(g.index) + " exited; see " + g.dir + "/shoald.log");
      g.port = free_loopback_port();
    }
  }

  // False when shoald exited because its mesh port was in use; dies on any other failure.
  bool try_start(Gateway& g, bool with_peers) {
    write_config(g, with_peers);
    const std::string log = g.dir + "/shoald.log";
    const pid_t demo_pid = ::getpid();
    g.pid = ::fork();
    if (g.pid == 0) {
      // The gateway dies with the demo however the demo ends (an error, a crash, Ctrl-C or a
      // kill): before, every early exit left the gateways running, holding their data
      // directories and ports. The signal survives the exec (shoald is not set-user-ID).
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != demo_pid) _exit(127);  // the demo ended before the prctl
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      if (mode_ == "netns") {
        ::execlp("ip", "ip", "netns", "exec", g.ns.c_str(), shoald_.c_str(), "--config", g.config.c_str(), nullptr);
      } else {
        ::execl(shoald_.c_str(), shoald_.c_str(), "--config", g.config.c_str(), nullptr);
      }
      _exit(127);
    }
    const auto t0 = Clock::now();
    while (true) {
      auto p = transport::connect_local(loop_, g.socket, {});
      try {
        g.link = loop_.run_until(kj::mv(p));
        break;
      } catch (const kj::Exception&) {
        int st = 0;
        if (::waitpid(g.pid, &st, WNOHANG) == g.pid) {
          g.pid = -1;
          std::ifstream in(log);
          const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
          if (text.find("Address already in use") != std::string::npos) return false;
          die("gateway " + std::to_string(g.index) + " exited; see " + log);
        }
        if (ms_since(t0) > 30000) die("gateway " + std::to_string(g.index) + " did not open its socket; see " + log);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    g.link->serve(capnp::Capability::Client(KJ_EXCEPTION(FAILED, "the demo serves nothing")));
    g.node = g.link->peer_bootstrap().castAs<api::Node>();
    return true;
  }

  void stop(Gateway& g) {
    g.node.reset();
    g.link = nullptr;
    if (g.pid > 0) {
      ::kill(g.pid, SIGTERM);
      int st = 0;
      ::waitpid(g.pid, &st, 0);
      g.pid = -1;
    }
  }

  void cleanup() {
    for (auto& g : gateways_) stop(g);
    if (mode_ == "netns") {
      for (auto& g : gateways_) sh("ip netns del " + g.ns);
      if (!bridge_ns_.empty()) sh("ip netns del " + bridge_ns_);
    }
  }

  nlohmann::json stats(Gateway& g) {
    auto r = loop_.run_until(g.node->statsRequest().send());
    return nlohmann::json::parse(std::string(r.getJson().cStr()));
  }
  std::size_t peers_up(Gateway& g) {
    std::size_t n = 0;
    auto s = stats(g);
    if (s.contains("peers")) {
      for (auto& p : s["peers"]) n += p["up"].get<bool>() ? 1 : 0;
    }
    return n;
  }
  std::uint64_t live(Gateway& g) {
    auto req = g.node->collectionInfoRequest();
    req.setName(kCollection);
    try {
      return loop_.run_until(req.send()).getInfo().getLiveRecords();
    } catch (const kj::Exception&) {
      return 0;
    }
  }
  bool has(Gateway& g, const std::string& id) {
    auto req = g.node->getRequest();
    req.setCollection(kCollection);
    req.setId(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(id.data()), id.size()));
    try {
      loop_.run_until(req.send());
      return true;
    } catch (const kj::Exception&) {
      return false;
    }
  }
  void upsert(Gateway& g, const std::vector<std::string>& ids, const io::VectorSet& v, std::size_t first) {
    auto req = g.node->upsertRequest();
    req.setCollection(kCollection);
    auto recs = req.initRecords(static_cast<unsigned>(ids.size()));
    for (unsigned i = 0; i < ids.size(); ++i) {
      recs[i].setId(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(ids[i].data()), ids[i].size()));
      auto vec = recs[i].initValue().initVector(static_cast<unsigned>(v.dimension));
      const float* row = v.row((first + i) % v.count);
      for (unsigned d = 0; d < v.dimension; ++d) vec.set(d, row[d]);
    }
    loop_.run_until(req.send());
  }
  void remove(Gateway& g, const std::string& id) {
    auto req = g.node->deleteRequest();
    req.setCollection(kCollection);
    req.setId(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(id.data()), id.size()));
    loop_.run_until(req.send());
  }
  bool wait(const std::function<bool()>& cond, double give_up_ms) {
    const auto t0 = Clock::now();
    while (!cond()) {
      if (ms_since(t0) > give_up_ms) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  int run(std::size_t images, const std::string& dataset) {
    const auto all0 = Clock::now();
    for (auto& g : gateways_) start(g);
    std::cout << "demo: " << gateways_.size() << " gateways started (" << mode_ << " mode"
              << (mode_ == "netns" ? ", each in its own network namespace, finding the others by mDNS" : ", peers configured by address on loopback")
              << ")\n";
    const auto td = Clock::now();
    const std::size_t want = gateways_.size() - 1;
    bool linked = wait([&] {
      for (auto& g : gateways_) if (peers_up(g) < want) return false;
      return true;
    }, 60000);
    std::size_t discovered = 0;
    for (auto& g : gateways_) {
      auto s = stats(g);
      discovered += s.contains("mesh") ? s["mesh"]["discovered"].get<std::uint64_t>() : 0;
    }
    std::cout << "demo: every gateway linked to the " << want << " others in " << static_cast<long>(ms_since(td)) << " ms"
              << (mode_ == "netns" ? " (" + std::to_string(discovered) + " mDNS sightings)" : std::string()) << (linked ? "" : " [NOT ALL]") << "\n";

    auto train = io::read_vectors(dataset + "/train-images-idx3-ubyte.gz", io::VectorFormat::kIdx, images + 400);
    if (!train.ok()) die(train.status().to_string());
    Gateway& g1 = gateways_[0];
    Gateway& g2 = gateways_[1 % gateways_.size()];
    Gateway& gc = gateways_.back();  // the one cut off
    {
      auto req = g1.node->createCollectionRequest();
      auto spec = req.initSpec();
      spec.setName(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(kCollection), std::strlen(kCollection)));
      spec.setDimension(static_cast<std::uint32_t>(train->dimension));
      spec.setMetric(0);
      spec.setM(16);
      spec.setEfConstruction(200);
      spec.setEfSearch(64);
      loop_.run_until(req.send());
    }
    const auto ti = Clock::now();
    for (std::size_t i = 0; i < images; i += 500) {
      std::vector<std::string> ids;
      for (std::size_t j = i; j < std::min(images, i + 500); ++j) ids.push_back("img-" + std::to_string(j));
      upsert(g1, ids, *train, i);
    }
    const double import_ms = ms_since(ti);
    std::cout << "demo: gateway 1 imported " << images << " Fashion-MNIST images (784-d) through its local API in "
              << static_cast<long>(import_ms) << " ms (" << static_cast<long>(static_cast<double>(images) / (import_ms / 1000.0)) << " records/s)\n";
    bool all = wait([&] {
      for (auto& g : gateways_) if (live(g) != images) return false;
      return true;
    }, 120000);
    std::cout << "demo: all gateways hold " << images << " records " << static_cast<long>(ms_since(ti)) << " ms after the import began"
              << (all ? "" : " [NOT ALL]") << "\n";

    // Searches on gateway 2 for images written on gateway 1.
    double worst = 0;
    std::size_t found = 0;
    for (std::size_t q = 0; q < 5; ++q) {
      auto req = g2.node->searchRequest();
      req.setCollection(kCollection);
      auto qv = req.initQuery(static_cast<unsigned>(train->dimension));
      const float* row = train->row(q * 997);
      for (unsigned d = 0; d < train->dimension; ++d) qv.set(d, row[d]);
      req.setK(5);
      const auto t0 = Clock::now();
      auto r = loop_.run_until(req.send());
      worst = std::max(worst, ms_since(t0));
      if (r.getHits().size() > 0 && std::string(reinterpret_cast<const char*>(r.getHits()[0].getId().begin()), r.getHits()[0].getId().size()) == "img-" + std::to_string(q * 997)) ++found;
      if (q == 0) {
        std::cout << "demo: gateway 2 answers searches: nearest to img-0 are";
        for (auto h : r.getHits()) std::cout << " " << std::string(reinterpret_cast<const char*>(h.getId().begin()), h.getId().size());
        std::cout << "; freshness:";
        for (auto f : r.getFreshness()) std::cout << " " << f.getDevice().cStr() << "=" << f.getSinceLastDeltaMs() << "ms";
        std::cout << "\n";
      }
    }
    std::cout << "demo: " << found << "/5 queries found their own image first; slowest call " << worst << " ms (RPC included)\n";

    // Partition the last gateway; write and delete on both sides.
    if (mode_ == "netns") {
      sh("ip netns exec " + gc.ns + " ip link set " + gc.veth + " down");
    } else {
      stop(gc);
      start(gc, /*with_peers=*/false);
    }
    wait([&] { return peers_up(gc) == 0; }, 30000);
    std::cout << "demo: gateway " << gc.index << " cut off; writing and deleting on both sides\n";
    std::vector<std::string> acked, deleted;
    for (int side = 0; side < 2; ++side) {
      Gateway& g = side == 0 ? g1 : gc;
      std::vector<std::string> ids;
      for (int i = 0; i < 200; ++i) ids.push_back("new-" + std::to_string(g.index) + "-" + std::to_string(i));
      upsert(g, ids, *train, images + static_cast<std::size_t>(side) * 200);
      acked.insert(acked.end(), ids.begin(), ids.end());
      for (int i = 0; i < 100; ++i) {
        const std::string id = "img-" + std::to_string(side * 100 + i);
        remove(g, id);
        deleted.push_back(id);
      }
    }
    const std::uint64_t expect = images + acked.size() - deleted.size();

    // Heal.
    const auto th = Clock::now();
    if (mode_ == "netns") {
      sh("ip netns exec " + gc.ns + " ip link set " + gc.veth + " up");
    } else {
      stop(gc);
      start(gc, /*with_peers=*/true);
    }
    std::cout << "demo: healed; waiting for convergence\n";
    bool converged = wait([&] {
      for (auto& g : gateways_) if (live(g) != expect) return false;
      return true;
    }, 120000);
    const double converge_ms = ms_since(th);
    std::size_t lost = 0, resurrected = 0;
    for (auto& g : gateways_) {
      for (const auto& id : acked) lost += has(g, id) ? 0 : 1;
      for (const auto& id : deleted) resurrected += has(g, id) ? 1 : 0;
    }
    std::cout << "demo: every gateway holds " << expect << " records: " << acked.size() << " writes and " << deleted.size()
              << " deletes made apart, checked on all " << gateways_.size() << " gateways (total "
              << static_cast<long>(ms_since(all0) / 1000) << " s)\n";
    cleanup();
    std::cout << "demo gateways=" << gateways_.size() << " discovered=" << (mode_ == "netns" ? discovered : 0)
              << " converged=" << (converged ? "yes" : "no") << " lost=" << lost << " resurrected=" << resurrected
              << " converge_ms=" << static_cast<long>(converge_ms) << std::endl;
    return converged && lost == 0 && resurrected == 0 ? 0 : 1;
  }

 private:
  std::string shoald_, work_, mode_, tag_, bridge_ns_;
  security::MeshId anchor_mesh_{};
  boost::asio::io_context io_;
  transport::KjLoop loop_;
  std::vector<Gateway> gateways_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string shoald, dataset = "/usr/share/datasets/fashion-mnist", work = "/tmp/shoal-demo", mode = "auto";
  int gateways = 3;
  std::size_t images = 10000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--shoald") shoald = next();
    else if (a == "--dataset") dataset = next();
    else if (a == "--work") work = next();
    else if (a == "--mode") mode = next();
    else if (a == "--gateways") gateways = static_cast<int>(whole_number(a, next(), 2, 8));
    else if (a == "--images") images = whole_number(a, next(), 1, kMaxImages);
    else usage_error("unknown option " + a);
  }
  if (shoald.empty()) usage_error("give --shoald PATH");
  if (mode != "auto" && mode != "netns" && mode != "loopback") {
    usage_error("--mode is auto, netns or loopback, got '" + mode + "'");
  }
  ::signal(SIGPIPE, SIG_IGN);
  Demo demo(shoald, work, mode);
  demo.setup(gateways);
  return demo.run(images, dataset);
}
