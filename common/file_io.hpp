// common/file_io.hpp: the few durable-file steps Shoal's runtime pieces share (key files, the
// data directory's FINGERPRINT, index snapshots): write all bytes, fsync a directory, and replace
// a small file atomically with a private mode. Not for the sans-I/O core, which writes no file.
// Thread rules: free functions; callers own the paths they name.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.hpp"

namespace shoal {

// Writes [data, data+size) to `fd`, retrying short writes and EINTR. False on an error (errno
// says which).
[[nodiscard]] bool write_all(int fd, const void* data, std::size_t size) noexcept;

// The directory part of `path` ("." when there is none, "/" for a file in the root).
std::string parent_dir(const std::string& path);

// fsyncs directory `dir`, so that a rename or a link in it is durable. kIo naming `dir`.
[[nodiscard]] Status fsync_dir(const std::string& dir);

// Replaces `path` with `bytes` atomically: `path`.tmp written with `mode` (0600 by default,
// whatever the umask), fsynced, renamed over `path`, and the directory fsynced. A crash leaves
// the old file or the new one. kIo naming the file and the step that failed.
[[nodiscard]] Status write_file_atomic(const std::string& path, std::string_view bytes, unsigned mode = 0600);

}  // namespace shoal
