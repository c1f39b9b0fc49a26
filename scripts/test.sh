#!/usr/bin/env bash
# test.sh -- the whole test suite: install/build (scripts/setup.sh), then every test through
# `meson test`. Exits non-zero on any failure. CI (.ci/run) runs exactly this.
#
# Size knob: LRVM_TEST_SCALE multiplies torture sizes (kills, operations). CI and the default
# use 1; by hand, e.g. LRVM_TEST_SCALE=50 bash scripts/test.sh for ~10 000 crash kills.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
export LRVM_TEST_SCALE=${LRVM_TEST_SCALE:-1}
meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@"
