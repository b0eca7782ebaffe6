#!/usr/bin/env bash
# tests/transport/mdns_netns_test.sh: mDNS discovery between network namespaces, with no
# configured addresses. Usage: mdns_netns_test.sh <path to shoal-discover>
#
# Proves, on real multicast between separate processes: each device finds every other with the
# announced TXT values (version, mesh hash) and its namespace's address, never itself; two
# processes in one namespace find each other (multicast loopback); a stopped device's goodbye
# is reported as lost within seconds, well before its 60 s TTL; a device killed with SIGKILL
# (no goodbye) is reported lost when its 3 s TTL runs out.
#
# Topology: a bridge in its own namespace and three device namespaces, each joined to it by a
# veth pair (10.77.x.1-3/24). Every name carries this shell's PID; a trap removes them all.
# Nothing is sent in the root namespace. Needs root and `ip netns`; exits 77 (ctest SKIP)
# otherwise.
set -u

bin=${1:?usage: mdns_netns_test.sh <shoal-discover>}
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; for f in "$work"/*.out; do echo "--- $f"; cat "$f"; done; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "iproute2 (ip) not installed"
[ -x "$bin" ] || { echo "FAIL: $bin is not executable"; exit 1; }

tag=$$
br=shbr$tag
ns=(shn1$tag shn2$tag shn3$tag)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  for n in "${ns[@]}" "$br"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$br" 2>/dev/null || skip "ip netns add failed (no permission for namespaces here)"
ip -n "$br" link add br0 type bridge || fail "bridge"
ip -n "$br" link set br0 up
subnet=$(( (tag % 200) + 20 ))  # 10.77.<subnet>.0/24, private to these namespaces anyway
for i in 1 2 3; do
  n=${ns[$((i - 1))]}
  ip netns add "$n" || fail "netns $n"
  ip link add "shv$i$tag" type veth peer name "shp$i$tag" || fail "veth $i"
  ip link set "shv$i$tag" netns "$n"
  ip link set "shp$i$tag" netns "$br"
  ip -n "$br" link set "shp$i$tag" master br0
  ip -n "$br" link set "shp$i$tag" up
  ip -n "$n" link set lo up
  ip -n "$n" addr add "10.77.$subnet.$i/24" dev "shv$i$tag"
  ip -n "$n" link set "shv$i$tag" up
  ip -n "$n" route add 224.0.0.0/4 dev "shv$i$tag"
done
sleep 1  # links up, duplicate address detection out of the way

mesh=0123456789abcdef
ida=$(printf 'a%.0s' {1..64}); idb=$(printf 'b%.0s' {1..64}); idc=$(printf 'c%.0s' {1..64})
idd=$(printf 'd%.0s' {1..64}); ide=$(printf 'e%.0s' {1..64})

# start <name> <ns index> <id> <port> <version> <ttl_s>
start() {
  ip netns exec "${ns[$2]}" "$bin" --id "$3" --mesh $mesh --port "$4" --version "$5" \
    --interface "10.77.$subnet.$(( $2 + 1 ))" --refresh-ms 1000 --ttl-s "$6" \
    >"$work/$1.out" 2>&1 &
  pids+=($!)
  eval "pid_$1=$!"
}
# wait_for <file> <pattern> <seconds>
wait_for() {
  local end=$(( SECONDS + $3 ))
  while (( SECONDS < end )); do
    grep -q -- "$2" "$work/$1.out" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

start a 0 "$ida" 7001 3 60
start a2 0 "$ide" 7005 3 60   # a second process in namespace 1
start b 1 "$idb" 7002 4 60
start c 2 "$idc" 7003 5 60

declare -A addr=([a]=1 [a2]=1 [b]=2 [c]=3)
declare -A port=([a]=7001 [a2]=7005 [b]=7002 [c]=7003)
declare -A ver=([a]=3 [a2]=3 [b]=4 [c]=5)
declare -A ident=([a]=$ida [a2]=$ide [b]=$idb [c]=$idc)
for me in a a2 b c; do
  for other in a a2 b c; do
    [ "$me" = "$other" ] && continue
    line="found ${ident[$other]} v=${ver[$other]} mesh=$mesh addr=10.77.$subnet.${addr[$other]} port=${port[$other]}"
    wait_for "$me" "$line" 10 || fail "$me did not see $other as: $line"
  done
  if grep -q "found ${ident[$me]}" "$work/$me.out"; then fail "$me reported itself"; fi
done
echo "ok: every device found the three others with their TXT values and addresses"

# Goodbye: c stops (SIGTERM -> stop()); a and b report it lost long before its 60 s TTL.
t0=$SECONDS
kill -TERM "$pid_c"
for me in a a2 b; do
  wait_for "$me" "lost $idc" 5 || fail "$me did not report c lost after its goodbye"
done
wait_for c "stopped" 5 || fail "c did not stop"
echo "ok: goodbye reported as lost after $(( SECONDS - t0 )) s (TTL 60 s)"

# Expiry: d (TTL 3 s) is killed without a goodbye; b reports it lost once the TTL runs out.
start d 2 "$idd" 7004 6 3
wait_for b "found $idd v=6" 10 || fail "b did not see d"
kill -KILL "$pid_d"
t0=$SECONDS
wait_for b "lost $idd" 10 || fail "b did not report d lost after its TTL"
(( SECONDS - t0 >= 1 )) || fail "d was reported lost before its TTL could run out"
echo "ok: a silent device was reported lost after $(( SECONDS - t0 )) s (TTL 3 s)"

for me in a a2 b; do
  grep -q "lost $ida\|lost $idb" "$work/$me.out" && fail "$me lost a live peer"
done
echo "PASS"
