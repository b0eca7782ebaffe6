#!/bin/sh
# tests/node/mesh_cli_test.sh SHOAL: `shoal mesh init|enrol|renew|revoke` end to end in a temp dir:
# the files exist with mode 0600, init refuses to overwrite, enrol refuses a bad role (exit 2).
set -u
shoal=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
check() {  # check DESCRIPTION EXPECTED_RC ACTUAL_RC
  if [ "$2" != "$3" ]; then echo "FAIL: $1: exit $3, expected $2"; fails=$((fails + 1)); else echo "ok: $1"; fi
}
mode_is_600() {
  if [ ! -f "$1" ]; then echo "FAIL: $1 missing"; fails=$((fails + 1)); return; fi
  m=$(stat -c %a "$1")
  if [ "$m" != 600 ]; then echo "FAIL: $1 has mode $m"; fails=$((fails + 1)); else echo "ok: $1 mode 600"; fi
}
# A valid Ed25519 point: the public key of a freshly made mesh's authority is one, so make a
# second mesh and use its authority key as the "device".
"$shoal" mesh init --dir "$work/other" >/dev/null; check "init other" 0 $?
dev=$("$shoal" --json mesh init --dir "$work/other2" | sed -n 's/.*"authority_key":"\([0-9a-f]*\)".*/\1/p')
[ ${#dev} = 64 ] || { echo "FAIL: no authority key in JSON output"; fails=$((fails + 1)); }

out=$("$shoal" mesh init --dir "$work/mesh"); check "init" 0 $?
echo "$out" | grep -q "offline" || { echo "FAIL: init output does not say to keep the key offline"; fails=$((fails + 1)); }
mode_is_600 "$work/mesh/authority.key"
mode_is_600 "$work/mesh/mesh.id"
"$shoal" mesh init --dir "$work/mesh" 2>/dev/null; check "init refuses to overwrite" 1 $?

"$shoal" mesh enrol --mesh "$work/mesh" --device-key "$dev" --role member --grant docs:rw \
  --grant 'photos:r' --days 365 --out "$work/dev.cert"; check "enrol" 0 $?
mode_is_600 "$work/dev.cert"
"$shoal" mesh enrol --mesh "$work/mesh" --device-key "$dev" --role admin --grant docs:rw \
  --days 365 --out "$work/bad.cert" 2>/dev/null; check "enrol refuses a bad role" 2 $?
"$shoal" mesh enrol --mesh "$work/mesh" --device-key "$dev" --role member --grant docs:x \
  --days 365 --out "$work/bad.cert" 2>/dev/null; check "enrol refuses a bad grant" 2 $?
"$shoal" mesh enrol --mesh "$work/mesh" --device-key "$dev" --role member --days 0 \
  --out "$work/bad.cert" 2>/dev/null; check "enrol refuses --days 0" 2 $?
"$shoal" mesh enrol --mesh "$work/mesh" --device-key abcd --role member --days 1 \
  --out "$work/bad.cert" 2>/dev/null; check "enrol refuses a short key" 2 $?
[ ! -e "$work/bad.cert" ] || { echo "FAIL: a refused enrol wrote a file"; fails=$((fails + 1)); }
"$shoal" mesh enrol --mesh "$work/mesh" --device-key "$dev" --role member --days 1 \
  --out "$work/dev.cert" 2>/dev/null; check "enrol refuses to overwrite" 1 $?

"$shoal" mesh renew --mesh "$work/mesh" --cert "$work/dev.cert" --days 30 --out "$work/dev2.cert"
check "renew" 0 $?
mode_is_600 "$work/dev2.cert"
"$shoal" mesh renew --mesh "$work/other" --cert "$work/dev.cert" --days 30 --out "$work/dev3.cert" 2>/dev/null
check "renew refuses another mesh's certificate" 1 $?

"$shoal" mesh revoke --mesh "$work/mesh" --device-key "$dev" --out "$work/dev.rev"; check "revoke" 0 $?
mode_is_600 "$work/dev.rev"
head -c 4 "$work/dev.rev" | grep -q SHRV || { echo "FAIL: revocation file lacks its magic"; fails=$((fails + 1)); }

[ "$fails" = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all mesh CLI checks passed"
