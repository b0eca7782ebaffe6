#!/bin/sh
# tests/node/cli_input_test.sh SHOAL: what a new user's mistakes on the CLI's command line get.
# Proves: `put --meta` takes exactly one key=value per item: another operator (year>=5, a!=3) or a
# second condition (a=1,b=2) is refused with exit 1 naming the item, instead of being stored as
# year=5 or with b=2 silently dropped, and the stored record is unchanged; a value holding ',' is
# refused with the advice to quote it, and the quoted form is stored whole; a bad item's error
# says "metadata", not "filter". A negative or out-of-range count (--limit -1, --batch -1,
# --skip -1, --row -1, -k -1, --dim -3, -k 99999999999) is a usage error (exit 2) naming the
# option, the limit and the value seen, and imports nothing, where --limit -1 used to import the
# whole file and --row -1 asked for row 18446744073709551615. An import that meets a malformed
# line says truly which records are stored: with the default batch none of the batch holding it
# ("records before 0"), with --batch 1 the ones before it, and resuming with the --skip it names
# after fixing the line imports the rest. A JSON line that is not an object says why: a byte
# that is not UTF-8 (with its offset), JSON that stops parsing (where), or another JSON type.
# An import whose --skip passes the end of its input fails naming both numbers (it printed
# "imported 0 records" and exited 0); a --skip exactly at the end (a finished import resumed)
# still succeeds.
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

out=$("$shoal" -d "$d" init); check "init" 0 $?
expect "a new data directory says initialised" "$out" "^initialised $d"
out=$("$shoal" -d "$d" init); check "init again" 0 $?
expect "an existing one says so and is left as it is" "$out" "^already initialised $d"
expect "init --json says whether it created the directory" "$("$shoal" -d "$d" --json init)" '"created":false'
"$shoal" -d "$d" collection create v --dim 3 >/dev/null
"$shoal" -d "$d" put v a --vector 1,0,0 --meta year=2024 >/dev/null; check "put with --meta" 0 $?
before=$("$shoal" -d "$d" --json get v a)

# --meta: one key=value per item.
err=$("$shoal" -d "$d" put v a --vector 0,1,0 --meta 'year>=5' 2>&1 >/dev/null); check "--meta year>=5" 1 $?
expect "--meta with another operator names the item" "$err" "metadata 'year>=5' must be one key=value"
err=$("$shoal" -d "$d" put v a --vector 0,1,0 --meta 'a!=3' 2>&1 >/dev/null); check "--meta a!=3" 1 $?
expect "--meta with != names the item" "$err" "metadata 'a!=3' must be one key=value"
err=$("$shoal" -d "$d" put v a --vector 0,1,0 --meta 'a=1,b=2' 2>&1 >/dev/null); check "--meta a=1,b=2" 1 $?
expect "--meta with two conditions says so" "$err" "got 2 conditions (give --meta once per field)"
err=$("$shoal" -d "$d" put v a --vector 0,1,0 --meta 'note=hello, world' 2>&1 >/dev/null); check "--meta with a bare comma" 1 $?
expect "a bare comma gets the advice to quote" "$err" "metadata 'note=hello, world': .*quote a value"
err=$("$shoal" -d "$d" put v a --vector 0,1,0 --meta 'k=' 2>&1 >/dev/null); check "--meta k=" 1 $?
expect "an empty value is a metadata error, not a filter error" "$err" "metadata 'k=': expected a value, got the end of the item"
after=$("$shoal" -d "$d" --json get v a)
[ "$before" = "$after" ] && echo "ok: refused puts left the record unchanged" ||
  { echo "FAIL: record changed: $before -> $after"; fails=$((fails + 1)); }
"$shoal" -d "$d" put v b --vector 0,1,0 --meta 'note="hello, world"' --meta year=2023 >/dev/null; check "--meta quoted comma" 0 $?
expect "the quoted value is stored whole" "$("$shoal" -d "$d" --json get v b)" '"metadata":{"note":"hello, world","year":2023}'

# Counts: digits only, within the option's type.
printf '{"id":"n1","vector":[1,1,1]}\n{"id":"n2","vector":[1,2,1]}\n' >"$work/two.jsonl"
for opt in "--limit -1" "--batch -1" "--skip -1"; do
  # shellcheck disable=SC2086
  err=$("$shoal" -d "$d" import v "$work/two.jsonl" $opt 2>&1 >/dev/null); check "import $opt" 2 $?
  expect "import $opt names the option, the limit and the value" "$err" "${opt% *}: must be a whole number 0..18446744073709551615, got '-1'"
done
"$shoal" -d "$d" get v n1 >/dev/null 2>&1; check "a refused import stored nothing" 1 $?
err=$("$shoal" -d "$d" search v --query-file "$work/two.jsonl" --row -1 2>&1 >/dev/null); check "search --row -1" 2 $?
expect "--row -1 names the value" "$err" "--row: must be a whole number 0..18446744073709551615, got '-1'"
err=$("$shoal" -d "$d" search v --vector 1,0,0 -k -1 2>&1 >/dev/null); check "search -k -1" 2 $?
expect "-k -1 names the limit" "$err" "-k: must be a whole number 0..4294967295, got '-1'"
err=$("$shoal" -d "$d" search v --vector 1,0,0 -k 99999999999 2>&1 >/dev/null); check "search -k 99999999999" 2 $?
expect "-k too large names the limit" "$err" "-k: must be a whole number 0..4294967295, got '99999999999'"
out=$("$shoal" -d "$d" --json collection create w --dim -3); check "create --dim -3" 2 $?
expect "--dim -3 is a JSON usage error" "$out" '"error":"invalid argument: --dim: must be a whole number 0..4294967295, got .-3.","ok":false,"usage":true'
"$shoal" -d "$d" collection info w >/dev/null 2>&1; check "no collection created by the refused create" 1 $?
printf 'hello world, not vectors\n' >"$work/junk.fvecs"
err=$("$shoal" -d "$d" import v "$work/junk.fvecs" 2>&1 >/dev/null); check "import of a file that is not .fvecs" 1 $?
expect "a wrong .fvecs dimension names the reader's limit" "$err" "announces dimension 1819043176 (this reader takes 1..65536"
# Vector components: decimal floats, spaces and a '+' allowed; the float range named.
"$shoal" -d "$d" put v f1 --vector " +1, 2e-40 ,0" >/dev/null; check "spaces, '+' and a subnormal component" 0 $?
err=$("$shoal" -d "$d" put v f2 --vector 1e39,0,0 2>&1 >/dev/null); check "put --vector 1e39" 1 $?
expect "1e39 names the float range" "$err" "vector component 0 '1e39' is outside the float range (a magnitude of 1.4e-45 .. 3.4e38, or 0)"
err=$("$shoal" -d "$d" put v f2 --vector 0x10,0,0 2>&1 >/dev/null); check "put --vector 0x10" 1 $?
expect "hex is not taken for a number" "$err" "vector component 0 '0x10' is not a decimal number"
"$shoal" -d "$d" get v f2 >/dev/null 2>&1; check "a refused put stored nothing" 1 $?
err=$("$shoal" -d "$d" search v 2>&1 >/dev/null); check "search without a query is a usage error" 2 $?
expect "search without a query says what to give" "$err" "search needs a query: give --vector or --query-file"
out=$("$shoal" -d "$d" search v --vector 1,0,0 -k 1 --ef 20); check "valid counts still work" 0 $?
expect "the search answers" "$out" "^a	"

# A malformed third line: what the error says is stored is what is stored.
printf '{"id":"i1","vector":[1,0,1]}\n{"id":"i2","vector":[0,1,1]}\nnot json\n{"id":"i4","vector":[1,1,0]}\n' >"$work/bad.jsonl"
"$shoal" -d "$d" collection create imp --dim 3 >/dev/null
err=$("$shoal" -d "$d" import imp "$work/bad.jsonl" 2>&1 >/dev/null); check "import of a malformed line" 1 $?
expect "one batch: nothing stored, and the error says so" "$err" "line 3: not a JSON object: invalid JSON at offset 1 of 8 \[records before 0 are stored; resume with --skip 0\]"
expect "count after the failed batch" "$("$shoal" -d "$d" count imp)" "^0$"
err=$("$shoal" -d "$d" import imp "$work/bad.jsonl" --batch 1 2>&1 >/dev/null); check "import --batch 1 of a malformed line" 1 $?
expect "batches of one: the two before it stored, and the error says so" "$err" "records before 2 are stored; resume with --skip 2"
expect "count after batches of one" "$("$shoal" -d "$d" count imp)" "^2$"
sed -i 's/^not json$/{"id":"i3","vector":[0,0,1]}/' "$work/bad.jsonl"
out=$("$shoal" -d "$d" --json import imp "$work/bad.jsonl" --skip 2); check "resume with the --skip named" 0 $?
expect "the resumed import wrote the rest" "$out" '"written":2'
expect "count after the resume" "$("$shoal" -d "$d" count imp)" "^4$"

# Why a line is not a JSON object.
printf '{"id":"\377","vector":[1,0,0]}\n' >"$work/utf.jsonl"
err=$("$shoal" -d "$d" import imp "$work/utf.jsonl" 2>&1 >/dev/null); check "import of a non-UTF-8 line" 1 $?
expect "a non-UTF-8 byte is named with its offset" "$err" "line 1: not a JSON object: byte 0xff at offset 7 is not valid UTF-8"
printf '{"id":"t","vector":[1,0\n' >"$work/cut.jsonl"
err=$("$shoal" -d "$d" import imp "$work/cut.jsonl" 2>&1 >/dev/null); check "import of a cut line" 1 $?
expect "JSON that stops parsing says where" "$err" "line 1: not a JSON object: invalid JSON at offset 23 of 23"
printf '[1,0,0]\n' >"$work/arr.jsonl"
err=$("$shoal" -d "$d" import imp "$work/arr.jsonl" 2>&1 >/dev/null); check "import of an array line" 1 $?
expect "another JSON type is named" "$err" "line 1: not a JSON object, got array"
expect "count unchanged by the refused imports" "$("$shoal" -d "$d" count imp)" "^4$"

# --skip past the end.
err=$("$shoal" -d "$d" import imp "$work/bad.jsonl" --skip 99 2>&1 >/dev/null); check "import --skip past the end" 1 $?
expect "--skip past the end names both numbers" "$err" "invalid argument: --skip 99 passes the end of the input, which has 4 records; nothing imported"
out=$("$shoal" -d "$d" --json import imp "$work/bad.jsonl" --skip 4); check "import --skip at the end" 0 $?
expect "--skip at the end imports nothing, successfully" "$out" '"imported":0'

if [ "$fails" -ne 0 ]; then echo "$fails failed"; exit 1; fi
