#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-vmprim.sh -- build (scripts/setup.sh), then run vmprim-bench: Appel & Li's table and
# the dirty-tracking cycle per backend. Prints the tables and writes bench/out/vmprim.csv.
# Extra arguments go to vmprim-bench (e.g. --full for 3x more repetitions).
# Exit status 2 means the ratio target (wp-async <= 1/5 of mprotect at k=4096) was missed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
mkdir -p bench/out
exec "$BUILD_DIR/bench/vmprim/vmprim-bench" --csv bench/out/vmprim.csv "$@"
