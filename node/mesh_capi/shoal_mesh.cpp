// node/mesh_capi/shoal_mesh.cpp: the embedded mesh (node/capi/shoal_mesh.h), libshoal_mesh.so.0.
//
// Role: the C face of shoald's mesh steps (node/daemon/mesh_runtime.hpp) on a background thread,
// over the node an app opened with shoal_open. The app's handle is reached through libshoal's one
// internal entry point (node/capi/mesh_attach.hpp); the node's revocation set is attached for as
// long as the mesh runs.
// A stub's get on the app's handle is refilled here (MeshRun::refill, through the attachment).
// Threads: the mesh thread owns the io_context's run, the KjLoop and the MeshHost (created,
// used and destroyed there, the KjLoop's rule). Other threads reach them only by posting to the
// loop (KjLoop::post) and waiting for the answer. MeshRun::mu_ guards `running_` and the loop
// pointer against a stop.
#include "node/capi/shoal_mesh.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>
#include <pthread.h>

#include "common/log.hpp"
#include "node/capi/c_boundary.hpp"
#include "node/capi/mesh_attach.hpp"
#include "node/daemon/config.hpp"
#include "node/daemon/mesh_runtime.hpp"
#include "node/daemon/status_page.hpp"
#include "node/runtime/revocation_replica.hpp"
#include "security/certificate.hpp"

using namespace shoal;

namespace {

constexpr const char* kComponent = "shoal_mesh";

using capi::guarded;
using capi::null_arg;
using capi::report;

Status unavailable() { return Status(Code::kUnavailable, "the embedded mesh was stopped (shoal_close of its handle)"); }

// One running mesh. Not movable: the mesh thread and the attachment's stop hold its address.
class MeshRun {
 public:
  MeshRun(capi::MeshAttachment& attach, std::string config_path, daemon::DaemonConfig config,
          security::Identity identity, daemon::MeshTrust trust)
      : attach_(attach),
        config_path_(std::move(config_path)),
        config_(std::move(config)),
        identity_(std::move(identity)),
        trust_(std::move(trust)),
        revocations_(trust_.anchor),
        logger_(config_.log_level),
        device_label_(security::key_label(identity_.public_key())) {}
  MeshRun(const MeshRun&) = delete;
  MeshRun& operator=(const MeshRun&) = delete;
  ~MeshRun() { halt(); }

  // Attaches the revocation set, starts the thread and waits until the host listens (or failed).
  Status start() {
    SHOAL_RETURN_IF_ERROR(attach_.attach_mesh(
        &revocations_, [this] { halt(); },
        [this](const std::string& collection, const std::string& id) { return refill(collection, id); }));
    // Shared with the thread: it may still be inside set_value when this frame has returned.
    auto started = std::make_shared<std::promise<Status>>();
    auto started_future = started->get_future();
    {
      // The mesh thread takes no process signal (SIGINT, SIGTERM, SIGHUP stay the app's): it
      // starts with every signal blocked, and the calling thread's mask is put back.
      sigset_t all, old;
      sigfillset(&all);
      pthread_sigmask(SIG_SETMASK, &all, &old);
      try {
        thread_ = std::thread([this, started] { run(*started); });
      } catch (...) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        attach_.detach_mesh();
        throw;
      }
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }
    Status st = started_future.get();
    if (!st.ok()) {
      thread_.join();
      attach_.detach_mesh();
      return st;
    }
    return {};
  }

  // Stops the host on its loop (close frames, goodbye, sockets closed), joins the thread and
  // detaches from the node. Idempotent; called by shoal_mesh_stop and by shoal_close.
  void halt() {
    {
      std::lock_guard lock(mu_);
      if (!running_) return;
      running_ = false;
      loop_->post([this] {
        // What shoald does on SIGTERM, in its order.
        host_->stop();
        guard_.reset();
        io_.stop();
      });
    }
    thread_.join();
    attach_.detach_mesh();
  }

  // Runs `fn` on the loop thread and returns its status (kUnavailable once stopped).
  Status on_loop(std::function<Status()> fn) {
    auto done = std::make_shared<std::promise<Status>>();
    auto result = done->get_future();
    {
      std::lock_guard lock(mu_);
      if (!running_) return unavailable();
      loop_->post([done, fn = std::move(fn)] {
        try {
          done->set_value(fn());
        } catch (const std::exception& e) {
          done->set_value(Status(Code::kInternal, std::string("unexpected exception: ") + e.what()));
        }
      });
    }
    try {
      return result.get();
    } catch (const std::future_error&) {
      return unavailable();  // stopped before the task ran
    }
  }

  // MeshHost::search_with_cold on the loop thread; this thread waits for its answer.
  Result<node::MeshHost::ColdSearch> search_cold(std::string collection, std::vector<float> query,
                                                 node::SearchOptions options) {
    return await_on_loop<node::MeshHost::ColdSearch>(
        [collection = std::move(collection), query = std::move(query), options](node::MeshHost& host) mutable {
          return host.search_with_cold(std::move(collection), std::move(query), std::move(options));
        });
  }

  // MeshHost::bootstrap_from_sink on the loop thread; this thread waits until it is done.
  Result<node::MeshHost::SinkBootstrap> bootstrap(std::string collection) {
    return await_on_loop<node::MeshHost::SinkBootstrap>(
        [collection = std::move(collection)](node::MeshHost& host) mutable {
          return host.bootstrap_from_sink(std::move(collection));
        });
  }

  // shoal_get of a stub on the app's handle (mesh_attach.hpp, MeshRefill): MeshHost::get_with_cold,
  // what shoald's local API runs for a client's get, on the loop thread; this thread waits.
  Result<capi::GetAnswer> refill(const std::string& collection, const std::string& id) {
    SHOAL_ASSIGN_OR_RETURN(auto got, await_on_loop<node::MeshHost::ColdGet>(
                                         [collection, id](node::MeshHost& host) mutable {
                                           return host.get_with_cold(std::move(collection), std::move(id));
                                         }));
    return capi::GetAnswer{std::move(got.record), std::move(got.cold_error)};
  }

  // Starts `start(host)` on the loop thread (a call that answers later, e.g. over the sink's link)
  // and waits for its answer here (kUnavailable once stopped).
  template <typename T>
  Result<T> await_on_loop(std::function<kj::Promise<Result<T>>(node::MeshHost&)> start) {
    auto done = std::make_shared<std::promise<Result<T>>>();
    auto result = done->get_future();
    {
      std::lock_guard lock(mu_);
      if (!running_) return unavailable();
      loop_->post([this, done, start = std::move(start)]() mutable {
        start(*host_)
            .then([done](Result<T>&& r) { done->set_value(std::move(r)); },
                  [done](kj::Exception&& e) { done->set_value(transport::status_of(e)); })
            .detach([](kj::Exception&&) {});
      });
    }
    try {
      return result.get();
    } catch (const std::future_error&) {
      return unavailable();  // stopped before the task ran
    }
  }

  Status status_json(std::string& out) {
    return on_loop([&]() -> Status {
      const daemon::DaemonSnapshot snap = daemon::take_snapshot(attach_.shared_node(), *host_, device_label_, config_.data_dir);
      nlohmann::json j = nlohmann::json::parse(daemon::render_status_json(snap));
      j["port"] = host_->port();
      out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return {};
    });
  }

  Status reload() {
    return on_loop([&]() -> Status {
      auto next = daemon::load_config(config_path_);
      if (!next.ok()) {
        SHOAL_LOG(&logger_, kError, kComponent, "reload: the configuration has errors; nothing changed:\n",
                  next.status().message());
        return next.status();
      }
      daemon::ReloadPlan plan = daemon::apply_reload(config_, *next, *host_, logger_, kComponent);
      config_ = plan.next;
      return plan.status();
    });
  }

 private:
  // The mesh thread: everything kj and Asio lives and dies here.
  void run(std::promise<Status>& started) {
    std::unique_ptr<node::MeshHost> host;
    {
      transport::KjLoop loop(io_);
      auto h = daemon::start_mesh_host(loop, attach_.shared_node(), revocations_, identity_, trust_, config_, &logger_);
      if (!h.ok()) {
        started.set_value(h.status());
        return;
      }
      host = std::move(*h);
      {
        std::lock_guard lock(mu_);
        loop_ = &loop;
        host_ = host.get();
        running_ = true;
      }
      SHOAL_LOG(&logger_, kInfo, kComponent, "embedded mesh running: replica ",
                attach_.shared_node().replica().to_string(), ", ", device_label_, ", mesh port ", host->port());
      started.set_value(Status());
      io_.run();
      host.reset();  // on the loop's thread, while the loop lives
      std::lock_guard lock(mu_);
      loop_ = nullptr;
      host_ = nullptr;
    }
    SHOAL_LOG(&logger_, kInfo, kComponent, "embedded mesh stopped");
  }

  capi::MeshAttachment& attach_;
  const std::string config_path_;
  daemon::DaemonConfig config_;  // the loop thread's after start
  security::Identity identity_;
  daemon::MeshTrust trust_;
  node::RevocationReplica revocations_;
  Logger logger_;
  const std::string device_label_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{io_.get_executor()};
  std::thread thread_;
  std::mutex mu_;
  bool running_ = false;
  transport::KjLoop* loop_ = nullptr;
  node::MeshHost* host_ = nullptr;
};

}  // namespace

struct shoal_mesh {
  std::unique_ptr<MeshRun> run;
};

int shoal_mesh_start(shoal_db* db, const char* config_path, shoal_mesh** out, shoal_error* err) {
  if (out != nullptr) *out = nullptr;
  if (db == nullptr) return null_arg("db", err);
  if (config_path == nullptr) return null_arg("config_path", err);
  if (out == nullptr) return null_arg("out", err);
  void* raw = nullptr;
  const std::string key = capi::mesh_attach_build_key();
  if (int rc = shoal_internal_mesh_attachment_v1(db, key.c_str(), &raw, err); rc != SHOAL_OK) return rc;
  auto& attach = *static_cast<capi::MeshAttachment*>(raw);
  return guarded(err, [&]() -> Status {
    // The daemon's own steps, in its order (mesh_runtime.hpp).
    SHOAL_ASSIGN_OR_RETURN(daemon::DaemonConfig config, daemon::load_config(config_path));
    std::error_code ec;
    if (!std::filesystem::equivalent(config.data_dir, attach.data_dir(), ec)) {
      return Status(Code::kInvalidArgument,
                    str_cat("node.data_dir ", config.data_dir, " in ", config_path,
                            " is not this handle's data directory ", attach.data_dir(),
                            ec ? " (" + ec.message() + ")" : std::string()),
                    "node.data_dir");
    }
    SHOAL_ASSIGN_OR_RETURN(security::Identity identity, daemon::open_identity(config));
    SHOAL_ASSIGN_OR_RETURN(daemon::MeshTrust trust, daemon::load_trust(config, identity));
    auto run = std::make_unique<MeshRun>(attach, config_path, std::move(config), std::move(identity), std::move(trust));
    SHOAL_RETURN_IF_ERROR(run->start());
    auto m = std::make_unique<shoal_mesh>();
    m->run = std::move(run);
    *out = m.release();
    return {};
  });
}

int shoal_mesh_stop(shoal_mesh* mesh, shoal_error* err) {
  if (mesh == nullptr) return report(Status(), err);
  return guarded(err, [&]() -> Status {
    mesh->run->halt();
    delete mesh;
    return {};
  });
}

int shoal_mesh_reload(shoal_mesh* mesh, shoal_error* err) {
  if (mesh == nullptr) return null_arg("mesh", err);
  return guarded(err, [&] { return mesh->run->reload(); });
}

int shoal_mesh_search_cold(shoal_mesh* mesh, const char* collection, const float* query, size_t dimension, uint32_t k,
                           uint32_t ef, shoal_hit* hits, unsigned char* cold, size_t capacity, size_t* count,
                           int* sink_code, shoal_error* sink_err, shoal_error* err) {
  if (int rc = capi::check_search_args(mesh, "mesh", collection, query, dimension, k, hits, capacity, count, err);
      rc != SHOAL_OK) {
    return rc;
  }
  return guarded(err, [&]() -> Status {
    node::SearchOptions o;
    o.k = k;
    o.ef = ef;
    o.with_metadata = false;
    SHOAL_ASSIGN_OR_RETURN(auto answer, mesh->run->search_cold(collection, std::vector<float>(query, query + dimension), o));
    SHOAL_RETURN_IF_ERROR(capi::check_hit_count(answer.hits.size(), capacity, k, "the merge"));
    for (std::size_t i = 0; i < answer.hits.size(); ++i) {
      capi::put_hit(hits[i], answer.hits[i].id, answer.hits[i].distance);
      if (cold != nullptr) cold[i] = answer.hits[i].cold ? 1 : 0;
    }
    *count = answer.hits.size();
    const int code = report(answer.cold_error, sink_err);
    if (sink_code != nullptr) *sink_code = code;
    return {};
  });
}

int shoal_mesh_status_json(shoal_mesh* mesh, char** out, shoal_error* err) {
  if (out != nullptr) *out = nullptr;
  if (mesh == nullptr) return null_arg("mesh", err);
  if (out == nullptr) return null_arg("out", err);
  return guarded(err, [&]() -> Status {
    std::string text;
    SHOAL_RETURN_IF_ERROR(mesh->run->status_json(text));
    // shoal_string_free (libshoal) frees it with free().
    char* copy = static_cast<char*>(std::malloc(text.size() + 1));
    if (copy == nullptr) return Status(Code::kOverloaded, "out of memory");
    std::memcpy(copy, text.c_str(), text.size() + 1);
    *out = copy;
    return {};
  });
}

int shoal_mesh_bootstrap(shoal_mesh* mesh, const char* collection, uint64_t* records, int* created, shoal_error* err) {
  if (records != nullptr) *records = 0;
  if (created != nullptr) *created = 0;
  if (mesh == nullptr) return null_arg("mesh", err);
  if (collection == nullptr) return null_arg("collection", err);
  return guarded(err, [&]() -> Status {
    SHOAL_ASSIGN_OR_RETURN(auto report, mesh->run->bootstrap(collection));
    if (records != nullptr) *records = report.records;
    if (created != nullptr) *created = report.created ? 1 : 0;
    return {};
  });
}
