#!/usr/bin/env bash
# bench-heap.sh -- the persistent heap against glibc malloc and jemalloc, side by side in one run
# (issue 5 item 4). Each configuration runs in separate processes of one driver
# (build/bench/heap/heap_bench), allocators interleaved, REPS times; the best throughput and the
# median overhead of each allocator are compared. Prints ratios and PASS/FAIL lines for the
# targets (throughput >= 0.5x jemalloc, overhead <= 1.3x live bytes); it is not a test.
#
# Knobs: BUILD_DIR (build), OPS (10000000), LIVE_MB (100), REPS (3), OUT (bench/out/heap.txt).
# This measures the UNTRACKED heap (no dirty tracking, no commits): the "tracked heap with
# commits only at the end" figure comes when auto-tracking lands.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
OPS=${OPS:-10000000}
LIVE_MB=${LIVE_MB:-100}
REPS=${REPS:-3}
OUT=${OUT:-bench/out/heap.txt}
JE=${JEMALLOC_SO:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}
[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR" >/dev/null
ninja -C "$BUILD_DIR" bench/heap/heap_bench >/dev/null
BIN=$BUILD_DIR/bench/heap/heap_bench
if [ ! -f "$JE" ]; then
  echo "bench-heap: $JE not found: apt-get install libjemalloc2 (or set JEMALLOC_SO)" >&2
  exit 1
fi
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
echo "# ops=$OPS live_mb=$LIVE_MB reps=$REPS (untracked heap)" | tee -a "$OUT"
for wl in small mix; do
  for th in 1 2; do
    for rep in $(seq "$REPS"); do
      "$BIN" lrvm "$wl" "$th" "$OPS" "$LIVE_MB" | tee -a "$OUT"
      "$BIN" sys "$wl" "$th" "$OPS" "$LIVE_MB" | tee -a "$OUT"
      LD_PRELOAD="$JE" "$BIN" sys "$wl" "$th" "$OPS" "$LIVE_MB" | tee -a "$OUT"
    done
  done
done
echo
echo "== summary: throughput = best of $REPS in Mops per CPU-second (wall-clock Mops in [] for"
echo "   context: this machine is shared, wall time swings 2x with other users' load); overhead ="
echo "   median of RSS growth / live bytes =="
awk '
  /^alloc=/ {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = f["workload"] " " f["threads"]
    a = f["alloc"]
    if (f["mops_per_cpu"] > cpu[k, a]) cpu[k, a] = f["mops_per_cpu"]
    if (f["mops"] > wall[k, a]) wall[k, a] = f["mops"]
    n[k, a]++; ov[k, a, n[k, a]] = f["overhead"]
    keys[k] = 1
  }
  function median(k, a,   m, i, j, t, v) {
    m = n[k, a]
    for (i = 1; i <= m; i++) v[i] = ov[k, a, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((m + 1) / 2)]
  }
  END {
    printf "%-6s %3s %15s %15s %15s %8s %8s %7s %7s %7s\n", "load", "thr", "lrvm", "glibc", "jemalloc", "lrvm/je", "lrvm/gl", "ov.lrvm", "ov.gl", "ov.je"
    for (k in keys) {
      split(k, kk, " ")
      r1 = cpu[k, "lrvm"] / cpu[k, "jemalloc"]; r2 = cpu[k, "lrvm"] / cpu[k, "glibc"]
      o = median(k, "lrvm")
      printf "%-6s %3s %6.3f [%6.3f] %6.3f [%6.3f] %6.3f [%6.3f] %8.2f %8.2f %7.3f %7.3f %7.3f\n", kk[1], kk[2], cpu[k, "lrvm"], wall[k, "lrvm"], cpu[k, "glibc"], wall[k, "glibc"], cpu[k, "jemalloc"], wall[k, "jemalloc"], r1, r2, o, median(k, "glibc"), median(k, "jemalloc")
      res[k] = sprintf("%s threads: throughput %.2fx jemalloc (target >= 0.5): %s; overhead %.3f x live (target <= 1.3): %s", k, r1, r1 >= 0.5 ? "PASS" : "FAIL", o, o <= 1.3 ? "PASS" : "FAIL")
    }
    for (k in res) print res[k]
  }' "$OUT" | tee -a "$OUT"
