#!/bin/sh
# tests/node/cli_records_test.sh SHOAL: the CLI's command line and its record export/import.
# Proves: `shoal --version` prints the version and exits 0; usage errors (an unknown option, a
# missing argument, an unknown command) exit 2, with a JSON error under --json even when --json
# comes last or the parse stopped early; --json and -d are accepted after the command; `export`
# writes each live record once as a JSON line (winning vector, metadata, model), leaves deleted
# records and the records of a dropped-then-recreated collection out, and `import` of that file
# into another collection gives identical records (checked with `get`) and search results; a
# malformed line fails with exit 1 naming the line and stores nothing of its batch; exporting an
# unknown collection is code 258 (not found: no such collection).
set -u
shoal=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
d=$work/data
check() {  # check DESCRIPTION EXPECTED_RC ACTUAL_RC
  if [ "$2" != "$3" ]; then echo "FAIL: $1: exit $3, expected $2"; fails=$((fails + 1)); else echo "ok: $1"; fi
}
expect() {  # expect DESCRIPTION TEXT PATTERN
  if echo "$2" | grep -q -- "$3"; then echo "ok: $1"; else echo "FAIL: $1: '$2' lacks '$3'"; fails=$((fails + 1)); fi
}

out=$("$shoal" --version); check "--version" 0 $?
expect "--version output" "$out" "^shoal [0-9]*\.[0-9]*\.[0-9]*$"
"$shoal" --no-such-option init 2>/dev/null; check "unknown option is a usage error" 2 $?
"$shoal" -d "$d" put v 2>/dev/null; check "missing arguments are a usage error" 2 $?
"$shoal" -d "$d" frobnicate 2>/dev/null; check "unknown command is a usage error" 2 $?
out=$("$shoal" -d "$d" search --json); check "usage error with --json last" 2 $?
expect "usage error is JSON" "$out" '^{"code":1,"error":"invalid argument: .*","ok":false,"usage":true}$'
out=$("$shoal" -d "$d" collection create v --dim 3 --json --metric hamming); check "bad metric" 1 $?
expect "request error is JSON" "$out" '"ok":false'

"$shoal" -d "$d" init >/dev/null; check "init" 0 $?
out=$("$shoal" collection create v --dim 3 -d "$d" --json); check "-d and --json after the command" 0 $?
expect "created as JSON" "$out" '"created":"v"'
"$shoal" -d "$d" put v a --vector 1,0,0 --meta color=red --meta year=2024 --meta ok=true --model m1 >/dev/null
"$shoal" -d "$d" put v b --vector 0,1,0.5 --meta note='"two words"' >/dev/null
"$shoal" -d "$d" put v c --vector 0,0,1 >/dev/null
"$shoal" -d "$d" put v a --vector 1,0.25,0 --meta color=blue --model m2 >/dev/null   # replaces a
"$shoal" -d "$d" delete v c >/dev/null; check "delete" 0 $?

"$shoal" -d "$d" export v >"$work/v.jsonl"; check "export to stdout" 0 $?
[ "$(wc -l <"$work/v.jsonl")" -eq 2 ] || { echo "FAIL: export has $(wc -l <"$work/v.jsonl") lines, want 2"; fails=$((fails + 1)); }
expect "the replaced value is exported" "$(grep '"id":"a"' "$work/v.jsonl")" '"metadata":{"color":"blue"},"model":"m2","vector":\[1.0,0.25,0.0\]'
if grep -q '"id":"c"' "$work/v.jsonl"; then echo "FAIL: a deleted record was exported"; fails=$((fails + 1)); fi
out=$("$shoal" -d "$d" --json export v "$work/v2.jsonl"); check "export to a file" 0 $?
expect "export summary" "$out" '"exported":2'
cmp -s "$work/v.jsonl" "$work/v2.jsonl" || { echo "FAIL: stdout and file exports differ"; fails=$((fails + 1)); }

"$shoal" -d "$d" collection create w --dim 3 >/dev/null
out=$("$shoal" -d "$d" --json import w "$work/v.jsonl"); check "import" 0 $?
expect "import summary" "$out" '"imported":2'
for id in a b; do
  g1=$("$shoal" -d "$d" --json get v $id | sed 's/"clock":"[^"]*"//; s/"dot":"[^"]*"//')
  g2=$("$shoal" -d "$d" --json get w $id | sed 's/"clock":"[^"]*"//; s/"dot":"[^"]*"//')
  [ "$g1" = "$g2" ] && echo "ok: record $id identical after import" ||
    { echo "FAIL: record $id differs: $g1 vs $g2"; fails=$((fails + 1)); }
done
s1=$("$shoal" -d "$d" --json search v --vector 1,0,0 -k 2 | sed 's/"latency_us":[0-9]*//')
s2=$("$shoal" -d "$d" --json search w --vector 1,0,0 -k 2 | sed 's/"latency_us":[0-9]*//')
[ "$s1" = "$s2" ] && echo "ok: same search results" || { echo "FAIL: search differs: $s1 vs $s2"; fails=$((fails + 1)); }

# Standard input, a blank line, and a malformed line: nothing of its batch is stored.
printf '{"id":"x","vector":[1,1,1]}\n\n{"id":"y","vector":[1,"2",3]}\n' |
  "$shoal" -d "$d" import w - 2>"$work/err"; check "malformed line" 1 $?
expect "the error names the line" "$(cat "$work/err")" 'line 3: vector component 1 is not a number'
"$shoal" -d "$d" get w x >/dev/null 2>&1; check "nothing of the failed batch stored" 1 $?

# A dropped and re-created collection exports only what was written after.
"$shoal" -d "$d" collection drop v >/dev/null
"$shoal" -d "$d" collection create v --dim 3 >/dev/null
"$shoal" -d "$d" put v fresh --vector 0,1,0 >/dev/null
out=$("$shoal" -d "$d" export v); check "export after re-create" 0 $?
[ "$(echo "$out" | wc -l)" -eq 1 ] && expect "only the new record" "$out" '"id":"fresh"' ||
  { echo "FAIL: export after re-create: $out"; fails=$((fails + 1)); }
out=$("$shoal" -d "$d" --json export nope "$work/n.jsonl"); check "unknown collection" 1 $?
expect "no such collection code" "$out" '"code":258'

if [ "$fails" -ne 0 ]; then echo "$fails failed"; exit 1; fi
echo "all passed"
