#!/bin/sh
# SPDX-License-Identifier: MIT
# locks_bench.sh SHIM.so [REPS] [N] -- locks_bench (an uncontended lock+unlock pair) under
# glibc alone, under the shim with the held-lock table off (_LRVM_TEST_NO_LOCKSET=1) and under
# the shim as shipped, alternating REPS times (default 7) with a fresh segment each run; prints
# the median ns/pair of each and the ratios. Build locks_bench with:
#   cc -O2 -pthread -o /tmp/locks_bench bench/preload/locks_bench.c   (or set LB=path)
set -eu
SO=$1; REPS=${2:-7}; N=${3:-10000000}
LB=${LB:-/tmp/locks_bench}
D=$(mktemp -d /tmp/locks-bench-XXXXXX)
for i in $(seq 1 "$REPS"); do
  "$LB" "$N" | sed "s/^/glibc /"
  rm -f "$D"/seg*
  _LRVM_TEST_NO_LOCKSET=1 LD_PRELOAD=$SO LRVM_SEGMENT=$D/seg LRVM_HEAP_SIZE=256M "$LB" "$N" \
    | sed "s/^/notable /"
  rm -f "$D"/seg*
  LD_PRELOAD=$SO LRVM_SEGMENT=$D/seg LRVM_HEAP_SIZE=256M "$LB" "$N" | sed "s/^/table /"
done > "$D/raw"
med() { awk -v w=$1 -v k=$2 '$1==w && $2==k {print $3}' "$D/raw" | sort -n |
        awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "case glibc notable table table/notable table/glibc"
for k in global_1thr global_4thr heap_1thr heap_4thr stack_1thr; do
  g=$(med glibc $k); a=$(med notable $k); b=$(med table $k)
  echo "$k $g $a $b $(echo "$b $a $g" | awk '{printf "%.2f %.2f", $1/$2, $1/$3}')"
done
rm -rf "$D"
