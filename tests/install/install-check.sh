#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# install-check.sh -- install lrvm into a scratch directory and use it the way a user would:
# pkg-config finds it, the README's compile line (sources before libraries) links, and the
# installed programs, libraries and man pages work.
#
#   install-check.sh BUILD_DIR SOURCE_DIR
#
# The install goes to a DESTDIR, so nothing outside the scratch directory is touched; the
# paths a real install would use are checked against what ld.so and pkg-config search on
# this machine, which is how a lib64 libdir (invisible to both on Debian) is caught.
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d /tmp/lrvm-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install-check: FAIL: $*" >&2; exit 1; }

dest=$tmp/dest
meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "meson install into $dest failed"; }

pc=$(find "$dest" -name lrvm.pc -print -quit)
[ -n "$pc" ] || fail "no lrvm.pc installed"
prefix=$(sed -n 's/^prefix=//p' "$pc")
libdir=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --variable=libdir lrvm)
echo "installed: prefix $prefix, libdir $libdir"

# 1. A real install into /usr or /usr/local must land where the system looks without help.
if [ "$prefix" = /usr ] || [ "$prefix" = /usr/local ]; then
  pcdir=${pc#"$dest"}
  pcdir=${pcdir%/lrvm.pc}
  pkg-config --variable pc_path pkg-config | tr ':' '\n' | grep -qx "$pcdir" ||
    fail "lrvm.pc goes to $pcdir, which pkg-config does not search ($(pkg-config --variable pc_path pkg-config))"
  searched=$(printf '/lib\n/usr/lib\n'; cat /etc/ld.so.conf /etc/ld.so.conf.d/*.conf 2>/dev/null |
             grep -v '^\s*\(#\|include\|$\)')
  grep -qx "$libdir" <<<"$searched" ||
    fail "liblrvm.so goes to $libdir, which ld.so does not search (ld.so.conf: $(echo $searched))"
  echo "ok: $pcdir is on pkg-config's path and $libdir on ld.so's"
else
  echo "note: prefix $prefix is not /usr or /usr/local; search paths not checked"
fi

# 2. Build the examples with pkg-config only, libraries after the sources.
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$dest
cc=${CC:-cc}
for ex in counter todo; do
  # shellcheck disable=SC2046
  "$cc" -o "$tmp/$ex" "$src/examples/$ex.c" $(pkg-config --cflags --libs lrvm) ||
    fail "examples/$ex.c does not build against the installed headers and libraries"
done
echo "ok: examples/counter.c and examples/todo.c build with: $cc prog.c \$(pkg-config --cflags --libs lrvm)"

# 3. Run them against the installed libraries (ldconfig would do this for a real install).
export LD_LIBRARY_PATH=$dest$libdir
loaded=$(ldd "$tmp/counter")
grep -qF "$dest$libdir/liblrvm.so" <<<"$loaded" || fail "counter does not load the installed liblrvm.so"
mkdir "$tmp/c"
"$tmp/counter" "$tmp/c" 7 >/dev/null || fail "counter's first run failed"
start=$("$tmp/counter" "$tmp/c" 0 | sed -n 's/^start: //p' | awk '{print $1}')
[ "$start" = 7 ] || fail "counter restarted with $start, expected the 7 committed steps"
echo "ok: counter recovers its 7 committed transactions from the installed liblrvm"

bin=$dest$prefix/bin
[ -x "$bin/lrvm-run" ] && [ -x "$bin/rvmutl" ] || fail "lrvm-run or rvmutl not installed in $bin"
"$bin/lrvm-run" --segment "$tmp/todo.seg" --commit none -- "$tmp/todo" add "buy milk" >/dev/null ||
  fail "installed lrvm-run could not run todo"
out=$("$bin/lrvm-run" --segment "$tmp/todo.seg" --commit none -- "$tmp/todo" list)
grep -q "buy milk" <<<"$out" || fail "todo under the installed lrvm-run lost its item: $out"
echo "ok: the installed lrvm-run finds the installed shim; todo's item survives a restart"

# 4. Man pages: installed, and the options page lists the shim's variables.
mandir=$dest$prefix/share/man
for page in man1/lrvm-run.1 man1/rvmutl.1 man7/lrvm.7 man3/rvm.h.3 man3/lrvm.h.3 \
            man3/vmprim.h.3 man3/rvm_segment.h.3; do
  [ -s "$mandir/$page" ] || fail "man page $page not installed in $mandir"
done
if command -v man >/dev/null; then
  # every option of `lrvm-run --help` is in lrvm-run(1), every variable in lrvm(7)
  page1=$(MANWIDTH=200 man -l "$mandir/man1/lrvm-run.1" 2>/dev/null)
  page7=$(MANWIDTH=200 man -l "$mandir/man7/lrvm.7" 2>/dev/null)
  help=$("$bin/lrvm-run" --help)
  opts=$(grep -oE '^  --[a-z-]+' <<<"$help" | tr -d ' ')
  [ "$(wc -l <<<"$opts")" -ge 5 ] || fail "lrvm-run --help lists too few options: $opts"
  for o in $opts; do
    grep -qF -- "$o" <<<"$page1" || fail "lrvm-run --help has $o, man lrvm-run does not"
  done
  for v in $(grep -oE 'sets LRVM_[A-Z_]+' <<<"$help" | cut -d' ' -f2); do
    grep -qF "$v" <<<"$page7" || fail "lrvm-run --help sets $v, man 7 lrvm does not list it"
  done
  echo "ok: man pages render; lrvm-run(1) and lrvm(7) list every option of lrvm-run --help"
else
  echo "note: man is not installed here; the pages were checked for presence only"
fi
echo "install-check: all checks passed"
