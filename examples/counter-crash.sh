#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# counter-crash.sh -- kill the counter example with SIGKILL at random moments and check
# that every restart finds the 16 counters equal (each transaction adds 1 to all of
# them) and never smaller than before. Usage: counter-crash.sh COUNTER_BINARY [ROUNDS]
set -euo pipefail
bin=$1
rounds=${2:-5}
dir=$(mktemp -d /tmp/lrvm-counter-XXXXXX)
trap 'rm -rf "$dir"' EXIT
last=0
for ((i = 0; i < rounds; i++)); do
    "$bin" "$dir" 1000000 >/dev/null &
    pid=$!
    sleep "0.$((RANDOM % 4 + 1))"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    read -r -a v <<<"$("$bin" "$dir" 0 | sed -n 's/^start: //p')"
    for x in "${v[@]}"; do
        if [[ "$x" != "${v[0]}" ]]; then
            echo "round $i: counters differ after recovery: ${v[*]}" >&2
            exit 1
        fi
    done
    if ((v[0] < last)); then
        echo "round $i: counters went back from $last to ${v[0]}" >&2
        exit 1
    fi
    last=${v[0]}
    echo "round $i: all 16 counters = ${v[0]} after kill -9 and recovery"
done
