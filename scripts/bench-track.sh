#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-track.sh -- build (scripts/setup.sh), then run track-bench: auto-tracked regions per
# DIRTY backend, (a) sparse log bytes vs whole pages, (b) commit cost per dirty page,
# (c) pause vs commit for 64 MiB dirty, (d) explicit set_range transactions vs tracked writes.
# Output goes to the terminal and to bench/out/track.txt; PASS/FAIL lines carry the targets.
# Extra arguments go to track-bench (--quick, --backend NAME, --dir DIR for log + segment;
# the run needs ~600 MiB there and ~1.5 GiB of memory).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
mkdir -p bench/out
"$BUILD_DIR/bench/track/track-bench" "$@" | tee bench/out/track.txt
! grep -q FAIL bench/out/track.txt
