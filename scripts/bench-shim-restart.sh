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
cleanup() { rm -f "$dir/seg" "$dir/seg.log" "$dir/out" "$dir/err" "$dir/floor"
            [ -n "${BENCH_DIR:-}" ] || rmdir "$dir"; }
trap cleanup EXIT
# The disk's floor, for the pictures' label: 4 KiB writes with O_DSYNC in place in a
# preallocated, once-written file (what one durable commit costs at least).
fsync_floor_us() {
  local f=$dir/floor n=500 t0 t1
  dd if=/dev/zero of="$f" bs=4k count=$n status=none conv=fsync
  t0=$(date +%s%N)
  dd if=/dev/zero of="$f" bs=4k count=$n status=none oflag=dsync conv=notrunc
  t1=$(date +%s%N)
  rm -f "$f"
  echo $(((t1 - t0) / 1000 / n))
}
load_before=$(cut -d' ' -f1 /proc/loadavg)
floor_us=$(fsync_floor_us)
echo "bench-shim-restart: load $load_before, fsync floor $floor_us us (4 KiB O_DSYNC in place)"
"$BUILD_DIR/bench/shim/shim-restart-bench" --csv bench/out/shim-restart.csv \
  --pause "${PAUSE_MIB:-16,64,256}" "$PWD/$BUILD_DIR/preload/liblrvm-preload.so" \
  "$PWD/$BUILD_DIR/bench/shim/shim-prog" "$dir" "$@" | tee bench/out/shim-restart.txt
label="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"
label+=", load $load_before..$(cut -d' ' -f1 /proc/loadavg), fsync floor $floor_us us"
LABEL=$label bash scripts/bench-plot.sh restart bench/out/shim-restart.csv bench/out/restart.png
LABEL=$label bash scripts/bench-plot.sh pause bench/out/shim-restart.csv bench/out/pause.png
