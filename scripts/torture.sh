#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# torture.sh -- the differential torture, large, by hand (docs/torture.md explains it).
#
#   bash scripts/torture.sh [--sessions N] [--seed FIRST] [--runs N] [--backend B|all]
#                           [--flush 0|1|random] [--commit SPEC|random] [--aware 0|1|random]
#                           [--dir DIR] [--timeout-ms N] [--keep 1]
#
# Runs N sessions with seeds FIRST, FIRST+1, ...: each session is a fresh segment and --runs
# runs (default 8) of tests/torture/torture_prog under the shim, ended by clean exits or
# SIGKILLs at random, plus a last run that only checks. Unless given, each session's backend
# (all three DIRTY backends), LRVM_FLUSH, LRVM_COMMIT and aware mode come from its seed.
# Every failure prints the program's message and the command that reruns that session; the
# script goes on with the next session and exits 1 at the end if any failed.
# The work runs under nice (the machine is shared); builds ./build first if needed.
#
# Examples:
#   bash scripts/torture.sh --sessions 1000                 # ~9 000 runs over every setting
#   bash scripts/torture.sh --sessions 200 --backend uffd-sigbus --flush 0
#   bash scripts/torture.sh --seed 4711 --runs 8 --backend mprotect --commit none --aware 1
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [[ ! -x "$BUILD_DIR/tests/torture/torture_driver" ]]; then
  bash scripts/setup.sh
fi
meson compile -C "$BUILD_DIR" tests/torture/torture_driver tests/torture/torture_prog \
  preload/lrvm-preload >/dev/null

dir=""
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --sessions|--seed|--runs|--backend|--flush|--commit|--aware|--timeout-ms|--keep)
      [[ $# -ge 2 ]] || { echo "torture.sh: $1 needs a value" >&2; exit 2; }
      args+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "torture.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z "$dir" ]]; then
  dir=$(mktemp -d /tmp/lrvm-torture-XXXXXX)
fi
echo "torture.sh: sessions in $dir (failed ones are kept there)"
exec nice -n 10 "$BUILD_DIR/tests/torture/torture_driver" \
  --prog "$BUILD_DIR/tests/torture/torture_prog" \
  --shim "$BUILD_DIR/preload/liblrvm-preload.so" \
  --dir "$dir" "${args[@]}"
