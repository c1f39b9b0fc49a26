#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fuzz.sh -- build the libFuzzer targets of core (tests/fuzz/fuzz_*.c) with clang into
# build-fuzz/ and run each for FUZZ_SECONDS (default 30) on its committed seed corpus.
#
#   bash scripts/fuzz.sh                 # every target, 30 s each
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh log     # one target, longer
#
# The targets are compiled together with the core sources (not the meson library), because
# they call internal readers directly and need -fsanitize=fuzzer on the code under test.
# New inputs found are written to build-fuzz/corpus-<target>/ (not committed); a crash leaves
# build-fuzz/crash-* and makes this script fail -- that is a bug to report, with the file.
# Exit 77 (meson: skipped) only when clang is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG=${CLANG:-clang}
if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "fuzz.sh: clang not found: fuzz targets NOT built and NOT run (apt-get install clang)"
    exit 77
fi
SECONDS_EACH=${FUZZ_SECONDS:-30}
OUT=${FUZZ_BUILD_DIR:-build-fuzz}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SRC_ROOT=$(pwd)
# the libraries only (core needs vmprim): no tools (rvmutl/, rdsinit/ and any file with a main)
core_srcs="$(ls core/*/*.c | grep -v -e '^core/rvmutl/' -e '^core/rdsinit/' |
             xargs grep -L "^int main" || true) vmprim/src/*.c"  # grep -L: status 1 is normal
flags=(-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -Icore/include -Icore/base -Icore/engine -Icore/track -Icore/heap -Icore/image -Icore/rds -Ivmprim/include -Ivmprim/src -pthread)
targets=${*:-$(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||')}
status=0
for t in $targets; do
    src=tests/fuzz/fuzz_$t.c
    [ -f "$src" ] || { echo "fuzz.sh: no target $src"; exit 2; }
    echo "fuzz.sh: building $t"
    # a target that needs only a few sources names them ("FUZZ_SOURCES: a.c b.c"): faster build
    srcs=$(sed -n 's/^ \* FUZZ_SOURCES: //p' "$src")
    # shellcheck disable=SC2086
    "$CLANG" "${flags[@]}" ${srcs:-$core_srcs} "$src" -o "$OUT/fuzz_$t"
    mkdir -p "$OUT/corpus-$t"
    echo "fuzz.sh: running $t for ${SECONDS_EACH}s"
    log="$OUT/fuzz-$t.log"   # the whole run; on failure its report is printed, not just a tail
    if (cd "$OUT" && "./fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len=140000 \
            -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
            "corpus-$t" "$SRC_ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1); then
        tail -8 "$log"
    else
        # the sanitizer's or libFuzzer's report: from its first line to the end
        awk '/ERROR: |runtime error|==[0-9]+==|deadly signal/ {p=1} p' "$log" | head -80
        echo "fuzz.sh: target $t FAILED (full output $log; input $OUT/crash-* / leak-* / timeout-*)"
        status=1
    fi
done
exit $status
