// tests/store/io_shim.hpp: a test-only interposer that watches how one file reaches the disk.
//
// Role: libshoal_io_shim.so defines open/open64/openat, write/pwrite/pwrite64/writev,
// fsync/fdatasync, msync, ftruncate and close. Linked into a test executable ahead of libc, its
// definitions win the dynamic symbol lookup, so liblmdb's calls go through them (link-time
// interposition; no LD_PRELOAD needed, and it works under ASan). Each forwards to the next
// definition (dlsym(RTLD_NEXT)) and, for descriptors of the one watched file, records the call
// and keeps two images of the file:
//   - the cache: every byte written, as the page cache holds it;
//   - the durable image: what a power cut at this instant leaves on the disk when every write
//     not yet synced is lost. A write through an O_DSYNC/O_SYNC descriptor is durable for its own
//     range when it returns; fsync/fdatasync on any descriptor of the file makes the whole cache
//     durable (it flushes the inode, whoever wrote).
// Writes through mmap (MDB_WRITEMAP) are not seen: msync is recorded, not modelled, so a check
// built on this shim can only under-credit such an environment, never over-credit it.
//
// Thread rules: every entry point takes one mutex; the recorded state is process-global.
// Ownership: the shim owns its images; copies are returned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shoal::io_shim {

enum class Kind : std::uint8_t { kOpen, kWrite, kSync, kMsync, kTruncate, kClose };

struct Event {
  Kind kind = Kind::kOpen;
  int fd = -1;
  int open_flags = 0;        // kOpen: the flags passed to open; kWrite/kSync: the descriptor's
  bool dsync = false;        // the descriptor was opened with O_DSYNC or O_SYNC
  std::uint64_t offset = 0;  // kWrite: file offset; kTruncate: new size
  std::uint64_t length = 0;  // kWrite: bytes written
  // kWrite: bytes of the file written earlier and still not durable, just before this write.
  std::uint64_t unsynced_before = 0;
};

// Starts watching the file at exactly `path` (descriptors opened on it from now on; its current
// content, if any, is read as both cache and durable image). Clears every earlier record.
void watch(const std::string& path);
// Stops watching and clears the records.
void unwatch();

// The number of events recorded so far (a mark to take the events of one commit from).
std::size_t event_count();
std::vector<Event> events_since(std::size_t mark);
// Bytes written to the watched file and not durable yet (0: a crash now loses nothing).
std::uint64_t unsynced_bytes();
// The watched file as a power cut now would leave it.
std::string durable_image();

}  // namespace shoal::io_shim
