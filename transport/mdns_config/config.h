/* transport/mdns_config/config.h: the config.h that libmdnsd 0.12's installed headers include.
 *
 * Role: Debian's libmdnsd-dev ships 1035.h and mdnsd.h, which `#include "config.h"` (a file of
 * the library's own autoconf build that the package does not install). This shim answers the two
 * questions those headers ask on Linux. Only transport/mdns_glue.c sees it (its directory is a
 * PRIVATE include path of shoal_transport_discovery), so no other "config.h" is shadowed.
 * Thread rules: none (macros only).
 */
#ifndef SHOAL_TRANSPORT_MDNS_CONFIG_H_
#define SHOAL_TRANSPORT_MDNS_CONFIG_H_

#define HAVE_NETINET_IN_H 1
#define HAVE_SYS_SOCKET_H 1

#endif /* SHOAL_TRANSPORT_MDNS_CONFIG_H_ */
