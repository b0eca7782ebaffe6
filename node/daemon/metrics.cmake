# node/daemon/metrics.cmake: the daemon's /metrics endpoint and status page (issue 14,
# "Observability"), included by the daemon's CMake code when SHOAL_BUILD_DAEMON is on.
#
# shoal_daemon_metrics: the Prometheus registry (prometheus-cpp's core library and text
# serializer; not its pull exposer), the status page and /status.json renderers, and the small
# Boost.Beast HTTP server that serves them on the daemon's io_context. Not part of libshoal.
if(SHOAL_BUILD_DAEMON)
  find_package(prometheus-cpp CONFIG REQUIRED)  # its config file carries no version
  # Imported targets are local to the directory that found them; the library's consumers (tests/,
  # the daemon) link prometheus-cpp::core through it from other directories.
  set_target_properties(prometheus-cpp::core PROPERTIES IMPORTED_GLOBAL TRUE)
  add_library(shoal_daemon_metrics STATIC
    ${CMAKE_CURRENT_LIST_DIR}/metrics.cpp
    ${CMAKE_CURRENT_LIST_DIR}/status_page.cpp
    ${CMAKE_CURRENT_LIST_DIR}/http_server.cpp)
  add_library(shoal::daemon_metrics ALIAS shoal_daemon_metrics)
  target_link_libraries(shoal_daemon_metrics
    PUBLIC shoal::common
    PRIVATE prometheus-cpp::core Boost::headers Boost::system shoal_warnings)
endif()
