#!/bin/bash
# bench-globals.sh -- what keeping the executable's globals (LRVM_GLOBALS=1, the default) costs
# at start-up, side by side with LRVM_GLOBALS=0 in one run: wall time (median of N interleaved
# runs, each a restart from an existing segment) and peak RSS, for a few programs.
#
#   bash scripts/bench-globals.sh [BUILD_DIR] [N]      (defaults: build, 7)
#
# Programs: python3 -c pass (a big executable), sort of 1000 numbers, and a C
# program with a 256 MiB .bss (static char buf[1 << 28]) compiled here.
set -eu
BUILD=${1:-build}
N=${2:-7}
SHIM=$(cd "$BUILD" && pwd)/preload/liblrvm-preload.so
[ -f "$SHIM" ] || { echo "no $SHIM: build first (meson setup $BUILD && ninja -C $BUILD)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/lrvm-bench-globals-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/big.c" <<'EOF'
#include <stdio.h>
static char big[256 << 20];
int counter;
int main(void)
{
  counter++;
  big[(counter % 1000) * 4096] = 1;
  int n = 0;
  for (int i = 0; i < 1000; i++)
    n += big[i * 4096];   /* read: the array must not be optimised away */
  printf("%d %d\n", counter, n);
  return 0;
}
EOF
cc -O1 -o "$TMP/bigbss" "$TMP/big.c"
seq 1000 | sort -R > "$TMP/nums"

# one -- run "$@" under the shim with LRVM_GLOBALS=$G on segment $SEG; prints "ms maxrss_kb"
one() {
  local s e
  s=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$TMP/rss" env LD_PRELOAD="$SHIM" LRVM_SEGMENT="$SEG" \
    LRVM_HEAP_SIZE=64M LRVM_LOG_SIZE=16M LRVM_GLOBALS="$G" "$@" >/dev/null 2>&1 </dev/null
  e=$(date +%s%N)
  echo "$(( (e - s) / 1000 )) $(cat "$TMP/rss")"
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf "%-22s %12s %12s %7s %12s %12s %7s\n" program "ms globals=0" "ms globals=1" ratio \
  "RSS KB =0" "RSS KB =1" ratio
bench() {
  local name=$1; shift
  declare -A T R
  for G in 0 1; do
    SEG=$TMP/seg-$name-$G
    G=$G SEG=$SEG one "$@" >/dev/null   # create the segment: the measured runs are restarts
  done
  for _ in $(seq "$N"); do
    for G in 0 1; do
      SEG=$TMP/seg-$name-$G
      read -r t r < <(G=$G SEG=$SEG one "$@")
      T[$G]="${T[$G]:-} $t"
      R[$G]="${R[$G]:-} $r"
    done
  done
  local t0 t1 r0 r1
  t0=$(echo "${T[0]}" | median); t1=$(echo "${T[1]}" | median)
  r0=$(echo "${R[0]}" | median); r1=$(echo "${R[1]}" | median)
  printf "%-22s %12.1f %12.1f %6.2fx %12d %12d %6.2fx\n" "$name" "$(echo "$t0/1000" | bc -l)" \
    "$(echo "$t1/1000" | bc -l)" "$(echo "$t1/$t0" | bc -l)" "$r0" "$r1" "$(echo "$r1/$r0" | bc -l)"
}
bench python3-pass python3 -c pass
bench sort-1000 sort -n "$TMP/nums"
bench bss-256MiB "$TMP/bigbss"
echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg); N=$N interleaved runs, medians)"
