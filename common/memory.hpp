// common/memory.hpp: advice to the kernel about memory the process is about to fill.
//
// Role: large arrays written once at open (an index snapshot's level-0 block, a collection's docs
// and id map) ask for transparent huge pages, so that filling them takes one page fault per
// 2 MiB instead of one per 4 KiB (D64, D70). THP in `madvise` mode, the common default, serves
// only regions that ask.
// Thread rules: pure functions.
#pragma once

#include <cstddef>

namespace shoal {

// Advises MADV_HUGEPAGE over the whole 2 MiB pages inside [p, p + bytes). Advice only: a kernel
// without THP refuses it and nothing changes, so nothing is returned; a range holding no whole
// 2 MiB page is left alone. The advice splits the mapping: glibc's realloc of such a block can no
// longer mremap it and copies instead (index/graph.cpp says when that matters).
void advise_huge_pages(void* p, std::size_t bytes) noexcept;
// Faults in, writable, the whole 4 KiB pages inside [p, p + bytes) that are not yet present
// (MADV_POPULATE_WRITE, Linux 5.14): the kernel zeroes fresh ones; pages already present and
// their contents are left as they are, so it may run while another thread writes the range.
// False when the kernel refuses (an older one: nothing was done).
bool populate_for_write(void* p, std::size_t bytes) noexcept;

}  // namespace shoal
