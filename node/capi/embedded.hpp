// node/capi/embedded.hpp: the embedded backend of a shoal_db (shoal_open): the node runs in this
// process, over its data directory. See backend.hpp.
#pragma once

#include <memory>
#include <string>

#include "node/capi/backend.hpp"
#include "node/capi/mesh_attach.hpp"
#include "node/runtime/data_dir.hpp"

namespace shoal::capi {

// Opens the data directory (open_data_dir's statuses). Unless options.node.revocations is set, the
// node's revocation set waits for an embedded mesh (mesh_attach.hpp). `attachment` (nullable)
// receives the backend's MeshAttachment, which lives as long as the backend.
[[nodiscard]] Result<std::unique_ptr<Backend>> open_embedded(const std::string& path, node::DataDirOptions options,
                                                            MeshAttachment** attachment = nullptr);

}  // namespace shoal::capi
