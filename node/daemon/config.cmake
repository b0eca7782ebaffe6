# node/daemon/config.cmake: shoald's configuration file (issue 14, "shoald"), included by the
# daemon's CMake code when SHOAL_BUILD_DAEMON is on.
#
# shoal_daemon_config: the TOML file parsed with toml++ (found in common/, with the problem
# reporting it shares with shoal-sink's file: common/toml_report.hpp) into a DaemonConfig, and
# what a SIGHUP may reload (config.hpp). Not part of libshoal.
if(SHOAL_BUILD_DAEMON)
  add_library(shoal_daemon_config STATIC ${CMAKE_CURRENT_LIST_DIR}/config.cpp)
  add_library(shoal::daemon_config ALIAS shoal_daemon_config)
  target_link_libraries(shoal_daemon_config
    PUBLIC shoal::node
    PRIVATE shoal::toml_report shoal_warnings)
endif()
