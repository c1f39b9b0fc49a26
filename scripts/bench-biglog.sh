#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-biglog.sh -- the exit commit of a big heap changed wholly, with lrvm-run's DEFAULT
# settings (a 256 MiB log that must grow): build (scripts/setup.sh), then
#   run 1  bench/biglog/bigheap MIB: malloc MIB MiB, fill every byte, exit (the exit commit);
#          peak RSS and wall time from /usr/bin/time -v, the log's size after it;
#   run 2  bigheap -c MIB on the same segment: time from exec to main (the restart), then a
#          check of every byte (not timed);
#   run 3  bigheap MIB again: a second whole-heap exit commit, into the grown log;
#   run 4  bigheap -c MIB: the restart after it.
# With STRACE=1, run 1 runs under strace (fallocate, fdatasync, fsync only: seccomp filter)
# and the phases of the exit commit are printed from its timestamps; with STATS=1 the shim's
# statistics of each run (LRVM_STATS) are printed too.
# Arguments: MIB (default 3072). BENCH_DIR: where the segment and log go (default a fresh
# directory under /var/tmp; needs ~2.2 x MIB of disk); removed afterwards.
# Output: the terminal and bench/out/biglog.txt. Runs niced; record the load and the fsync
# floor printed at the top with any figure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
BUILD_DIR=${BUILD_DIR:-build}
MIB=${1:-3072}
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/lrvm-biglog-XXXXXX)}
mkdir -p bench/out "$dir"
cleanup() { rm -f "$dir/seg" "$dir/seg.log" "$dir/err" "$dir/time" "$dir/floor" "$dir/trace"; \
  [ -n "${BENCH_DIR:-}" ] || rmdir "$dir" 2>/dev/null || true; }
trap cleanup EXIT
TXT=bench/out/biglog.txt
: >"$TXT"
say() { echo "$*" | tee -a "$TXT"; }
ns() { date +%s%N; }
run=( nice -n 10 "$PWD/$BUILD_DIR/preload/lrvm-run" --segment "$dir/seg" --stats "${STATS:-0}" -- "$PWD/$BUILD_DIR/bench/biglog/bigheap" )

# fsync_floor -- 4 KiB in-place O_DSYNC writes in a once-written file: "N/s, U us each"
fsync_floor() {
  local f=$dir/floor n=500 t0 t1
  dd if=/dev/zero of="$f" bs=4k count=$n status=none conv=fsync
  t0=$(ns)
  dd if=/dev/zero of="$f" bs=4k count=$n status=none oflag=dsync conv=notrunc
  t1=$(ns)
  rm -f "$f"
  awk -v n=$n -v d=$((t1 - t0)) 'BEGIN { printf "%.0f/s, %.0f us each", n / (d / 1e9), d / 1e3 / n }'
}
field() { grep "$1" "$2" | head -1 | sed 's/.*: *//'; }

# commit_run N ARGS -- one run changing the heap; prints peak RSS (ratio to the heap) and wall
commit_run() {
  local n=$1; shift
  local pre=()
  [ "${STRACE:-0}" = 1 ] && [ "$n" = 1 ] && pre=(strace -f --seccomp-bpf -tt -o "$dir/trace" -e trace=fallocate,fdatasync,fsync,exit_group)
  /usr/bin/time -v -o "$dir/time" "${pre[@]}" "${run[@]}" "$@" 2>"$dir/err" || {
    cat "$dir/err" >&2; echo "bench-biglog: run $n failed" >&2; exit 1; }
  local rss wall
  rss=$(field "Maximum resident" "$dir/time")
  wall=$(field "Elapsed (wall" "$dir/time")
  say "run $n: $(grep '^bigheap' "$dir/err" | tail -1 | sed 's/^bigheap: //')"
  if [ "${STATS:-0}" = 1 ]; then grep '^lrvm: stats' "$dir/err" | sed 's/^/  /' | tee -a "$TXT"; fi
  say "  peak RSS $((rss / 1024)) MiB = $(awk -v r="$rss" -v m="$MIB" 'BEGIN { printf "%.3f", r / 1024 / m }') x the heap; wall $wall; log now $(( $(stat -c %s "$dir/seg.log") >> 20 )) MiB"
}

# restart_run N -- exec to main of a check-only run (then it checks every byte, untimed)
restart_run() {
  local t0 m
  t0=$(ns)
  "${run[@]}" -c "$MIB" 2>"$dir/err" || { cat "$dir/err" >&2; echo "bench-biglog: run $1 failed" >&2; exit 1; }
  m=$(sed -n 's/^main_at_ns=//p' "$dir/err")
  say "run $1: restart to main $(( (m - t0) / 1000000 )) ms; $(grep '^bigheap' "$dir/err" | tail -1 | sed 's/^bigheap: //')"
}

say "bench-biglog: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), fsync floor $(fsync_floor)"
say "heap ${MIB} MiB, lrvm-run defaults (log created at 256 MiB), dir $dir"
commit_run 1 "$MIB"
if [ "${STRACE:-0}" = 1 ]; then
  say "  last calls of run 1 (strace, start times): the log grows at its fallocate, the record is"
  say "  written until the fdatasync after the status's, the segment is written before its fsync:"
  # the last calls are the exit commit's: growth (fallocate, fdatasync of the zeros, of the
  # status), the record's fdatasync, the segment's fsync (settle), the status, exit
  grep -E 'fallocate|fdatasync|fsync|exit_group' "$dir/trace" | grep -v resumed |
    awk '{ print "    " $2, $3 }' | tail -n 8 | tee -a "$TXT"
fi
restart_run 2
commit_run 3 "$MIB"
restart_run 4
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
