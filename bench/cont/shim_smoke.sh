#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shim_smoke.sh LRVM_RUN CONT_BENCH -- cont-bench under lrvm-run with interval commits, killed
# with SIGKILL at the end of a short run, must find its heap again on the next start and verify
# every node. The program stays still for a second before its kill, so the last commits hold a
# whole heap (a commit in the middle of a rewrite keeps it half made: the program's state at
# that instant). No timing is asserted.
set -euo pipefail
run=$1 prog=$2
dir=$(mktemp -d /var/tmp/lrvm-cont-smoke-XXXXXX)
trap 'rm -rf "$dir"' EXIT
st=0
"$run" --segment "$dir/seg" --log-size 64M --commit exit,interval:10ms -- \
  "$prog" --heap-mib 2 --fraction 0.01 --period-ms 10 --seconds 1.5 --end-kill >/dev/null || st=$?
if [ "$st" -ne 137 ]; then
  echo "shim_smoke: the run ended with status $st, expected 137 (its own SIGKILL)" >&2
  exit 1
fi
"$run" --segment "$dir/seg" --log-size 64M -- "$prog" --restart-only
