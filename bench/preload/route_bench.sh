#!/bin/sh
# SPDX-License-Identifier: MIT
# route_bench.sh OLD.so NEW.so [REPS] -- route_bench under two builds of liblrvm-preload.so,
# alternating A/B REPS times (default 9) with a fresh persistent segment each run; prints the
# median ns/op of each and NEW/OLD. Build route_bench with: cc -O2 -o /tmp/route_bench
# bench/preload/route_bench.c (or set RB=path).
set -eu
A=$1; B=$2; REPS=${3:-9}
RB=${RB:-/tmp/route_bench}
D=$(mktemp -d /tmp/route-bench-XXXXXX)
for i in $(seq 1 "$REPS"); do
  for w in A B; do
    so=$A; [ $w = B ] && so=$B
    rm -f "$D"/seg*
    LD_PRELOAD=$so LRVM_SEGMENT=$D/seg LRVM_HEAP_SIZE=256M "$RB" 2000000 | sed "s/^/$w /"
  done
done > "$D/raw"
for k in malloc_free_ns strdup_free_ns fopen_fgetc_fclose_ns; do
  a=$(awk -v k=$k '$1=="A" && $2==k {print $3}' "$D/raw" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  b=$(awk -v k=$k '$1=="B" && $2==k {print $3}' "$D/raw" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  echo "$k old $a new $b ratio $(echo "$b $a" | awk '{printf "%.2f", $1/$2}')"
done
rm -rf "$D"
