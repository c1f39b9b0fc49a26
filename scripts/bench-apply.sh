#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-apply.sh -- how fast recovery applies a log (MB/s of record data), for this build and,
# side by side in the same run, for another build of liblrvm (OLD_BUILD: its build directory).
#
# For each shape (SHAPES: "small" = 100 ranges of 100-4000 bytes per transaction at random
# offsets, the shim's shape; "page" = 16 whole pages per transaction) apply-bench writes a
# log of MB megabytes of new values over a SEG_MIB MiB segment, once. Then, ROUNDS times and
# alternating builds, a copy of the pair (synced first, so no writeback of the copy is timed)
# is opened: "recovery" is rvm_initialize (applies every record to the page cache), "truncate"
# is the rvm_truncate after it (fsync of the segment + moving the head; with the old build
# also a second apply). EXTRA_DIRS: more directories holding seg + seg.log (e.g. a copy of a
# killed lrvm-run program's files) timed the same way. Record bytes come from `rvmutl status`.
# Medians over the rounds; CPU is user + system of the process. Load average and the fsync
# floor are printed with the figures. Needs ~3x (MB + SEG_MIB) of disk under BENCH_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${NO_SETUP:-}" ] || bash scripts/setup.sh >/dev/null
B=${BUILD_DIR:-build}
AB=$PWD/$B/bench/apply/apply-bench
RVMUTL=$PWD/$B/core/rvmutl
SEG_MIB=${SEG_MIB:-256} MB=${MB:-300} ROUNDS=${ROUNDS:-3} SHAPES=${SHAPES:-small page}
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/lrvm-apply-bench-XXXXXX)}
[ "$(stat -f -c %T "$dir")" != tmpfs ] || { echo "bench-apply: $dir is tmpfs; set BENCH_DIR" >&2; exit 1; }
trap 'rm -rf "$dir"/run "$dir"/small "$dir"/page "$dir"/floor; [ -n "${BENCH_DIR:-}" ] || rmdir "$dir" 2>/dev/null || true' EXIT
libs=("new:$PWD/$B/core")
[ -z "${OLD_BUILD:-}" ] || libs=("old:$(cd "$OLD_BUILD" && pwd)/core" "${libs[@]}")

floor() {
  local f=$dir/floor t0 t1
  dd if=/dev/zero of="$f" bs=4k count=500 status=none conv=fsync
  t0=$(date +%s%N); dd if=/dev/zero of="$f" bs=4k count=500 status=none oflag=dsync conv=notrunc; t1=$(date +%s%N)
  rm -f "$f"; echo "$(( (t1 - t0) / 500000 )) us"
}
echo "bench-apply: $(date -u '+%F %H:%M') UTC, load $(cut -d' ' -f1-3 /proc/loadavg), fsync floor $(floor)"
sets=()
for s in $SHAPES; do
  mkdir -p "$dir/$s"
  nice -n 10 "$AB" gen "$dir/$s" --seg-mib "$SEG_MIB" --mb "$MB" --shape "$s" >/dev/null
  mv "$dir/$s/log" "$dir/$s/seg.log"
  sets+=("$s:$dir/$s")
done
for x in ${EXTRA_DIRS:-}; do sets+=("$(basename "$x"):$x"); done
printf '%-8s %-4s %10s %12s %10s %12s %10s\n' shape lib "rec MB" "recovery ms" "cpu ms" "truncate ms" "MB/s"
for set in "${sets[@]}"; do
  name=${set%%:*} src=${set#*:}
  recmb=$("$RVMUTL" status "$src/seg.log" | sed -n 's/.*truncated), \([0-9]*\) bytes.*/\1/p')
  for lib in "${libs[@]}"; do : >"$dir/times.${lib%%:*}"; done
  for ((r = 0; r < ROUNDS; r++)); do
    for lib in "${libs[@]}"; do
      rm -rf "$dir/run"; cp -a --sparse=always "$src" "$dir/run"; sync
      LD_LIBRARY_PATH=${lib#*:} nice -n 10 "$AB" open "$dir/run/seg.log" >>"$dir/times.${lib%%:*}"
    done
  done
  for lib in "${libs[@]}"; do
    awk -v n="$name" -v l="${lib%%:*}" -v b="$recmb" '
      { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1], NR] = kv[2] } }
      function med(k,   a, i, m) { for (i = 1; i <= NR; i++) a[i] = v[k, i]; m = asort(a); return a[int((m + 1) / 2)] }
      END { r = med("recovery_ms"); printf "%-8s %-4s %10.1f %12.1f %10.1f %12.1f %10.0f\n", n, l, b / 1e6, r,
            med("recovery_cpu_ms"), med("truncate_ms"), b / 1e6 / (r / 1000) }' "$dir/times.${lib%%:*}"
  done
done
rm -f "$dir"/times.*
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
