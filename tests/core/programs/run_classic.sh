#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run_classic.sh -- compile an LRVM program written only against the original LRVM interface the way a user
# would (`cc -I<installed include dir> prog.c -llrvm`), run it, crash it, recover, and check
# the documented results. Usage: run_classic.sh CC SRC INCLUDE_DIR LIB_DIR [EXTRA_CFLAGS]
set -euo pipefail
CC=$1 SRC=$2 INC=$3 LIB=$4 EXTRA=${5:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/lrvm-classic-XXXXXX")
trap 'rm -rf "$work"' EXIT

# installed-style include tree: only the public headers, under rvm/
mkdir -p "$work/include/rvm"
cp "$INC"/rvm/rvm.h "$INC"/rvm/rvm_statistics.h "$INC"/rvm/rvm_segment.h "$work/include/rvm/"

# shellcheck disable=SC2086
"$CC" -std=gnu99 -O1 -Wall $EXTRA -I"$work/include" "$SRC" -o "$work/classic" \
    -L"$LIB" -llrvm -lpthread -Wl,-rpath,"$LIB" \
    || { echo "run_classic: the LRVM program does not compile against our headers"; exit 1; }

# the headers are clean for strict C99 and for C++ users (the original's biggest user is C++)
"$CC" -std=c99 -pedantic -Wall -Wextra -Werror -I"$work/include" -fsyntax-only "$SRC" \
    || { echo "run_classic: our headers warn under -std=c99 -pedantic -Wall -Wextra"; exit 1; }
if command -v g++ >/dev/null 2>&1; then
    g++ -x c++ -std=c++11 -Wall -Wextra -Werror -I"$work/include" -fsyntax-only "$SRC" \
        || { echo "run_classic: our headers do not compile as C++"; exit 1; }
else
    echo "run_classic: g++ not installed: C++ header check NOT run"
fi

set +e
"$work/classic" setup "$work" > "$work/setup.out" 2>&1
rc=$?
set -e
cat "$work/setup.out"
if [ "$rc" -ne 137 ]; then
    echo "run_classic: setup should end by SIGKILL (status 137), got $rc"; exit 1
fi
grep -q '^classic: mapped length 9728$' "$work/setup.out" \
    || { echo "run_classic: whole-file map of a 10000-byte file must be 9728 bytes"; exit 1; }
grep -q '^classic: flush commits 1, no_flush commits 1, aborts 1$' "$work/setup.out" \
    || { echo "run_classic: statistics differ"; exit 1; }

"$work/classic" recover "$work" | tee "$work/recover.out"
grep -q '^classic: OK$' "$work/recover.out" || { echo "run_classic: recovery check failed"; exit 1; }
