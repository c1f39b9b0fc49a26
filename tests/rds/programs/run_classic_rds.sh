#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run_classic_rds.sh -- install lrvm into a scratch directory (meson install --destdir), then
# build a program written for the original LRVM + RDS + segment loader the way its users
# do -- `cc prog.c -lrds -lseg -lrvm`, and `pkg-config --cflags --libs rvm|rvmlwp|rvmpt` --
# and run it on a segment made by the installed rvmutl and rdsinit.
# Usage: run_classic_rds.sh CC SRC BUILD_DIR
set -euo pipefail
CC=$1 SRC=$2 BUILD=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/lrvm-classic-rds-XXXXXX")
trap 'rm -rf "$work"' EXIT

meson install -C "$BUILD" --destdir "$work/root" --no-rebuild --quiet >/dev/null
read -r prefix libdir < <(meson introspect "$BUILD" --buildoptions | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"], o["libdir"])')
root="$work/root$prefix"
LIB="$root/$libdir"
for n in rvm seg rds rvmlwp seglwp rdslwp rvmpt segpt rdspt; do
    [ -e "$LIB/lib$n.so" ] || { echo "run_classic_rds: lib$n.so is not installed"; exit 1; }
done

# the original's compile line (its rvm.pc: -lrds -lseg -lrvm)
"$CC" -I"$root/include" "$SRC" -o "$work/classic_rds" -L"$LIB" -lrds -lseg -lrvm -lpthread \
    -Wl,-rpath,"$LIB" || { echo "run_classic_rds: does not build with -lrds -lseg -lrvm"; exit 1; }
# and through pkg-config, every flavour
for pc in rvm rvmlwp rvmpt; do
    flags=$(PKG_CONFIG_PATH="$LIB/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$work/root" \
            pkg-config --cflags --libs "$pc") \
        || { echo "run_classic_rds: pkg-config does not know $pc"; exit 1; }
    # shellcheck disable=SC2086
    "$CC" "$SRC" -o "$work/classic_$pc" $flags -Wl,-rpath,"$LIB" \
        || { echo "run_classic_rds: does not build with pkg-config $pc ($flags)"; exit 1; }
done
# the headers are clean C99 and C++
"$CC" -std=c99 -pedantic -Wall -Wextra -Werror -I"$root/include" -fsyntax-only "$SRC" \
    || { echo "run_classic_rds: rds.h warns under -std=c99 -pedantic -Wall -Wextra"; exit 1; }
if command -v g++ >/dev/null 2>&1; then
    g++ -x c++ -std=c++11 -Wall -Wextra -Werror -I"$root/include" -fsyntax-only "$SRC" \
        || { echo "run_classic_rds: rds.h does not compile as C++"; exit 1; }
fi

export LD_LIBRARY_PATH="$LIB"
"$root/bin/rvmutl" create-log "$work/log" 1m >/dev/null
"$root/bin/rdsinit" -f "$work/log" "$work/seg" 0x44000 0x5a5000000000 0x40000 0x2000 64 64 \
    | grep -q 'rds_zap_heap completed successfully.' \
    || { echo "run_classic_rds: rdsinit failed"; exit 1; }
"$work/classic_rds" "$work/log" "$work/seg" fill | tee "$work/fill.out"
grep -q '^classic_rds: OK$' "$work/fill.out"
grep -q '^classic_rds: mallocs 16, frees 2$' "$work/fill.out" \
    || { echo "run_classic_rds: RDS statistics differ"; exit 1; }
"$work/classic_rvmpt" "$work/log" "$work/seg" check | grep -q '^classic_rds: OK$' \
    || { echo "run_classic_rds: the check run failed"; exit 1; }
"$root/bin/rvmutl" rds-check "$work/seg"
echo "run_classic_rds: OK"
