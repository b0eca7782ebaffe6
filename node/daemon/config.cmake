# node/daemon/config.cmake: shoald's configuration file (issue 14, "shoald"), included by the
# daemon's CMake code when SHOAL_BUILD_DAEMON is on.
#
# shoal_daemon_config: the TOML file parsed with toml++ (Debian's libtomlplusplus-dev 3.3, a
# shared library: its CMake package defines tomlplusplus::tomlplusplus with TOML_HEADER_ONLY=0)
# into a DaemonConfig, and what a SIGHUP may reload (config.hpp). Not part of libshoal.
if(SHOAL_BUILD_DAEMON)
  find_package(tomlplusplus 3 CONFIG REQUIRED)
  # Imported targets are local to the directory that found them; the library's consumers (tests/,
  # the daemon) link tomlplusplus::tomlplusplus through it from other directories.
  set_target_properties(tomlplusplus::tomlplusplus PROPERTIES IMPORTED_GLOBAL TRUE)
  add_library(shoal_daemon_config STATIC ${CMAKE_CURRENT_LIST_DIR}/config.cpp)
  add_library(shoal::daemon_config ALIAS shoal_daemon_config)
  target_link_libraries(shoal_daemon_config
    PUBLIC shoal::node
    PRIVATE tomlplusplus::tomlplusplus shoal_warnings)
endif()
