#!/usr/bin/env bash
# bench/client/shoald_server.sh ROOT SOCKET: a real shoald for bench_client (the server program it
# starts). Makes a mesh authority and a device certificate under ROOT with the CLI, writes a TOML
# file (loopback listen port from the kernel, no discovery, no metrics, the local API on SOCKET,
# every other key at its default; SHOAL_BENCH_READ_THREADS sets api.read_threads), starts shoald, prints "ready" once shoald is ready, and stops it
# with SIGTERM (a clean stop) when its stdin closes, as bench_client expects.
# Needs SHOAL (the CLI) and SHOALD (the daemon) in the environment (scripts/bench-client.sh).
set -euo pipefail
root=$1
sock=$2
: "${SHOAL:?the path of the shoal CLI}" "${SHOALD:?the path of shoald}"
mkdir -p "$root"
"$SHOAL" mesh init --dir "$root/mesh" >/dev/null
cat > "$root/shoald.toml" <<TOML
[node]
data_dir = "$root/data"
certificate = "$root/data/device.cert"
log_level = "warn"

[mesh]
listen = "127.0.0.1:0"
discovery = false

[api]
socket = "$sock"
socket_mode = "0600"
${SHOAL_BENCH_READ_THREADS:+read_threads = $SHOAL_BENCH_READ_THREADS}

[metrics]
enabled = false
TOML
key=$("$SHOALD" --config "$root/shoald.toml" --print-device-key)
"$SHOAL" mesh enrol --mesh "$root/mesh" --device-key "$key" --role member --grant '*:rw' --days 30 \
  --out "$root/data/device.cert" >/dev/null
coproc daemon { exec "$SHOALD" --config "$root/shoald.toml" 2>"$root/shoald.log"; }
pid=$daemon_PID
read -r line <&"${daemon[0]}" || true
case "$line" in
  "shoald: ready"*) echo ready ;;
  *) echo "shoald_server: shoald did not start: $line $(cat "$root/shoald.log")" >&2; exit 1 ;;
esac
cat >/dev/null || true
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
