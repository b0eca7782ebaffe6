#!/usr/bin/env bash
# Proves libshoal exports exactly the symbols listed in node/capi/exports.txt: nothing missing
# (an app would fail to link) and nothing extra (internals must stay hidden), each under the
# version node of the release that first shipped it (exports.txt "0.2.0" -> SHOAL_0.2 in
# libshoal.map), so a symbol added later cannot slip into an older node.
set -euo pipefail
lib=$1 list=$2
expected=$(grep -v '^#' "$list" | awk 'NF {split($2, v, "."); print $1 "@SHOAL_" v[1] "." v[2]}' | sort)
# nm prints defined, versioned symbols as name@@NODE (the default version); some binutils need
# --with-symbol-versions to print them at all.
actual=$(nm -D --defined-only --with-symbol-versions "$lib" 2>/dev/null ||
         nm -D --defined-only "$lib")
actual=$(echo "$actual" | awk '$2 == "T" {sub(/@@/, "@", $3); print $3}' | sort)
if [ "$expected" != "$actual" ]; then
  echo "export mismatch (< expected, > actual):"
  diff <(echo "$expected") <(echo "$actual") || true
  exit 1
fi
echo "$(echo "$expected" | wc -l) passed, 0 failed"
