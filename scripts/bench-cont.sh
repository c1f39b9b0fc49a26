#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-cont.sh -- continuous persistence: build/bench/cont/cont-bench (a plain program mutating
# a heap of small nodes at a steady rate) alone and under lrvm-run with interval commits on
# every dirty-tracking backend, side by side in one run; ratios against the program alone.
#
# Part A (a large heap, a steady 0.1% mutation rate): HEAP_MIB of nodes, FRACTION of them mutated every PERIOD_MS, for
#   RUN_SECONDS, with no tool, then for each backend in BACKENDS and each interval in INTERVALS under
#   `lrvm-run --commit exit,interval:T` with LRVM_STATS=1. After every shim run: the log backlog
#   (`rvmutl status`: committed records not yet applied to the segment) and the time to main of
#   a restart that finds the heap again and verifies every node (`cont-bench --restart-only`).
#   Then, per backend, one more run at each interval in KILL_INTERVALS that ends with SIGKILL
#   instead of exit (no exit commit, no statistics): its restart is the restart after a crash.
# Part B (small changes, commits every millisecond): SMALL_MIB of heap, SMALL_COUNT nodes (a few KB) changed every
#   millisecond, for SMALL_SECONDS, alone and under each backend at interval:1ms: commits/s,
#   pause, bytes logged per commit against bytes changed per commit, peak RSS and the RSS at
#   the end of the run (the steady state: the peak may come from the build).
#
# "cmt/due": interval commits done / due, where due = done + the periods the shim skipped because
# a commit outlasted its period (LRVM_STATS "skipped periods"); the CSV also keeps
# commits_asked = the run's wall time / the interval (it counts the start and the exit too).
#
# "bytes logged" comes from LRVM_STATS and includes the commits of the heap's build; the build's
# own share is measured by one extra run per heap size that builds and exits (--seconds 0), and
# subtracted to give the steady-state bytes logged per commit.
#
# Every run is a child of build/bench/shim-alloc/measure (wall, CPU incl. the commit thread and
# the exit commit, peak RSS from wait4). Any run that exits with an unexpected status, any
# "lrvm:" message other than statistics, and any restart that does not verify, stops the script
# with exit status 1: a benchmark that ignored a crash would measure nothing.
#
# Also recorded: the load average before and after, and the fsync floor (4 KiB O_DSYNC writes
# in place, dd). Output: the terminal, bench/out/cont.txt, one CSV row per run in
# bench/out/cont.csv, and with gnuplot installed bench/out/cont.png (part A's cost against the
# commit interval, scripts/bench-plot.sh cont). Timings are printed, never asserted.
#
# Knobs (environment): HEAP_MIB (256), FRACTION (0.001), PERIOD_MS (100), RUN_SECONDS (20),
#   BACKENDS ("wp-async uffd-sigbus mprotect"), INTERVALS ("1s 100ms 10ms"), KILL_INTERVALS
#   ("100ms"), SMALL_MIB (100), SMALL_COUNT (16), SMALL_SECONDS (10), PARTS ("A B"),
#   LOG_SIZE (1G; the shim's LRVM_LOG_SIZE), BUILD_DIR (build), BENCH_DIR (a fresh directory
#   under /var/tmp; not tmpfs; needs ~2x HEAP_MIB plus LOG_SIZE).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${NO_SETUP:-}" ] || bash scripts/setup.sh >/dev/null
B=${BUILD_DIR:-build}
PROG=$PWD/$B/bench/cont/cont-bench
MEASURE=$PWD/$B/bench/shim-alloc/measure
RUN=$PWD/$B/preload/lrvm-run
RVMUTL=$PWD/$B/core/rvmutl
[ -x "$RVMUTL" ] || RVMUTL=$PWD/$B/core/rvmutl/rvmutl
for f in "$PROG" "$MEASURE" "$RUN" "$RVMUTL"; do
  [ -x "$f" ] || { echo "bench-cont: $f is missing: build with scripts/setup.sh" >&2; exit 1; }
done
HEAP_MIB=${HEAP_MIB:-256} FRACTION=${FRACTION:-0.001} PERIOD_MS=${PERIOD_MS:-100}
SECONDS_A=${RUN_SECONDS:-20} BACKENDS=${BACKENDS:-wp-async uffd-sigbus mprotect}
INTERVALS=${INTERVALS:-1s 100ms 10ms} KILL_INTERVALS=${KILL_INTERVALS-100ms}
SMALL_MIB=${SMALL_MIB:-100} SMALL_COUNT=${SMALL_COUNT:-16} SMALL_SECONDS=${SMALL_SECONDS:-10}
PARTS=${PARTS:-A B} LOG_SIZE=${LOG_SIZE:-1G}
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/lrvm-cont-bench-XXXXXX)}
mkdir -p bench/out "$dir"
if [ "$(stat -f -c %T "$dir")" = tmpfs ]; then
  echo "bench-cont: $dir is on tmpfs, where fsync costs nothing; set BENCH_DIR to a disk" >&2
  exit 1
fi
cleanup() { rm -f "$dir"/seg "$dir"/seg.log "$dir"/out "$dir"/err "$dir"/m "$dir"/floor; \
  [ -n "${BENCH_DIR:-}" ] || rmdir "$dir" 2>/dev/null || true; }
trap cleanup EXIT
TXT=bench/out/cont.txt CSV=bench/out/cont.csv
: >"$TXT"
say() { echo "$*" | tee -a "$TXT"; }
die() { echo "bench-cont: FAILED: $*" >&2; echo "FAILED: $*" >>"$TXT"; exit 1; }
# field NAME FILE -- the value of NAME=VALUE in the first line of FILE that has it
field() { grep -o "\(^\|[ ,]\)$1=[^ ,]*" "$2" | head -1 | sed 's/^[ ,]//; s/^[^=]*=//'; }
ns() { date +%s%N; }
iv_s() { case $1 in *ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;; *s) echo "${1%s}" ;; esac; }

# fsync_floor -- 4 KiB writes with O_DSYNC in place in a preallocated, once-written file:
# "N/s, U us each"
fsync_floor() {
  local f=$dir/floor n=500 t0 t1
  dd if=/dev/zero of="$f" bs=4k count=$n status=none conv=fsync
  t0=$(ns)
  dd if=/dev/zero of="$f" bs=4k count=$n status=none oflag=dsync conv=notrunc
  t1=$(ns)
  rm -f "$f"
  awk -v n=$n -v d=$((t1 - t0)) 'BEGIN { printf "%.0f/s, %.0f us each", n / (d / 1e9), d / 1e3 / n }'
}

# check_err WHAT -- the run's stderr may hold statistics, nothing else from lrvm
check_err() {
  if grep '^lrvm: ' "$dir/err" | grep -qv '^lrvm: stats:'; then
    cat "$dir/err" >&2
    die "$1: lrvm said something other than statistics (above)"
  fi
}

# one_run PART BACKEND INTERVAL END HEAP_MIB ARGS... -- one measured run on a fresh segment;
# sets R_* for the row. BACKEND none: the program alone. INTERVAL none: exit commit only.
# END exit or kill (the program SIGKILLs itself after its report).
one_run() {
  local part=$1 be=$2 iv=$3 end=$4 heap=$5 what want=0
  shift 5
  local args=(--heap-mib "$heap" "$@") cmd commit=exit
  [ "$end" = kill ] && { args+=(--end-kill); want=sig=9; }
  [ "$iv" = none ] || commit=exit,interval:$iv
  what="part $part, $be, $commit, end by $end"
  rm -f "$dir/seg" "$dir/seg.log"
  if [ "$be" = none ]; then
    cmd=("$PROG" "${args[@]}")
  else
    cmd=("$RUN" --segment "$dir/seg" --log-size "$LOG_SIZE" --track "$be" --commit "$commit"
         --stats 1 -- "$PROG" "${args[@]}")
  fi
  "$MEASURE" -o "$dir/out" -- "${cmd[@]}" >"$dir/m" 2>"$dir/err" || true
  R_status=$(field status "$dir/m")
  if [ "$R_status" != "$want" ]; then
    cat "$dir/err" >&2
    die "$what: exit status ${R_status:-unknown}, expected $want (stderr above)"
  fi
  check_err "$what"
  grep -q '^run,' "$dir/out" || die "$what: the program printed no report"
  for k in nodes build_ms batches per_batch work_p50_ms work_p99_ms stall_ms bytes rss_end_kb cpu_run_s; do
    printf -v "R_$k" '%s' "$(field "$k" "$dir/out")"
  done
  R_basked=$(field asked "$dir/out")
  R_cpu_prog=$(field cpu_s "$dir/out")
  R_wall=$(field wall_s "$dir/m")
  R_cpu=$(awk -v u="$(field user_s "$dir/m")" -v s="$(field sys_s "$dir/m")" 'BEGIN{print u+s}')
  R_rss=$(field maxrss_kb "$dir/m")
  R_ci=0 R_ct=0 R_asked=0 R_pavg=0 R_pmax=0 R_kib=0 R_brec=0 R_bbytes=0 R_rms=0 R_vms=0 R_p2=0 R_skip=0
  if [ "$be" != none ]; then
    local c t
    c=$(grep '^lrvm: stats: commits ' "$dir/err" | head -1 || true)
    t=$(grep '^lrvm: stats: tracking ' "$dir/err" | head -1 || true)
    [ -n "$c" ] && [ -n "$t" ] || [ "$end" = kill ] || die "$what: no LRVM_STATS lines"
    if [ -n "$c" ]; then
      R_ci=$(sed -n 's/.*interval \([0-9]*\),.*/\1/p' <<<"$c")
      R_skip=$(sed -n 's/.*skipped periods \([0-9]*\)).*/\1/p' <<<"$c")
      R_ct=$(sed -n 's/^lrvm: stats: commits \([0-9]*\).*/\1/p' <<<"$c")
      R_kib=$(sed -n 's/.* \([0-9]*\) KiB logged.*/\1/p' <<<"$t")
      R_pmax=$(sed -n 's/.*pause max \([0-9]*\) us.*/\1/p' <<<"$t")
      R_pavg=$(sed -n 's/.*pause max [0-9]* us avg \([0-9]*\) us.*/\1/p' <<<"$t")
      R_p2=$(sed -n 's|^lrvm: stats: pauses over 1/2/5/10/20/50 ms: [0-9]*/\([0-9]*\)/.*|\1|p' \
        "$dir/err" | head -1)
    fi
    [ "$iv" = none ] || R_asked=$(awk -v w="$R_wall" -v i="$(iv_s "$iv")" 'BEGIN{printf "%d", w / i}')
    backlog "$what"
    restart "$what" "$be"
  fi
  echo "$part,$be,$iv,$end,$heap,$R_nodes,$SECS,$R_build_ms,$R_batches,$R_basked,$R_per_batch,$R_work_p50_ms,$R_work_p99_ms,$R_stall_ms,$R_cpu_prog,$R_wall,$R_cpu,$R_rss,$R_bytes,$R_ci,$R_ct,$R_asked,$R_pavg,$R_pmax,$R_kib,$R_brec,$R_bbytes,$R_rms,$R_vms,$R_rss_end_kb,$R_cpu_run_s,${R_p2:-0},${R_skip:-0}" >>"$CSV"
}

# backlog WHAT -- committed records still in the log (not yet applied to the segment)
backlog() {
  "$RVMUTL" status "$dir/seg.log" >"$dir/out" 2>&1 || { cat "$dir/out" >&2; die "$1: rvmutl status failed"; }
  local l
  l=$(grep 'live record' "$dir/out") || die "$1: rvmutl status printed no record count"
  R_brec=$(sed -n 's/^ *\([0-9]*\) live record.*/\1/p' <<<"$l")
  R_bbytes=$(sed -n 's/.*truncated), \([0-9]*\) bytes.*/\1/p' <<<"$l")
}

# restart WHAT BACKEND -- run the program again on the segment: it must find its heap and
# verify every node; time to main from just before the launch
restart() {
  local t0
  t0=$(ns)
  CONT_T0_NS=$t0 "$RUN" --segment "$dir/seg" --log-size "$LOG_SIZE" --track "$2" --commit exit \
    -- "$PROG" --restart-only >"$dir/out" 2>"$dir/err" || { cat "$dir/err" >&2; die "$1: the restart failed (stderr above)"; }
  check_err "$1: restart"
  R_rms=$(field to_main_ms "$dir/out")
  R_vms=$(field verify_ms "$dir/out")
  [ -n "$R_rms" ] || die "$1: the restart printed no report"
}

# summarize PART REF_KIB -- the table of one part: every shim row against the part's no-tool row
summarize() {
  awk -F, -v P="$1" -v ref="$2" '
    function r(a, b) { return b > 0 ? sprintf("%.2fx", a / b) : "-" }
    $1 == P && $2 == "none" { n = $0; split($0, b, ",") }
    $1 == P && $2 != "none" { rows[++k] = $0 }
    END {
      printf "%-12s %-6s %-4s | %7s %7s %7s %7s | %7s | %6s | %5s %5s %9s | %11s | %12s %12s | %6s | %6s | %9s | %8s\n",
        "backend", "commit", "end", "work50", "work99", "CPU", "CPUmut", "stall", "build", "RSS", "end", "cmt/due",
        "pause ms", "logged/cmt", "changed/cmt", "logd/ch", "batch", "backlog", "restart"
      printf "%-12s %-6s %-4s | %6.2fms %6.2fms %6.2fs %6.2fs | %5.1fms | %5.2fs | %4.0fM %4.0fM %9s | %11s | %12s %12s | %6s | %6s | %9s | %8s\n",
        "no tool", "-", "exit", b[12], b[13], b[17], b[31], b[14], b[8] / 1000, b[18] / 1024, b[30] / 1024, "-", "-",
        "-", sprintf("%.0f B", b[19] / (b[16] > 0 ? b[16] : 1)) "/s", "-", b[9] "/" b[10], "-", "-"
      for (i = 1; i <= k; i++) {
        split(rows[i], a, ",")
        killed = a[4] == "kill"
        steady = (a[25] - ref) * 1024
        c = a[21] > 0 ? a[21] : 1
        printf "%-12s %-6s %-4s | %7s %7s %7s %7s | %5.1fms | %6s | %5s %5s %9s | %11s | %12s %12s | %6s | %6s | %8.1fM | %6.0fms\n",
          a[2], a[3], a[4], r(a[12], b[12]), r(a[13], b[13]), r(a[17], b[17]), r(a[31], b[31]), a[14],
          r(a[8], b[8]), r(a[18], b[18]), r(a[30], b[30]), killed ? "-" : a[20] "/" a[20] + a[33],
          killed ? "-" : sprintf("%.1f/%.1f", a[23] / 1000, a[24] / 1000),
          killed ? "-" : sprintf("%.0f B", steady / c), killed ? "-" : sprintf("%.0f B", a[19] / c),
          killed || a[19] == 0 ? "-" : sprintf("%.2f", steady / a[19]),
          r(a[9], b[9]), a[27] / 1048576, a[28]
      }
    }' "$CSV" | tee -a "$TXT"
}

# part_a -- a large heap of small nodes, a steady mutation rate, periodic commits
part_a() {
  SECS=$SECONDS_A
  local be iv ref prog=(--fraction "$FRACTION" --period-ms "$PERIOD_MS" --seconds "$SECONDS_A")
  say ""
  say "== A: ${HEAP_MIB} MiB heap, ${FRACTION} of the nodes every ${PERIOD_MS} ms, ${SECS} s per run"
  ref=$(build_logged "${BACKENDS%% *}" "$HEAP_MIB")
  SECS=$SECONDS_A
  say "(building the heap alone logs $ref KiB; subtracted from each run's bytes logged)"
  one_run A none - exit "$HEAP_MIB" "${prog[@]}"
  for be in $BACKENDS; do
    for iv in $INTERVALS; do
      one_run A "$be" "$iv" exit "$HEAP_MIB" "${prog[@]}"
      echo "  done: $be interval:$iv" >&2
    done
    for iv in $KILL_INTERVALS; do
      one_run A "$be" "$iv" kill "$HEAP_MIB" "${prog[@]}"
      echo "  done: $be interval:$iv, SIGKILL" >&2
    done
  done
  summarize A "$ref"
}

# part_b -- a few KB per millisecond, commits every millisecond
part_b() {
  SECS=$SMALL_SECONDS
  local be ref prog=(--count "$SMALL_COUNT" --period-ms 1 --seconds "$SMALL_SECONDS")
  say ""
  say "== B: ${SMALL_MIB} MiB heap, ${SMALL_COUNT} nodes every 1 ms, ${SECS} s per run, interval:1ms"
  ref=$(build_logged "${BACKENDS%% *}" "$SMALL_MIB")
  SECS=$SMALL_SECONDS
  say "(building the heap alone logs $ref KiB; subtracted from each run's bytes logged)"
  one_run B none - exit "$SMALL_MIB" "${prog[@]}"
  for be in $BACKENDS; do
    one_run B "$be" 1ms exit "$SMALL_MIB" "${prog[@]}"
    echo "  done: $be interval:1ms" >&2
  done
  summarize B "$ref"
  awk -F, '$1 == "B" && $2 != "none" { printf "%s: %.0f commits/s, %d of %d pauses over 2 ms (%.2f %%)\n", $2, $21 / $16, $32, $21, ($21 > 0 ? 100 * $32 / $21 : 0) }' "$CSV" | tee -a "$TXT"
}

# build_logged BACKEND HEAP_MIB -- KiB logged by a run that only builds the heap (exit commit)
build_logged() {
  SECS=0
  one_run ref "$1" none exit "$2" --seconds 0
  echo "$R_kib"
}

say "bench-cont: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r), dir $dir"
load_before=$(cut -d' ' -f1 /proc/loadavg)
say "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
floor=$(fsync_floor)
floor_us=$(sed -n 's/.*, \([0-9]*\) us each/\1/p' <<<"$floor")
say "fsync floor: $floor (4 KiB in-place O_DSYNC writes, dd)"
echo "part,backend,interval,end,heap_mib,nodes,seconds,build_ms,batches,asked,per_batch,work_p50_ms,work_p99_ms,stall_ms,cpu_prog_s,wall_s,cpu_s,maxrss_kb,bytes_changed,commits_interval,commits_total,commits_asked,pause_avg_us,pause_max_us,logged_kib,backlog_records,backlog_bytes,restart_ms,verify_ms,rss_end_kb,cpu_run_s,pauses_over_2ms,periods_skipped" >"$CSV"
for part in $PARTS; do
  case $part in
    A) part_a ;;
    B) part_b ;;
    *) die "PARTS: unknown part $part (A or B)" ;;
  esac
done
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
say "rows: $CSV"
# The picture of part A (cost against the commit interval), when gnuplot is there: this
# script does not install it (apt-get install gnuplot-nox).
if [[ " $PARTS " == *" A "* ]]; then
  if command -v gnuplot >/dev/null; then
    label="$(date -u +%Y-%m-%d), ${HEAP_MIB} MiB heap, ${SECONDS_A} s per run"
    label+=", load $load_before..$(cut -d' ' -f1 /proc/loadavg), fsync floor $floor_us us"
    LABEL=$label bash scripts/bench-plot.sh cont "$CSV" bench/out/cont.png
  else
    say "no picture: gnuplot is not installed (apt-get install gnuplot-nox), then:"
    say "  bash scripts/bench-plot.sh cont $CSV bench/out/cont.png"
  fi
fi
