# Debian packages through CPack (issue 17; docs/operations.md, "Debian packages"). Included by the
# top-level CMakeLists.txt after every install rule, and only when Shoal is the top-level project.
#
# One package per install component group (the components are named by the install rules):
#   libshoal0     component runtime   the shared library (soname libshoal.so.0), shlibs, ldconfig
#   libshoal-dev  component dev       shoal.h, libshoal.so, shoal.pc, the CMake package files
#   libshoal-client0  component client  libshoal_client.so.0, the C API's client mode, which
#                                     libshoal and the CLI dlopen() at the first connect (only
#                                     when the daemon is built: it links capnp-rpc, kj-async and
#                                     Boost, which libshoal0 must not pull in for embedding apps)
#   shoal         components tools    the CLI, the daemon shoald with its systemd unit (enabled
#                 and doc             by the postinst, started once the device is enrolled) and
#                                     its configuration /etc/shoal/shoald.toml (a conffile), the
#                                     docs, the system user `shoal` (packaging/deb/)
#   python3-shoal component python    the Python binding (bindings/python), Architecture all,
#                                     with the shoal.h of its libshoal0
#   shoal-sink    components sink     the cold-tier sink shoal-sink with its systemd unit, its
#                 and sink_etc        configuration /etc/shoal/shoal-sink.toml (a conffile) and
#                                     the system user `shoal-sink`; the only package that depends
#                                     on libcurl (only when shoal-sink is built: not for arm64)
#
# Build them with scripts/package.sh, which configures a build with CMAKE_INSTALL_PREFIX=/usr (so
# that GNUInstallDirs puts the library under the multiarch directory, lib/<triplet>) and runs
# `cpack -G DEB`. A build with another prefix still packages, under /usr, but with the library in
# /usr/lib; packages are always installed under /usr.

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME shoal)
set(CPACK_PACKAGE_VENDOR "Shoal")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# The Maintainer field is mandatory in a .deb. Whoever publishes the packages sets it.
set(SHOAL_PACKAGE_MAINTAINER "Shoal maintainers <maintainers@invalid>" CACHE STRING
    "Maintainer field of the Debian packages")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${SHOAL_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

# The architecture of the code inside, not of the machine running cpack (cross builds: the
# toolchain file sets CMAKE_SYSTEM_PROCESSOR).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE arm64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE amd64)
endif()

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ONE_PER_GROUP)
set(CPACK_COMPONENTS_ALL runtime dev tools doc python)
if(TARGET shoal_client)
  list(APPEND CPACK_COMPONENTS_ALL client)
endif()
set(CPACK_COMPONENT_RUNTIME_GROUP lib)
set(CPACK_COMPONENT_DEV_GROUP dev)
set(CPACK_COMPONENT_TOOLS_GROUP tools)
set(CPACK_COMPONENT_DOC_GROUP tools)
set(CPACK_COMPONENT_CLIENT_GROUP client)
set(CPACK_COMPONENT_PYTHON_GROUP python)
# Debian's file names: name_version-revision_arch.deb.
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
# Depends computed from the binaries' NEEDED entries (dpkg-shlibdeps, from dpkg-dev).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)

set(CPACK_DEBIAN_LIB_PACKAGE_NAME libshoal0)
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_LIB_DESCRIPTION "Shoal vector database: shared library
libshoal is Shoal's C library (shoal.h): an embedded node that stores embeddings with metadata
durably in LMDB and answers k-nearest-neighbour queries on the device.")
# A shlibs file in each package holding a shared library (only libshoal0), so that packages built
# against libshoal depend on libshoal0 (>= this version); CPack also adds the ldconfig calls to
# that package's postinst and postrm.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libshoal-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_DESCRIPTION "Shoal vector database: development files
The C header shoal.h, the libshoal.so link, shoal.pc for pkg-config and the CMake package
(find_package(Shoal), target Shoal::shoal).")
# The header must match the library exactly. Nothing of the dev package is a binary, so this
# dependency is stated by hand.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libshoal0 (= ${PROJECT_VERSION}-1)")

set(CPACK_DEBIAN_CLIENT_PACKAGE_NAME libshoal-client0)
set(CPACK_DEBIAN_CLIENT_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_CLIENT_DESCRIPTION "Shoal vector database: client mode of the shared library
libshoal_client.so.0 lets libshoal (shoal_connect) and the shoal command talk to a running shoald
through its local API socket. libshoal loads it on demand, so apps that only embed a node do not
need it.")
# libshoal_client must come from the same build as libshoal (node/capi/backend.hpp checks it at
# load): depend on exactly that libshoal0. Its other dependencies come from dpkg-shlibdeps.
set(CPACK_DEBIAN_CLIENT_PACKAGE_DEPENDS "libshoal0 (= ${PROJECT_VERSION}-1)")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME shoal)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION database)
set(CPACK_DEBIAN_TOOLS_DESCRIPTION "Shoal vector database: command-line tool and documentation
The shoal command creates and inspects data directories, imports datasets, searches, backs up,
restores and compacts, and manages mesh certificates. Installs the system user shoal with the
data directory /var/lib/shoal for the daemon.")
# The postinst creates the system user with useradd (package passwd, priority required) and
# enables the unit with deb-systemd-helper (init-system-helpers). The CLI's client mode (--connect,
# and the default when /run/shoal/shoald.sock exists) dlopen()s libshoal_client.so.0, which no
# NEEDED entry shows dpkg-shlibdeps: stated by hand, at exactly this build.
set(shoal_tools_depends "passwd, init-system-helpers (>= 1.54~)")
if(TARGET shoal_client)
  string(APPEND shoal_tools_depends ", libshoal-client0 (= ${PROJECT_VERSION}-1)")
endif()
set(CPACK_DEBIAN_TOOLS_PACKAGE_DEPENDS "${shoal_tools_depends}")

# The maintainer scripts of the two packages with a service (shoal: shoald; shoal-sink), written
# from one set of templates (packaging/deb/{postinst,prerm,postrm}.in) into
# <build>/packaging/deb/<package>/: the system user, its directory, the unit enabled with
# deb-systemd-helper, stopped, masked and purged. Sets <out_var> to the three scripts.
function(shoal_deb_maintainer_scripts out_var package unit user user_comment state_dir cert state_what)
  set(SHOAL_DEB_PACKAGE ${package})
  set(SHOAL_DEB_UNIT ${unit})
  set(SHOAL_DEB_USER ${user})
  set(SHOAL_DEB_USER_COMMENT "${user_comment}")
  set(SHOAL_DEB_STATE_DIR ${state_dir})
  set(SHOAL_DEB_CERT ${cert})
  set(SHOAL_DEB_STATE_WHAT "${state_what}")
  set(scripts "")
  foreach(script postinst prerm postrm)
    set(out ${PROJECT_BINARY_DIR}/packaging/deb/${package}/${script})
    configure_file(${PROJECT_SOURCE_DIR}/packaging/deb/${script}.in ${out} @ONLY
                   FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                    WORLD_READ WORLD_EXECUTE)
    list(APPEND scripts ${out})
  endforeach()
  set(${out_var} ${scripts} PARENT_SCOPE)
endfunction()

shoal_deb_maintainer_scripts(shoal_tools_scripts shoal shoald.service shoal "Shoal vector database"
                             /var/lib/shoal /etc/shoal/device.cert "data directories")
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_EXTRA ${shoal_tools_scripts})
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# python3-shoal: pure Python (cffi in ABI mode parses shoal.h at import), so Architecture all; it
# carries a copy of shoal.h, which must match the library exactly.
set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME python3-shoal)
set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION python)
set(CPACK_DEBIAN_PYTHON_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_PYTHON_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS
    "python3:any, python3-cffi, python3-numpy, libshoal0 (= ${PROJECT_VERSION}-1)")
set(CPACK_DEBIAN_PYTHON_DESCRIPTION "Shoal vector database: Python 3 binding
import shoal: open a data directory or connect to shoald, create collections, upsert NumPy
arrays, get, delete and search (ids and distances as arrays), with errors as exceptions carrying
the C API's code. cffi over the installed libshoal.")
# Debian's python3 puts /usr/lib/python3/dist-packages on sys.path. Under another prefix (a
# `cmake --install --prefix /usr/local`), point PYTHONPATH at <prefix>/lib/python3/dist-packages.
set(SHOAL_PYTHON_INSTALL_DIR lib/python3/dist-packages/shoal)
install(FILES ${PROJECT_SOURCE_DIR}/bindings/python/shoal/__init__.py
              ${PROJECT_SOURCE_DIR}/bindings/python/shoal/_header.py
              ${PROJECT_SOURCE_DIR}/node/capi/shoal.h
        DESTINATION ${SHOAL_PYTHON_INSTALL_DIR} COMPONENT python)

# --- The daemon's place (packaging/README.md): its unit file lands in the `shoal` package from
# here once the shoald target exists (the binary through its own install rule, COMPONENT tools).
# Its postinst (packaging/deb/postinst.in) enables it with deb-systemd-helper; its configuration is the
# conffile /etc/shoal/shoald.toml (packaging/deb/shoal/conffiles), installed only into packages
# (an absolute path: `cmake --install --prefix P` must not write to the machine's /etc).
if(TARGET shoald AND EXISTS ${PROJECT_SOURCE_DIR}/packaging/shoald.service)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/shoald.service
          DESTINATION lib/systemd/system COMPONENT tools)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/shoald.toml DESTINATION /etc/shoal COMPONENT etc
          EXCLUDE_FROM_ALL)
  list(APPEND CPACK_COMPONENTS_ALL etc)
  set(CPACK_COMPONENT_ETC_GROUP tools)
  list(APPEND CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/deb/shoal/conffiles)
endif()

# --- shoal-sink: the cold-tier sink (docs/sink.md) in a package of its own, since it alone links
# libcurl (the S3 object store) and a gateway never runs it. The program (its install rule in
# sink/CMakeLists.txt, COMPONENT sink), its unit (Type=notify), the example configuration
# /etc/shoal/shoal-sink.toml as a conffile, its docs, and the system user `shoal-sink` with
# /var/lib/shoal-sink. Only where shoal-sink is built: the daemon side (SHOAL_BUILD_DAEMON), so
# not in the arm64 cross build (scripts/package.sh --arch arm64 builds no daemon).
if(TARGET shoal-sink AND EXISTS ${PROJECT_SOURCE_DIR}/packaging/shoal-sink.service)
  list(APPEND CPACK_COMPONENTS_ALL sink sink_etc)
  set(CPACK_COMPONENT_SINK_GROUP sink)
  set(CPACK_COMPONENT_SINK_ETC_GROUP sink)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/shoal-sink.service DESTINATION lib/systemd/system COMPONENT sink)
  install(FILES ${PROJECT_SOURCE_DIR}/docs/sink.md ${PROJECT_SOURCE_DIR}/docs/sink-format.md
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/shoal-sink COMPONENT sink)
  # An absolute path, in packages only (as shoald.toml above).
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/shoal-sink.toml DESTINATION /etc/shoal COMPONENT sink_etc
          EXCLUDE_FROM_ALL)
  set(CPACK_DEBIAN_SINK_PACKAGE_NAME shoal-sink)
  set(CPACK_DEBIAN_SINK_PACKAGE_SECTION database)
  set(CPACK_DEBIAN_SINK_DESCRIPTION "Shoal vector database: cold-tier sink
shoal-sink keeps the cold tier of a Shoal mesh's collections: members upload checksummed
segments and push deletes to it over the mesh's authenticated links, and it answers cold
searches, fetches and bootstraps. Its objects live in LMDB or an S3-compatible store
(AWS S3, MinIO, Ceph RGW). Installs the system user shoal-sink with /var/lib/shoal-sink.")
  # Its libraries (libcurl, libsystemd, capnp, sodium, LMDB) come from dpkg-shlibdeps; the
  # maintainer scripts need useradd (passwd) and deb-systemd-helper (init-system-helpers).
  set(CPACK_DEBIAN_SINK_PACKAGE_DEPENDS "passwd, init-system-helpers (>= 1.54~)")
  shoal_deb_maintainer_scripts(shoal_sink_scripts shoal-sink shoal-sink.service shoal-sink "Shoal cold-tier sink"
                               /var/lib/shoal-sink /etc/shoal/sink.cert "the sink's key and objects")
  set(CPACK_DEBIAN_SINK_PACKAGE_CONTROL_EXTRA ${shoal_sink_scripts}
      ${PROJECT_SOURCE_DIR}/packaging/deb/shoal-sink/conffiles)
  set(CPACK_DEBIAN_SINK_PACKAGE_CONTROL_STRICT_PERMISSION ON)
endif()

# What the packages hold, built by scripts/package.sh (`--target shoal_packaged`): only these, so
# that a target no package holds (the simulator, tests, tools in progress) never blocks packaging.
add_custom_target(shoal_packaged)
foreach(t shoal_capi shoal shoal_client shoald shoal-sink)
  if(TARGET ${t})
    add_dependencies(shoal_packaged ${t})
  endif()
endforeach()

include(CPack)
