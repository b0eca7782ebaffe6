// node/tools/mesh_commands.hpp: the `shoal mesh` verbs (init, enrol, renew, revoke).
#pragma once

#include <CLI/CLI.hpp>

// Adds `mesh` and its subcommands to `app`. Each verb runs as a CLI11 callback during parsing
// and ends it by throwing CLI::RuntimeError with the exit code (0 success, 1 the request failed,
// 2 a usage error), which CLI11_PARSE returns from main. `json_output` is read when a verb runs,
// so it may be bound to the global --json flag.
void add_mesh_commands(CLI::App& app, const bool& json_output);
