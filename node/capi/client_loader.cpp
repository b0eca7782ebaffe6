// node/capi/client_loader.cpp: finds and loads libshoal_client.so for shoal_connect (see
// backend.hpp). Search order: $SHOAL_CLIENT_LIBRARY (a path; nothing else is tried), else
// libshoal_client.so.0 in the directory libshoal itself was loaded from (dladdr), else the dynamic
// loader's default search. A library that loads is kept for the life of the process; one that
// fails is tried again at the next shoal_connect (the message names each place and dlerror()).
#include "node/capi/client_loader.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace shoal::capi {
namespace {

constexpr const char* kClientSoname = "libshoal_client.so.0";

std::mutex g_mu;
ClientEntry g_entry;     // filled once a library was loaded and checked
bool g_loaded = false;

// The directory of the file this function's code was loaded from (libshoal.so), with a '/'.
std::string own_directory() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&own_directory), &info) == 0 || info.dli_fname == nullptr) return {};
  std::string path(info.dli_fname);
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

// dlopen()s `what`; on failure appends "WHAT: dlerror()" to `tried`.
void* try_open(const std::string& what, std::string& tried) {
  void* h = ::dlopen(what.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = ::dlerror();
    if (!tried.empty()) tried += "; ";
    tried += e != nullptr ? std::string(e) : what + ": unknown dlopen error";
  }
  return h;
}

Status load_locked() {
  std::string tried;
  void* handle = nullptr;
  std::string loaded_from;
  if (const char* env = std::getenv("SHOAL_CLIENT_LIBRARY"); env != nullptr && *env != '\0') {
    loaded_from = env;
    handle = try_open(env, tried);
    if (handle == nullptr) {
      return Status(Code::kUnavailable, "client mode needs libshoal_client: cannot load SHOAL_CLIENT_LIBRARY=" +
                                            loaded_from + " (" + tried + ")");
    }
  } else {
    if (const std::string dir = own_directory(); !dir.empty()) {
      loaded_from = dir + kClientSoname;
      handle = try_open(loaded_from, tried);
    }
    if (handle == nullptr) {
      loaded_from = kClientSoname;
      handle = try_open(kClientSoname, tried);
    }
    if (handle == nullptr) {
      return Status(Code::kUnavailable, std::string("client mode needs ") + kClientSoname +
                                            ", which cannot be loaded (is the shoal client package installed?): " +
                                            tried);
    }
  }
  ::dlerror();
  auto fn = reinterpret_cast<ClientEntryFn>(::dlsym(handle, kClientEntryName));
  if (fn == nullptr) {
    const char* e = ::dlerror();
    std::string why = e != nullptr ? e : "symbol not found";
    ::dlclose(handle);
    return Status(Code::kUnavailable, loaded_from + " is not a Shoal client library: " + why);
  }
  ClientEntry entry;
  const int rc = fn(&entry, sizeof entry);
  if (rc != 0 || entry.abi != kBackendAbi || entry.build_key == nullptr || entry.connect == nullptr ||
      entry.connect_with == nullptr) {
    ::dlclose(handle);
    return Status(Detail::kVersionMismatch, loaded_from + " speaks client interface " + std::to_string(entry.abi) +
                                                ", libshoal needs " + std::to_string(kBackendAbi));
  }
  if (const std::string key = backend_build_key(); key != entry.build_key) {
    // Keep it loaded: its code may already be referenced by nothing, but dlclose of a library
    // with C++ statics is best avoided; the process pays one mapping.
    return Status(Detail::kVersionMismatch, loaded_from + " comes from another build than libshoal (client: '" +
                                                entry.build_key + "', libshoal: '" + key +
                                                "'): install matching versions");
  }
  g_entry = entry;
  g_loaded = true;
  return {};  // the handle stays open for the life of the process
}

}  // namespace

Result<ClientEntry> load_client_library() {
  std::lock_guard lock(g_mu);
  if (!g_loaded) SHOAL_RETURN_IF_ERROR(load_locked());
  return g_entry;
}

}  // namespace shoal::capi
