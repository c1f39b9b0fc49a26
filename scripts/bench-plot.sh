#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-plot.sh -- the benchmarks' headline comparisons as PNG pictures, drawn by gnuplot from
# the CSV files the benchmark scripts write (the same values as the tables they print).
#
#   bench-plot.sh durable CSV PNG   durable small transactions per second: lrvm, the disk
#                                   floor (one 4 KiB pwrite + fdatasync) and the peers
#                                   (from bench/out/rvm.csv, scripts/bench-rvm.sh)
#   bench-plot.sh restart CSV PNG   time to main after a restart vs heap size: segment mapped
#                                   (the shim), image read, no shim (glibc)
#   bench-plot.sh pause CSV PNG     pause a signal commit imposes on the program vs the size of
#                                   the dirty set (both from bench/out/shim-restart.csv,
#                                   scripts/bench-shim-restart.sh)
#   bench-plot.sh cont CSV PNG      continuous commits: the program's work per batch, CPU,
#                                   commit pause and peak RSS against the commit interval, one
#                                   line per backend, ratios against the program alone
#                                   (bench/out/cont.csv, part A, scripts/bench-cont.sh)
#
# LABEL (environment) is printed under the title: when and on what machine the values were
# measured. gnuplot comes from Debian's gnuplot-nox; the bench scripts install it.
set -euo pipefail
kind=${1:-} csv=${2:-} png=${3:-}
if [ -z "$png" ]; then
  echo "usage: bench-plot.sh durable|restart|pause|cont CSV PNG" >&2
  exit 2
fi
[ -r "$csv" ] || { echo "bench-plot.sh: cannot read $csv (run the benchmark first)" >&2; exit 1; }
command -v gnuplot >/dev/null ||
  { echo "bench-plot.sh: gnuplot not found: apt-get install gnuplot-nox" >&2; exit 1; }
label=${LABEL:-$(date -u +%Y-%m-%d)}
dat=$(mktemp /tmp/lrvm-plot.XXXXXX)
trap 'rm -f "$dat"' EXIT

common="set terminal pngcairo size 900,520 font 'sans,11'; set output '$png';
        set grid ytics; set key top left; set border 3; set xtics nomirror; set ytics nomirror"

case $kind in
durable)
  # W1 rows: "system",W1,txn_per_s,value,unit -> system <tab> value, lrvm and the floor first
  # colour: 1 lrvm, 2 the floor, 3 the peers
  awk -F, '$2 == "W1" && $3 == "txn_per_s" { gsub(/"/, "", $1)
           c = $1 == "lrvm" ? 1 : ($1 ~ /^floor/ ? 2 : 3); print $1 "\t" $4 "\t" c }' "$csv" |
    sort -t$'\t' -k2,2nr >"$dat"
  [ -s "$dat" ] || { echo "bench-plot.sh: no W1 txn_per_s rows in $csv" >&2; exit 1; }
  gnuplot <<EOF
$common
set title "Durable small transactions (W1: 4 x 8-byte updates, flush commit)\nred: lrvm; grey: the disk floor, one 4 KiB pwrite + fdatasync; blue: peers\n{/*0.8 $label}"
set ylabel "transactions per second (more is better)"
set style fill solid 0.8 border -1
set boxwidth 0.6
set yrange [0:*]
set xtics rotate by -20
set datafile separator "\t"
set linetype 11 lc rgb '#c0392b'; set linetype 12 lc rgb '#7f8c8d'; set linetype 13 lc rgb '#4a7ab5'
plot '$dat' using 0:2:(\$3 + 10):xtic(1) with boxes lc variable notitle, \
     '' using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.7 notitle
EOF
  ;;
restart)
  for m in mapped_to_main read_to_main glibc_to_main; do
    awk -F, -v m="$m" '$1 == "restart" && $3 == m { print $2 "\t" $4 }' "$csv" | sort -n
    printf '\n\n'
  done >"$dat"
  grep -q . "$dat" || { echo "bench-plot.sh: no restart rows in $csv" >&2; exit 1; }
  gnuplot <<EOF
$common
set title "Restart of an unmodified program under the shim: time to main\n{/*0.8 $label}"
set xlabel "heap size (MiB)"; set ylabel "ms to main (log scale; less is better)"
set logscale xy; set xtics (64, 128, 256, 512, 1024, 2048, 4096)
plot '$dat' index 0 using 1:2 with linespoints lw 2 pt 7 title 'segment mapped (lrvm-run)', \
     ''     index 1 using 1:2 with linespoints lw 2 pt 5 title 'image read into memory', \
     ''     index 2 using 1:2 with linespoints lw 2 pt 9 title 'no shim (glibc, nothing restored)'
EOF
  ;;
pause)
  awk -F, '$1 == "pause" { v[$2, $3] = $4; s[$2] = 1 }
           END { for (m in s) print m "\t" v[m, "first_commit_pause_median"] "\t" \
                 v[m, "first_commit_pause_min"] "\t" v[m, "first_commit_pause_max"] "\t" \
                 v[m, "second_commit_pause_median"] }' "$csv" | sort -n >"$dat"
  [ -s "$dat" ] || { echo "bench-plot.sh: no pause rows in $csv" >&2; exit 1; }
  gnuplot <<EOF
$common
set title "Pause of a signal commit seen by the program vs dirty-set size (wp-async)\n{/*0.8 $label}"
set xlabel "dirty memory at the commit (MiB)"; set ylabel "pause (ms; less is better)"
set logscale x; set xtics (16, 32, 64, 128, 256, 512, 1024); set yrange [0:*]
plot '$dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 title '1st commit (fresh pages): median, min..max', \
     ''     using 1:5 with linespoints lw 2 pt 5 title '2nd commit (same pages again): median'
EOF
  ;;
cont)
  # Part A rows ended by exit (a killed run prints no statistics): one block per backend of
  # interval_ms, work p50, CPU and peak RSS as ratios against the part's no-tool row, and the
  # average and maximum commit pause in ms. Columns: the CSV header bench-cont.sh writes.
  awk -F, 'function ms(iv) { return iv ~ /ms$/ ? iv + 0 : (iv ~ /s$/ ? iv * 1000 : -1) }
           $1 == "A" && $2 == "none" { w = $12; c = $17; r = $18 }
           $1 == "A" && $2 != "none" && $4 == "exit" && ms($3) > 0 {
             if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
             rows[$2] = rows[$2] ms($3) "," $12 "," $17 "," $23 "," $24 "," $18 ";" }
           END { if (w <= 0 || c <= 0 || r <= 0) exit 1
                 for (i = 1; i <= n; i++) {
                   printf "# %s\n", order[i]
                   m = split(rows[order[i]], l, ";")
                   for (j = 1; j < m; j++) { split(l[j], f, ",")
                     printf "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\n", f[1], f[2] / w, f[3] / c,
                            f[4] / 1000, f[5] / 1000, f[6] / r }
                   printf "\n\n" } }' "$csv" >"$dat" ||
    { echo "bench-plot.sh: no part A row of the program alone in $csv" >&2; exit 1; }
  grep -q '^[0-9]' "$dat" || { echo "bench-plot.sh: no part A shim rows in $csv" >&2; exit 1; }
  mapfile -t backends < <(sed -n 's/^# //p' "$dat")
  # per_backend COLUMN -- gnuplot's plot list: one line per backend, COLUMN against interval
  per_backend() {
    local i sep=""
    for i in "${!backends[@]}"; do
      printf "%s'%s' index %d using 1:%d with linespoints lw 2 pt %d title '%s'" "$sep" "$dat" \
        "$i" "$1" $((7 - 2 * (i % 3))) "${backends[$i]}"
      sep=", "
    done
  }
  gnuplot <<EOF
set terminal pngcairo size 1000,760 font 'sans,10'; set output '$png'
set multiplot layout 2,2 title "Continuous commits: a program mutating its heap at a steady rate under lrvm-run --commit interval:T\n{/*0.8 ratios against the same program alone in the same run; $label}"
set grid; set border 3; set xtics nomirror; set ytics nomirror; set key top left
set logscale x; set xrange [*:*] reverse; set offsets 0, 0, graph 0.3, 0   # room for the key
set xlabel "commit interval (ms, log scale; more frequent to the right)"
set yrange [0:*]
set title "work per batch, median (x the program alone)"
plot $(per_backend 2)
set title "CPU time (x the program alone)"
plot $(per_backend 3)
set title "commit pause, average (ms)"
plot $(per_backend 4)
set title "peak RSS (x the program alone)"
plot $(per_backend 6)
unset multiplot
EOF
  ;;
*)
  echo "bench-plot.sh: unknown plot '$kind' (durable, restart, pause, cont)" >&2
  exit 2
  ;;
esac
echo "bench-plot.sh: wrote $png"
