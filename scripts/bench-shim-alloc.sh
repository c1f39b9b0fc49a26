#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-shim-alloc.sh -- allocation-heavy UNMODIFIED programs under four allocators, side by side
# in one run: time and peak RSS, ratios vs glibc.
#
#   glibc    the program as it is
#   jemalloc LD_PRELOAD=libjemalloc.so.2
#   shim-vol LD_PRELOAD=liblrvm-preload.so, no LRVM_SEGMENT: the heap allocator on volatile memory
#   shim-per the same with LRVM_SEGMENT (fresh segment per run) and LRVM_COMMIT=exit: the heap is an
#            auto-tracked LRVM segment, committed once at exit (the commit is inside the time).
#            The exit commit is ONE log record of every byte that changed, so the log must hold
#            the heap in use: each run gets a fresh LOG_SIZE log (default 512M), created by
#            rvmutl before the timed run (creating it writes zeros: ~2.5 s per GiB here; a real
#            user creates it once, not per run). The shim's default LRVM_LOG_SIZE (256M) would
#            also do for every program here (gawk's exit commit is the largest: 71 MiB).
#
# Every measurement is one child of build/bench/shim-alloc/measure (fork, exec, wait4): wall
# time, user+sys CPU and ru_maxrss of that child only. Rounds are interleaved (round r runs every
# program under every allocator), so a burst of load from the other users of this machine falls
# on one measurement, not on one allocator. Reported: per program and allocator the median over
# rounds; ratios are the median of per-round ratios to glibc. Every run's stdout must be the same
# under all four allocators (checked: a difference is reported as MISMATCH and exits 1), and a
# run whose stderr carries an "lrvm:" line other than statistics (a failed commit, a refusal) is
# reported as FAILED: its time would measure a commit that did not happen.
# Targets (shim-per vs glibc): time <= 1.5x, peak RSS <= 1.3x. Printed, not asserted.
#
# Knobs (environment): ROUNDS (3), SCALE (1: work per program; 0.1 for a quick look),
#   ONLY (space-separated program names), CONFIGS (default "glibc jemalloc shim-vol shim-per"),
#   BUILD_DIR (build), LRVM_BENCH_DIR (/var/tmp: segments and inputs; not tmpfs),
#   OUT (bench/out/shim-alloc.txt; raw lines), SUMMARY_ONLY=1 (re-summarise OUT),
#   SHIM (the liblrvm-preload.so to measure; default the one in BUILD_DIR), LOG_SIZE (512M),
#   BASE_SHIM (another build's liblrvm-preload.so, e.g. main's: the configs base-vol and base-per
#   run it as shim-vol and shim-per run SHIM, so a change is measured side by side in one run).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-1}
OUT=${OUT:-bench/out/shim-alloc.txt}
CONFIGS=${CONFIGS:-glibc jemalloc shim-vol shim-per}
JE=${JEMALLOC_SO:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}
PROGRAMS="larson scratch xmalloc mix tree sort gawk python3 python3-malloc sqlite3"
ONLY=${ONLY:-$PROGRAMS}

summarise() {
  awk -v rounds="$ROUNDS" '
    function med(a, n,   i, j, t) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    /^run / {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      p = f["prog"]; c = f["config"]; r = f["round"]
      wall[p, c, r] = f["wall_s"]; cpu[p, c, r] = f["user_s"] + f["sys_s"]; rss[p, c, r] = f["maxrss_kb"]
      seen[p, c, r] = 1; if (!(p in po)) { po[p] = ++np; pn[np] = p }
      if (!(c in co)) { co[c] = ++nc; cn[nc] = c }
      if (r > maxr) maxr = r
      if (f["status"] != "0") bad[p, c] = f["status"]
      if (f["lrvm_err"] != "" && f["lrvm_err"] != "0") bad[p, c] = "lrvm error (see err= lines)"
      if (f["logged_kib"] != "") { nl[p, c]++; lg[p, c, nl[p, c]] = f["logged_kib"]; pz[p, c, nl[p, c]] = f["commit_us"] }
      if (f["out"] != "") { if ((p, r) in ref && ref[p, r] != f["out"]) mism[p, c] = 1; if (!((p, r) in ref)) ref[p, r] = f["out"] }
    }
    END {
      printf "%-15s %-9s %9s %9s %10s | %8s %8s %8s\n", "program", "alloc", "wall s", "cpu s", "maxrss KB", "wall/gl", "cpu/gl", "rss/gl"
      fails = 0
      for (i = 1; i <= np; i++) {
        p = pn[i]
        for (k = 1; k <= nc; k++) {
          c = cn[k]; n = 0; delete w; delete u; delete m; delete rw; delete ru; delete rm
          for (r = 1; r <= maxr; r++) if ((p, c, r) in seen) {
            n++; w[n] = wall[p, c, r]; u[n] = cpu[p, c, r]; m[n] = rss[p, c, r]
            if ((p, "glibc", r) in seen) { rw[n] = wall[p, c, r] / wall[p, "glibc", r]; ru[n] = cpu[p, c, r] / (cpu[p, "glibc", r] > 0 ? cpu[p, "glibc", r] : 1e-9); rm[n] = rss[p, c, r] / rss[p, "glibc", r] }
          }
          if (n == 0) continue
          xw = med(rw, n); xu = med(ru, n); xm = med(rm, n)
          note = ((p, c) in bad) ? " FAILED status=" bad[p, c] : (((p, c) in mism) ? " MISMATCH (output differs from glibc)" : "")
          if (note != "") fails++
          printf "%-15s %-9s %9.3f %9.3f %10d | %8.2f %8.2f %8.2f%s\n", p, c, med(w, n), med(u, n), med(m, n), xw, xu, xm, note
          if (c == "shim-per") { tw[p] = xw; tm[p] = xm
            if (nl[p, c]) { delete q; for (j = 1; j <= nl[p, c]; j++) q[j] = lg[p, c, j]; lgk[p] = med(q, nl[p, c])
              delete q; for (j = 1; j <= nl[p, c]; j++) q[j] = pz[p, c, j]; cus[p] = med(q, nl[p, c]) } }
          if (c == "shim-vol") { vw[p] = xw; vm[p] = xm }
          if (c == "base-per") { bw[p] = xw; bm[p] = xm
            if (nl[p, c]) { delete q; for (j = 1; j <= nl[p, c]; j++) q[j] = lg[p, c, j]; blg[p] = med(q, nl[p, c]) } }
        }
      }
      print ""
      print "targets (shim-per vs glibc, median of per-round ratios; printed, not asserted):"
      for (i = 1; i <= np; i++) {
        p = pn[i]
        if (!(p in tw)) continue
        vol = (p in vw) ? sprintf("shim-vol %.2fx, %.2fx; ", vw[p], vm[p]) : ""
        base = (p in bw) ? sprintf("; base-per %.2fx, %.2fx, %d KiB logged", bw[p], bm[p], blg[p]) : ""
        printf "%s %-15s time %5.2fx (<= 1.5x) %s  peak RSS %6.2fx (<= 1.3x) %s  [%s%d KiB logged, commits %.0f ms%s]\n", (tw[p] <= 1.5 && tm[p] <= 1.3 && !((p, "shim-per") in bad)) ? "PASS" : "FAIL", p, tw[p], tw[p] <= 1.5 ? "ok  " : "MISS", tm[p], tm[p] <= 1.3 ? "ok  " : "MISS", vol, lgk[p], cus[p] / 1000, base
      }
      exit fails ? 1 : 0
    }' "$OUT"
}

if [ "${SUMMARY_ONLY:-0}" = 1 ]; then
  summarise
  exit $?
fi

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR" >/dev/null
ninja -C "$BUILD_DIR" -j2 bench/shim-alloc/allocbench bench/shim-alloc/measure \
  preload/liblrvm-preload.so core/rvmutl >/dev/null
AB=$BUILD_DIR/bench/shim-alloc/allocbench
MEASURE=$BUILD_DIR/bench/shim-alloc/measure
SHIM=${SHIM:-$(cd "$BUILD_DIR" && pwd)/preload/liblrvm-preload.so}
RVMUTL=$BUILD_DIR/core/rvmutl
case " $CONFIGS " in
  *" base-"*) [ -f "${BASE_SHIM:-}" ] || { echo "bench-shim-alloc: the base-* configs need" \
                "BASE_SHIM=path/to/another/liblrvm-preload.so" >&2; exit 1; } ;;
esac
LOG_SIZE=${LOG_SIZE:-512M}
if [ ! -f "$JE" ]; then
  echo "bench-shim-alloc: $JE not found: apt-get install libjemalloc2 (or set JEMALLOC_SO)" >&2
  exit 1
fi
for tool in sort gawk sqlite3 /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "bench-shim-alloc: $tool not found: apt-get install" \
    "coreutils gawk sqlite3 python3" >&2; exit 1; }
done
BENCH_DIR=${LRVM_BENCH_DIR:-/var/tmp}
if [ "$(stat -f -c %T "$BENCH_DIR")" = tmpfs ]; then
  echo "bench-shim-alloc: $BENCH_DIR is tmpfs (the commit's fdatasync would cost nothing):" \
    "set LRVM_BENCH_DIR to a directory on a disk" >&2
  exit 1
fi
WORK=$(mktemp -d "$BENCH_DIR/shim-alloc.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Inputs and scripts, sized by SCALE (awk's own numbers, so every run reads the same bytes).
n_int() { awk -v s="$SCALE" -v n="$1" 'BEGIN { v = int(n * s); print v < 1 ? 1 : v }'; }
awk -v n="$(n_int 600000)" 'BEGIN { x = 12345; for (i = 0; i < n; i++) {
  x = (x * 1103515245 + 12345) % 2147483648; printf "%08x %d %s\n", x, i % 977, substr("abcdefghijklmnopqrstuvwxyz", 1 + x % 20) } }' \
  > "$WORK/sort.in"
cat > "$WORK/gawk.awk" <<EOF
BEGIN { n = $(n_int 300000)
  for (i = 0; i < n; i++) a["key" i] = sprintf("v%d", i * 7)
  for (k in a) s += length(a[k])
  for (i = 0; i < n; i += 2) delete a["key" i]
  for (i = 0; i < n; i += 3) b[i % 1000] = b[i % 1000] "x"
  print s, length(a), length(b) }
EOF
cat > "$WORK/py.py" <<EOF
d = {}
l = []
for i in range($(n_int 300000)):
    d['k%d' % i] = [i, str(i) * 3, {'a': i}]
    l.append((i, 'x' * (i % 50)))
print(sum(len(v[1]) for v in d.values()), len(l), sum(len(s) for _, s in l))
EOF
cat > "$WORK/sq.sql" <<EOF
create table t(a integer primary key, b text, c integer);
with recursive r(i) as (select 1 union all select i + 1 from r where i < $(n_int 300000))
  insert into t select i, printf('row-%d-%08x', i, (i * 2654435761) % 4294967296), i % 1000 from r;
create index tc on t(c, b);
select count(*), sum(length(b)) from t;
select c, count(*), max(b) from t group by c order by 2 desc, 1 limit 3;
EOF

# shim_of CONFIG -- the library a shim config preloads
shim_of() {
  case $1 in
    base-*) echo "$BASE_SHIM" ;;
    *) echo "$SHIM" ;;
  esac
}

# run_prog PROGRAM CONFIG ROUND -- one measurement, appended to OUT as a "run" line
run_prog() {
  local p=$1 c=$2 r=$3 envs=() in=/dev/null cmd=()
  case $c in
    glibc) ;;
    jemalloc) envs=(-e "LD_PRELOAD=$JE") ;;
    shim-vol|base-vol) envs=(-e "LD_PRELOAD=$(shim_of "$c")") ;;
    shim-per|base-per) rm -rf "$WORK/seg"; mkdir "$WORK/seg"
              "$RVMUTL" create-log "$WORK/seg/heap.log" "$LOG_SIZE" >/dev/null
              envs=(-e "LD_PRELOAD=$(shim_of "$c")" -e "LRVM_SEGMENT=$WORK/seg/heap"
                    -e "LRVM_COMMIT=exit" -e LRVM_STATS=1) ;;
    *) echo "bench-shim-alloc: unknown config $c (CONFIGS: glibc jemalloc shim-vol shim-per" \
         "base-vol base-per)" >&2
       exit 1 ;;
  esac
  case $p in
    larson|scratch|xmalloc|mix|tree) cmd=("$AB" "$p" "$SCALE") ;;
    sort) cmd=(sort "$WORK/sort.in") ;;
    gawk) cmd=(gawk -f "$WORK/gawk.awk") ;;
    python3) cmd=(/usr/bin/python3 -S "$WORK/py.py") ;;
    python3-malloc) envs+=(-e PYTHONMALLOC=malloc); cmd=(/usr/bin/python3 -S "$WORK/py.py") ;;
    sqlite3) in=$WORK/sq.sql; cmd=(sqlite3 :memory:) ;;
    *) echo "bench-shim-alloc: unknown program $p (ONLY: $PROGRAMS)" >&2; exit 1 ;;
  esac
  local res extra nerr
  res=$("$MEASURE" -i "$in" -o "$WORK/out" "${envs[@]}" -- "${cmd[@]}" 2>"$WORK/err") || true
  # LRVM_STATS: "tracking wp-async: N commits, K KiB logged, ... commit avg U us": N x U is the
  # time in commits (the exit commit, plus the new empty heap's first commit)
  extra=$(sed -n 's/.*: \([0-9]*\) commits, \([0-9]*\) KiB logged.*commit avg \([0-9]*\) us.*/\1 \2 \3/p' \
    "$WORK/err" | awk '{ printf "logged_kib=%d commit_us=%d", $2, $1 * $3 }')
  nerr=$(grep -c '^lrvm: ' "$WORK/err" | tr -d '\n' || true)
  nerr=$((nerr - $(grep -c '^lrvm: stats:' "$WORK/err" || true)))
  echo "run prog=$p config=$c round=$r $res out=$(md5sum < "$WORK/out" | cut -c1-12) lrvm_err=$nerr $extra" >> "$OUT"
  grep '^lrvm: ' "$WORK/err" | grep -v '^lrvm: stats:' | sed "s/^/err prog=$p config=$c round=$r: /" >> "$OUT" || true
  case $c in *-per) rm -rf "$WORK/seg" ;; esac
  return 0
}

mkdir -p "$(dirname "$OUT")"
{
  echo "# $(date -u '+%F %H:%M UTC') $(uname -r) $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# rounds=$ROUNDS scale=$SCALE programs: $ONLY; configs: $CONFIGS; shim at $(git rev-parse --short HEAD): $SHIM; base: ${BASE_SHIM:-none}; log $LOG_SIZE"
} | tee "$OUT"
for r in $(seq "$ROUNDS"); do
  for p in $ONLY; do
    for c in $CONFIGS; do
      run_prog "$p" "$c" "$r"
    done
  done
  echo "# round $r done, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
done
echo
summarise | tee -a "$OUT"
