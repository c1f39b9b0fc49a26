#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-rvm.sh -- the core (LRVM) benchmark with its peers, in one run.
# Installs what is missing from Debian (the build's packages plus the peers: LMDB, SQLite,
# PMDK), configures and builds ./build (scripts/setup.sh), runs rvm-bench, and writes
#   bench/out/rvm.csv  every measured value (system,workload,metric,value,unit)
#   bench/out/rvm.txt  the printed tables, ratios and PASS/FAIL target lines
#   bench/out/durable.png  durable transactions/s of lrvm, the disk floor and the peers,
#                      drawn from rvm.csv by scripts/bench-plot.sh (gnuplot)
# Targets are reported, not enforced: the exit status is non-zero only if a measurement failed.
#
#   bash scripts/bench-rvm.sh                     # default size, a few minutes
#   LRVM_BENCH_SCALE=4 bash scripts/bench-rvm.sh  # 4x the transactions
#   LRVM_BENCH_DIR=/mnt/disk bash scripts/bench-rvm.sh --only floor,lrvm
# Data files go to $LRVM_BENCH_DIR (default /var/tmp), never tmpfs; they are removed after.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
PEERS=(liblmdb-dev libsqlite3-dev libpmemobj-dev)
peers_missing=0
for p in "${PEERS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || peers_missing=1
done
EXTRA_PKGS="${EXTRA_PKGS:-} ${PEERS[*]} gnuplot-nox" bash scripts/setup.sh
if [ "$peers_missing" = 1 ]; then
  # The build was configured before the peers existed: let meson find them now.
  meson setup --reconfigure "$BUILD_DIR" >/dev/null
  meson compile -C "$BUILD_DIR"
fi

bin="$BUILD_DIR/bench/rvm/rvm-bench"
if [ ! -x "$bin" ]; then
  echo "bench-rvm.sh: $bin was not built (is the build configured with -Dbench=false?" \
       "re-run: meson configure $BUILD_DIR -Dbench=true)" >&2
  exit 1
fi
mkdir -p bench/out
load_before=$(cut -d' ' -f1 /proc/loadavg)
"$bin" --csv bench/out/rvm.csv "$@" | tee bench/out/rvm.txt
echo "bench-rvm.sh: wrote bench/out/rvm.csv and bench/out/rvm.txt"
label="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"
label+=", load $load_before..$(cut -d' ' -f1 /proc/loadavg)"
LABEL=$label bash scripts/bench-plot.sh durable bench/out/rvm.csv bench/out/durable.png
