#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-heap.sh -- the persistent heap against glibc malloc and jemalloc, side by side in one run.
# Each configuration runs in separate processes of one driver
# (build/bench/heap/heap_bench), allocators interleaved, REPS times; medians are compared. Prints ratios and PASS/FAIL lines for the
# targets (throughput >= 0.5x jemalloc, overhead <= 1.3x live bytes); it is not a test.
#
# Knobs: BUILD_DIR (build), OPS (10000000), LIVE_MB (100), REPS (3), OUT (bench/out/heap.txt),
# SUMMARY_ONLY=1 (summarise an existing OUT without running).
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
ninja -C "$BUILD_DIR" preload/liblrvm-preload.so >/dev/null
BIN=$BUILD_DIR/bench/heap/heap_bench
SHIM=$(cd "$BUILD_DIR" && pwd)/preload/liblrvm-preload.so
if [ ! -f "$JE" ]; then
  echo "bench-heap: $JE not found: apt-get install libjemalloc2 (or set JEMALLOC_SO)" >&2
  exit 1
fi
if [ "${SUMMARY_ONLY:-0}" != 1 ]; then
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
      # the persistent heap as an unmodified program gets it: the shim, a segment, tracking,
      # one commit at exit (not inside the timed loop)
      tdir=$(mktemp -d "${TMPDIR:-/var/tmp}/heap-bench-XXXXXX")
      HEAP_BENCH_ALLOC=tracked LRVM_SEGMENT="$tdir/seg" LRVM_COMMIT=exit LD_PRELOAD="$SHIM" \
        "$BIN" sys "$wl" "$th" "$OPS" "$LIVE_MB" | tee -a "$OUT"
      rm -rf "$tdir"
    done
  done
done
fi
echo
echo "== summary: throughput in Mops per CPU-second (this machine is shared: wall time swings"
echo "   2x with other users' load; wall-clock Mops in []), median of the $REPS repetitions; the"
echo "   ratios are medians of per-repetition ratios (the three allocators of one repetition run"
echo "   back to back); overhead = median of RSS growth / live bytes =="
awk '
  /^alloc=/ {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = f["workload"] " " f["threads"]
    a = f["alloc"]
    n[k, a]++; m = n[k, a]
    cpu[k, a, m] = f["mops_per_cpu"]; wall[k, a, m] = f["mops"]; ov[k, a, m] = f["overhead"]
    keys[k] = 1
  }
  function med(arr, k, a, cnt,   i, j, t, v) {
    for (i = 1; i <= cnt; i++) v[i] = arr[k, a, i]
    for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((cnt + 1) / 2)]
  }
  function medratio(k, b, cnt,   i, r) {
    for (i = 1; i <= cnt; i++) r[k, "x", i] = cpu[k, "lrvm", i] / cpu[k, b, i]
    return med(r, k, "x", cnt)
  }
  END {
    printf "%-6s %3s %15s %15s %15s %8s %8s %7s %7s %7s\n", "load", "thr", "lrvm", "glibc", "jemalloc", "lrvm/je", "lrvm/gl", "ov.lrvm", "ov.gl", "ov.je"
    for (k in keys) {
      split(k, kk, " ")
      c = n[k, "lrvm"]
      r1 = medratio(k, "jemalloc", c); r2 = medratio(k, "glibc", c)
      o = med(ov, k, "lrvm", c)
      printf "%-6s %3s %6.3f [%6.3f] %6.3f [%6.3f] %6.3f [%6.3f] %8.2f %8.2f %7.3f %7.3f %7.3f\n", kk[1], kk[2], med(cpu, k, "lrvm", c), med(wall, k, "lrvm", c), med(cpu, k, "glibc", c), med(wall, k, "glibc", c), med(cpu, k, "jemalloc", c), med(wall, k, "jemalloc", c), r1, r2, o, med(ov, k, "glibc", c), med(ov, k, "jemalloc", c)
      res[k] = sprintf("%s threads: throughput %.2fx jemalloc (target >= 0.5): %s; overhead %.3f x live (target <= 1.3): %s", k, r1, r1 >= 0.5 ? "PASS" : "FAIL", o, o <= 1.3 ? "PASS" : "FAIL")
      if (n[k, "tracked"] > 0) {
        for (i = 1; i <= n[k, "tracked"]; i++) rt[k, "x", i] = cpu[k, "tracked", i] / cpu[k, "jemalloc", i]
        r3 = med(rt, k, "x", n[k, "tracked"])
        res[k] = res[k] sprintf("\n%s threads: TRACKED heap under the shim (commit at exit) %.3f Mops/cpu-s = %.2fx jemalloc (target >= 0.5): %s", k, med(cpu, k, "tracked", n[k, "tracked"]), r3, r3 >= 0.5 ? "PASS" : "FAIL")
      }
    }
    for (k in res) print res[k]
  }' "$OUT" | tee -a "$OUT"
