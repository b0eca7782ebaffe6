// node/capi/client_loader.hpp: loads libshoal_client.so (client mode) at the first shoal_connect.
// Thread rules: any thread; loading is serialised inside.
#pragma once

#include "node/capi/backend.hpp"

namespace shoal::capi {

// The client library's entry, loading and checking the library on first use. Statuses:
// kUnavailable (the library cannot be loaded, or lacks the entry point: the message names the
// library and dlerror()); kUnimplemented/kVersionMismatch (a library from another build).
[[nodiscard]] Result<ClientEntry> load_client_library();

}  // namespace shoal::capi
