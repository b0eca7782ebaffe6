# Debian packages through CPack (issue 17; docs/operations.md, "Debian packages"). Included by the
# top-level CMakeLists.txt after every install rule, and only when Shoal is the top-level project.
#
# One package per install component group (the components are named by the install rules):
#   libshoal0     component runtime   the shared library (soname libshoal.so.0), shlibs, ldconfig
#   libshoal-dev  component dev       shoal.h, libshoal.so, shoal.pc, the CMake package files
#   shoal         components tools    the CLI, the daemon shoald with its systemd unit
#                 and doc             (packaging/README.md), the docs, the system
#                                     user `shoal` (packaging/deb/shoal/postinst)
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
set(CPACK_COMPONENTS_ALL runtime dev tools doc)
set(CPACK_COMPONENT_RUNTIME_GROUP lib)
set(CPACK_COMPONENT_DEV_GROUP dev)
set(CPACK_COMPONENT_TOOLS_GROUP tools)
set(CPACK_COMPONENT_DOC_GROUP tools)
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

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME shoal)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION database)
set(CPACK_DEBIAN_TOOLS_DESCRIPTION "Shoal vector database: command-line tool and documentation
The shoal command creates and inspects data directories, imports datasets, searches, backs up,
restores and compacts, and manages mesh certificates. Installs the system user shoal with the
data directory /var/lib/shoal for the daemon.")
# The postinst creates the system user with useradd (package passwd, priority required).
set(CPACK_DEBIAN_TOOLS_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/deb/shoal/postinst
    ${PROJECT_SOURCE_DIR}/packaging/deb/shoal/postrm)
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# --- The daemon's place (packaging/README.md): its unit file lands in the `shoal` package from
# here once the shoald target exists (the binary through its own install rule, COMPONENT tools).
# TODO(soon): enable and start the unit from packaging/deb/shoal/postinst (deb-systemd-helper)
# once it ships.
if(TARGET shoald AND EXISTS ${PROJECT_SOURCE_DIR}/packaging/shoald.service)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/shoald.service
          DESTINATION lib/systemd/system COMPONENT tools)
endif()

include(CPack)
