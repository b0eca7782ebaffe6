// node/capi/embedded.hpp: the embedded backend of a shoal_db (shoal_open): the node runs in this
// process, over its data directory. See backend.hpp.
#pragma once

#include <memory>
#include <string>

#include "node/capi/backend.hpp"
#include "node/runtime/data_dir.hpp"

namespace shoal::capi {

// Opens the data directory (open_data_dir's statuses).
[[nodiscard]] Result<std::unique_ptr<Backend>> open_embedded(const std::string& path, node::DataDirOptions options);

}  // namespace shoal::capi
