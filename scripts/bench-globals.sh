#!/bin/bash
# SPDX-License-Identifier: MIT
# bench-globals.sh -- what keeping the executable's globals (LRVM_GLOBALS=1, the default) costs
# at start-up, side by side with LRVM_GLOBALS=0 in one run: wall time (median of N interleaved
# runs, each a restart from an existing segment) and peak RSS, for a few programs.
#
#   bash scripts/bench-globals.sh [BUILD_DIR] [N]      (defaults: build, 7)
#
# Programs: python3 -c pass (a big executable), sort of 1000 numbers, and a C
# program with a 256 MiB .bss (static char buf[1 << 28]) compiled here. A restart the shim
# refuses (its committed globals are not restorable) is reported as such; a crash or any other
# failure ends the benchmark with status 1.
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

# one -- run "$@" under the shim with LRVM_GLOBALS=$G on segment $SEG; prints "ms maxrss_kb",
# or "refused" when the shim refused to restore the state (status 2 with its reason). A crash
# or any other failure stops the benchmark with the program's messages: a time measured on a
# run that failed is no measurement (an earlier version discarded the status and reported
# python3's crashing restarts as costing nothing).
one() {
  local s e rc=0
  s=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$TMP/rss" env LD_PRELOAD="$SHIM" LRVM_SEGMENT="$SEG" \
    LRVM_HEAP_SIZE=64M LRVM_LOG_SIZE=16M LRVM_GLOBALS="$G" "$@" >/dev/null 2>"$TMP/err" \
    </dev/null || rc=$?
  e=$(date +%s%N)
  if [ "$rc" = 2 ] && grep -q '^lrvm: cannot restore' "$TMP/err"; then
    echo refused
    return 0
  fi
  if [ "$rc" != 0 ]; then
    echo "bench-globals.sh: $* (LRVM_GLOBALS=$G) failed with status $rc:" >&2
    head -5 "$TMP/err" >&2
    echo FAILED
    return 0
  fi
  echo "$(( (e - s) / 1000 )) $(tail -1 "$TMP/rss")"
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf "%-22s %12s %12s %7s %12s %12s %7s\n" program "ms globals=0" "ms globals=1" ratio \
  "RSS KB =0" "RSS KB =1" ratio
bench() {
  local name=$1; shift
  declare -A T R
  for G in 0 1; do
    SEG=$TMP/seg-$name-$G
    # create the segment: the measured runs are restarts
    read -r t r < <(G=$G SEG=$SEG one "$@")
    [ "$t" = FAILED ] && exit 1
  done
  for _ in $(seq "$N"); do
    for G in 0 1; do
      SEG=$TMP/seg-$name-$G
      read -r t r < <(G=$G SEG=$SEG one "$@")
      [ "$t" = FAILED ] && exit 1
      if [ "$t" = refused ]; then
        printf "%-22s LRVM_GLOBALS=%s: restart refused: %s\n" "$name" "$G" \
          "$(grep -m1 '^lrvm: cannot restore' "$TMP/err" | sed 's/.*: the /the /' | cut -c1-120)"
        return 0
      fi
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
# real executables, not wrappers found first in PATH (pyenv's python3 is a bash script: the shim
# would have measured bash, and the exec'd interpreter runs without it)
bench python3-pass /usr/bin/python3 -c pass
bench sort-1000 /usr/bin/sort -n "$TMP/nums"
bench bss-256MiB "$TMP/bigbss"
echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg); N=$N interleaved runs, medians)"
