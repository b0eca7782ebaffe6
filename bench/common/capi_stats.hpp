// bench/common/capi_stats.hpp: figures a benchmark reads from shoal_stats_json, through the C API
// as an app would: group commit's totals and the index backlog.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "shoal.h"

namespace shoal::bench {

struct CapiWriteFigures {
  unsigned long long groups = 0;   // group commits (one durable sync each)
  unsigned long long writes = 0;   // writes they carried
  unsigned long long largest = 0;  // the most writes one group carried
  unsigned long long index_backlog = 0;  // index operations committed, still queued for the index
};

// Exits with a message when the statistics cannot be read or lack a figure.
inline CapiWriteFigures capi_write_figures(shoal_db* db) {
  char* text = nullptr;
  shoal_error err;
  if (shoal_stats_json(db, &text, &err) != SHOAL_OK) {
    std::fprintf(stderr, "bench: shoal_stats_json failed: %s\n", err.message);
    std::exit(1);
  }
  CapiWriteFigures f;
  const auto read = [&](const char* from, const char* key, unsigned long long& out) {
    const char* at = from == nullptr ? nullptr : std::strstr(from, key);
    if (at == nullptr || std::sscanf(at + std::strlen(key), "%llu", &out) != 1) {
      std::fprintf(stderr, "bench: no %s in shoal_stats_json: %s\n", key, text);
      std::exit(1);
    }
  };
  const char* groups = std::strstr(text, "\"write_groups\":");
  read(groups, "\"groups\":", f.groups);
  read(groups, "\"writes\":", f.writes);
  read(groups, "\"largest\":", f.largest);
  read(text, "\"index_backlog\":", f.index_backlog);
  shoal_string_free(text);
  return f;
}

// Returns once every acknowledged write is in the index (the backlog is 0), polling each ms.
inline void wait_until_indexed(shoal_db* db) {
  while (capi_write_figures(db).index_backlog > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace shoal::bench
