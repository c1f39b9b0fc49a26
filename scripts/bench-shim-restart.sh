#!/usr/bin/env bash
# bench-shim-restart.sh -- build (scripts/setup.sh), then run shim-restart-bench: restart time
# of an unmodified program under liblrvm-preload.so vs heap size (segment mapped vs read vs no
# shim), and the pause of a signal commit with 64 MiB dirty, all in one run. Output goes to
# the terminal and to bench/out/shim-restart.txt.
# Arguments: heap sizes in MiB (default 64 256 1024). BENCH_DIR: where the segment and log go
# (default a fresh directory under /var/tmp; needs ~2.5 x the largest size of disk).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/lrvm-shim-bench-XXXXXX)}
mkdir -p bench/out "$dir"
trap 'rm -f "$dir/seg" "$dir/seg.log" "$dir/out" "$dir/err"; [ -n "${BENCH_DIR:-}" ] || rmdir "$dir"' EXIT
"$BUILD_DIR/bench/shim/shim-restart-bench" "$PWD/$BUILD_DIR/preload/liblrvm-preload.so" \
  "$PWD/$BUILD_DIR/bench/shim/shim-prog" "$dir" "$@" | tee bench/out/shim-restart.txt
