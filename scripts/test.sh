#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test.sh -- the whole test suite: install/build (scripts/setup.sh), then every test through
# `meson test`, then a clang build of the whole tree and its quick tests (see below). Exits
# non-zero on any failure. CI (.ci/run) runs exactly this.
#
# Size knob: LRVM_TEST_SCALE multiplies torture sizes (kills, operations). CI and the default
# use 1; by hand, e.g. LRVM_TEST_SCALE=50 bash scripts/test.sh for ~10 000 crash kills.
#
# First it checks that every C source is formatted as .clang-format says
# (scripts/check-format.sh) and fails the suite if one is not; LRVM_CHECK_FORMAT=0 skips that
# (e.g. on a machine whose clang-format is not version 14).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${LRVM_CHECK_FORMAT:-1}" != 0 ]; then
  bash scripts/check-format.sh
fi
BUILD_DIR=${BUILD_DIR:-build}
export LRVM_TEST_SCALE=${LRVM_TEST_SCALE:-1}
meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@"

# The same tree built with clang (warnings are errors there too), into build-clang. Every
# target is compiled; the quick suites run. The rest -- crash tortures, the programs run under
# the shim, benchmark smoke runs -- test the same sources and are left to the gcc run above to
# keep CI time down; the list is printed. Skipped when tests were named on the command line,
# for another BUILD_DIR (e.g. a sanitizer build), or with LRVM_CLANG=0.
if [ $# -eq 0 ] && [ "$BUILD_DIR" = build ] && [ "${LRVM_CLANG:-1}" != 0 ]; then
  start=$SECONDS
  CC=clang BUILD_DIR=build-clang MESON_ARGS= bash scripts/setup.sh
  clang_tests=(install_check test_api_records test_api_init test_api_map test_api_txn
               test_api_stats test_api_segment test_map_file classic_program core_smoke heap_api track_api
               vmprim-trap vmprim-prot vmprim-unpriv vmprim-dirty_sparse
               preload_env preload_lockset preload_roots rvmutl_image)
  skipped=$(meson test -C build-clang --no-rebuild --list 2>/dev/null | grep ' / ' | sed 's/.* \/ //' |
            grep -vxF -f <(printf '%s\n' "${clang_tests[@]}") | tr '\n' ' ')
  echo "test.sh: clang build: running ${#clang_tests[@]} quick tests; left to the gcc run: $skipped"
  meson test -C build-clang --print-errorlogs --num-processes 2 "${clang_tests[@]}"
  echo "test.sh: clang build and tests took $((SECONDS - start)) s"
fi
