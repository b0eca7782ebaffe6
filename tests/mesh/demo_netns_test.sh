#!/bin/sh
# tests/mesh/demo_netns_test.sh: the demo in network namespaces (issue 13, "mDNS discovery between
# network namespaces with no configured addresses"; issue 14's run command): three shoald gateways,
# each in its own namespace on a bridge, find each other by mDNS alone (no peer is configured),
# sync 500 images, survive a real partition (a veth link down) with writes and deletes on both
# sides, and converge with nothing lost or resurrected. Skips (77) when not root or when
# namespaces cannot be made.  usage: demo_netns_test.sh SHOAL_DEMO SHOALD WORKDIR
set -eu
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root to create network namespaces"; exit 77; fi
if ! ip netns add shoal-probe-$$ 2>/dev/null; then echo "SKIP: cannot create network namespaces"; exit 77; fi
ip netns del shoal-probe-$$
out=$("$1" --shoald "$2" --mode netns --images 500 --work "$3")
echo "$out"
echo "$out" | tail -n 1 | grep -Eq '^demo gateways=3 discovered=[1-9][0-9]* converged=yes lost=0 resurrected=0 ' || {
  echo "FAIL: the demo did not discover, converge and keep everything"; exit 1; }
