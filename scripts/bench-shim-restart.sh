#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-shim-restart.sh -- build (scripts/setup.sh), then run shim-restart-bench: restart time
# of an unmodified program under liblrvm-preload.so vs heap size (segment mapped vs read vs no
# shim), and the pause of a signal commit vs the size of the dirty set, all in one run. Output
# goes to the terminal and to bench/out/shim-restart.txt, every value to
# bench/out/shim-restart.csv, and the pictures bench/out/restart.png and bench/out/pause.png
# are drawn from that CSV (scripts/bench-plot.sh, gnuplot).
# Arguments: heap sizes in MiB (default 64 256 1024). PAUSE_MIB: dirty-set sizes for the pause
# (default 16,64,256). BENCH_DIR: where the segment and log go (default a fresh directory
# under /var/tmp; needs ~2.5 x the largest size of disk).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA_PKGS="${EXTRA_PKGS:-} gnuplot-nox" bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/lrvm-shim-bench-XXXXXX)}
mkdir -p bench/out "$dir"
trap 'rm -f "$dir/seg" "$dir/seg.log" "$dir/out" "$dir/err"; [ -n "${BENCH_DIR:-}" ] || rmdir "$dir"' EXIT
"$BUILD_DIR/bench/shim/shim-restart-bench" --csv bench/out/shim-restart.csv \
  --pause "${PAUSE_MIB:-16,64,256}" "$PWD/$BUILD_DIR/preload/liblrvm-preload.so" \
  "$PWD/$BUILD_DIR/bench/shim/shim-prog" "$dir" "$@" | tee bench/out/shim-restart.txt
label="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
LABEL=$label bash scripts/bench-plot.sh restart bench/out/shim-restart.csv bench/out/restart.png
LABEL=$label bash scripts/bench-plot.sh pause bench/out/shim-restart.csv bench/out/pause.png
