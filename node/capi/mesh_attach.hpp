// node/capi/mesh_attach.hpp: what the embedded mesh (libshoal_mesh, node/mesh_capi/) needs of an
// embedded shoal_db (internal to libshoal and libshoal_mesh; never installed).
//
// Role: shoal_mesh_start joins the mesh with the node that shoal_open already runs in the app. It
// reaches that node through one exported C entry point of libshoal,
// shoal_internal_mesh_attachment_v1 (not in shoal.h), which hands out the handle's
// MeshAttachment after checking that both libraries come from one build (the objects exchanged
// are C++ objects, as with libshoal_client; backend.hpp). A client-mode handle has none.
//
// Revocations: the node must be opened with its revocation set (NodeOptions::revocations), but
// the set is verified against the mesh's trust anchor, which only the mesh's certificate names.
// So an embedded node opens with a DeferredRevocations (embedded.cpp) that keeps what the store
// holds until a mesh attaches its RevocationReplica, then forwards to it; after the mesh detaches
// it keeps the replica's encoded state (no mesh, no Hello, so nothing else reads it).
//
// Refills: a record the node holds as a stub (its payload evicted to the cold-tier sink) is
// refilled by shoal_get through the attached mesh's MeshRefill, which runs MeshHost::get_with_cold
// (the code shoald's local API runs for its clients) on the mesh's thread, over its sink link.
// The backend counts the refills under way and detach_mesh waits for them, so the mesh that made
// the MeshRefill outlives every call of it (a call made while the mesh stops gets its kUnavailable
// quickly: the mesh's loop breaks the promise it waits on).
// Thread rules: every method from any thread; attach_mesh and detach_mesh are serialised by the
// caller (one mesh per handle), and shoal_close never runs concurrently with them (shoal_mesh.h).
#pragma once

#include <functional>
#include <string>

#include "common/status.hpp"
#include "node/capi/backend.hpp"
#include "node/core/replicated_set.hpp"
#include "node/runtime/shared_node.hpp"

namespace shoal::capi {

// Refills an evicted record of `collection` (MeshHost::get_with_cold on the mesh's thread): the
// record with its winner refilled, or the stub with GetAnswer::cold saying why not. A failure of
// the call itself (the mesh stopped, the record gone) is an error status. From any thread but the
// mesh's; blocks until the mesh answered.
using MeshRefill = std::function<Result<GetAnswer>(const std::string& collection, const std::string& id)>;

class MeshAttachment {
 public:
  // The handle's node (lives as long as the handle).
  virtual node::SharedNode& shared_node() = 0;
  // The data directory as given to shoal_open.
  virtual const std::string& data_dir() const = 0;
  // Makes `revocations` (which must outlive detach_mesh) the node's revocation set, after joining
  // into it what the node loaded from its store; records `stop`, which shoal_close calls when the
  // app closes the handle with the mesh still running, and `refill`, which the handle's get calls
  // for a stub until detach_mesh. Statuses: kConflict when a mesh is attached already (the message
  // says so); kCorruption when the stored revocations do not decode (nothing attached).
  [[nodiscard]] virtual Status attach_mesh(node::ReplicatedSet* revocations, std::function<void()> stop,
                                           MeshRefill refill) = 0;
  // Undoes attach_mesh (keeps the set's state, forgets `stop` and `refill`), after the refills
  // under way returned. No-op when nothing is attached. Never from inside a MeshRefill.
  virtual void detach_mesh() = 0;
  // Takes the `stop` of the attached mesh, if any (shoal_close calls it, outside every lock).
  virtual std::function<void()> take_mesh_stop() = 0;

 protected:
  ~MeshAttachment() = default;
};

// The build key both libraries compare before the attachment is used.
inline std::string mesh_attach_build_key() {
  return backend_build_key() + "; mesh attachment 2; sizes " + std::to_string(sizeof(node::SharedNode));
}

}  // namespace shoal::capi

// The entry point (exported by libshoal, version node SHOAL_0.2). On success *out is the
// handle's shoal::capi::MeshAttachment*. Codes: SHOAL_EINVAL (a NULL argument; a client-mode
// handle: "the embedded mesh needs an embedded handle (shoal_open), this one is client mode
// (shoal_connect)"), SHOAL_E_VERSION (build_key differs from libshoal's: the two libraries come
// from different builds).
extern "C" __attribute__((visibility("default"))) int shoal_internal_mesh_attachment_v1(struct shoal_db* db,
                                                                                  const char* build_key, void** out,
                                                                                  struct shoal_error* err);
