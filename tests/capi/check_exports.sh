#!/usr/bin/env bash
# Proves libshoal exports exactly the symbols listed in node/capi/exports.txt: nothing missing
# (an app would fail to link) and nothing extra (internals must stay hidden).
set -euo pipefail
lib=$1 list=$2
expected=$(grep -v '^#' "$list" | awk 'NF {print $1}' | sort)
actual=$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | sort)
if [ "$expected" != "$actual" ]; then
  echo "export mismatch (< expected, > actual):"
  diff <(echo "$expected") <(echo "$actual") || true
  exit 1
fi
echo "$(echo "$expected" | wc -l) passed, 0 failed"
