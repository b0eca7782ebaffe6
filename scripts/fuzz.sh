#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan+UBSan) into build-fuzz and runs each for N
# seconds (default 60), starting from a generated seed corpus kept in build-fuzz/corpus/.
# Crashing inputs are written to build-fuzz/artifacts/<target>/; reproduce one with
#   build-fuzz/tests/fuzz/<target> <file>
# Usage: scripts/fuzz.sh [seconds] [target...]   (targets: fuzz_transport_decode fuzz_crdt_delta
#   fuzz_security_cert fuzz_security_handshake fuzz_mdns_packet fuzz_sink_segment fuzz_sink_service;
#   the security, mDNS and sink targets' seeds are committed in tests/fuzz/corpus/<target>/)
# Before fuzzing, fuzz_mdns_packet and fuzz_sink_service replay their committed regressions
# (tests/fuzz/regressions/mdns_*.bin, sink_service_*.bin). A crash, a UBSan report,
# or one input running longer than 10 s (a hang) fails the script. CI: scripts/fuzz.sh 25.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_transport_decode fuzz_crdt_delta fuzz_security_cert fuzz_security_handshake
           fuzz_mdns_packet fuzz_sink_segment fuzz_sink_service)
fi
build="$root/build-fuzz"

cmake -S "$root" -B "$build" -DSHOAL_FUZZ=ON -DSHOAL_ASAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14 \
  -DSHOAL_BUILD_EXAMPLES=OFF -DSHOAL_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" shoal_fuzz_seed_corpus

mkdir -p "$build/corpus/fuzz_transport_decode" "$build/corpus/fuzz_crdt_delta"
"$build/tests/fuzz/shoal_fuzz_seed_corpus" "$build/corpus/fuzz_transport_decode" \
  "$build/corpus/fuzz_crdt_delta"
for t in "${targets[@]}"; do
  if [ -d "$root/tests/fuzz/corpus/$t" ]; then
    mkdir -p "$build/corpus/$t" && cp -n "$root/tests/fuzz/corpus/$t/"* "$build/corpus/$t/"
  fi
done

# Committed regressions replayed by target (mdns_*.bin; the crdt_delta_*.bin files document
# findings that the node handles above the decoder, see fuzz_crdt_delta.cpp).
regressions_of() {
  case "$1" in
    fuzz_mdns_packet) compgen -G "$root/tests/fuzz/regressions/mdns_*.bin" || true ;;
    fuzz_sink_service) compgen -G "$root/tests/fuzz/regressions/sink_service_*.bin" || true ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  mkdir -p "$build/artifacts/$t"
  mapfile -t regressions < <(regressions_of "$t")
  if [ ${#regressions[@]} -gt 0 ]; then
    echo "== $t: ${#regressions[@]} regressions"
    if ! "$build/tests/fuzz/$t" -timeout=10 "${regressions[@]}"; then
      echo "== $t: a regression FAILED"
      status=1
      continue
    fi
  fi
  echo "== $t: ${seconds}s"
  if ! "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$t/" "$build/corpus/$t"; then
    echo "== $t: FAILED (see $build/artifacts/$t/)"
    status=1
  fi
done
exit $status
