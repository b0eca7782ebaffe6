#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs Shoal's main job: a mesh of three gateways, each
# a real shoald with its own data directory, on the embedded default data (a 10,000-image subset
# of Debian's Fashion-MNIST). As root the gateways live in network namespaces and find each other
# by mDNS; otherwise they run on loopback with configured addresses. Gateway 1 imports the
# images, gateway 2 answers searches, gateway 3 is cut off and written on both sides, then the
# mesh heals. The last line says whether it converged and whether anything was lost or came back:
#   demo gateways=3 discovered=6 converged=yes lost=0 resurrected=0 converge_ms=...
# Extra arguments go to shoal-demo (--images N, --gateways N, --mode loopback|netns).
# The embedded benchmark that used to run here is scripts/bench.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" build
exec "$here/build/node/daemon/shoal-demo" --shoald "$here/build/node/daemon/shoald" \
  --dataset /usr/share/datasets/fashion-mnist "$@"
