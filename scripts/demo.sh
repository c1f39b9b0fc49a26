#!/usr/bin/env bash
# demo.sh -- the project's main job: install, build, then show an UNMODIFIED program getting a
# persistent, crash-consistent heap and globals from `lrvm-run`.
#
# The program is examples/journal.c: plain C, no lrvm call, its data a linked list in the heap
# rooted in global variables. The demo runs it without lrvm (nothing survives), then under
# lrvm-run several times (its state grows across runs), then kills a run with SIGKILL while it
# appends under 100 ms timer commits, and restarts it: the restart finds the last committed
# state, verified entry by entry. Every step checks what it claims and the demo exits non-zero
# if a claim does not hold.
#
#   bash scripts/demo.sh                  # as root on Debian 12: installs, builds, runs
#   DEMO_DIR=/some/dir bash scripts/demo.sh   # where the segment and log go (default: a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
BUILD_DIR=${BUILD_DIR:-build}
B=$(cd "$BUILD_DIR" && pwd)
JOURNAL=$B/examples/journal
RUN=$B/preload/lrvm-run
RVMUTL=$B/core/rvmutl
DIR=${DEMO_DIR:-$(mktemp -d /tmp/lrvm-demo.XXXXXX)}
mkdir -p "$DIR"
SEG=$DIR/journal.seg
rm -f "$SEG" "$SEG.log"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*" | sed "s#$B/##g; s#$DIR/#\$DIR/#g"; "$@"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }
entries() { sed -n 's/.* \([0-9][0-9]*\) entries.*/\1/p' | tail -1; }

say "1. examples/journal is an ordinary C program: no lrvm call, no file. Alone, it forgets."
for i in 1 2; do out=$(show "$JOURNAL" add 3); echo "$out"; done
[ "$(echo "$out" | entries)" = 3 ] || fail "a plain run should start from nothing"

say "2. The same binary under lrvm-run: its heap and globals live in $SEG"
echo "   (commit at exit, the default; the data segment and its log are created on first use)"
for i in 1 2 3; do out=$(show "$RUN" --segment "$SEG" -- "$JOURNAL" add 1000); echo "$out"; done
[ "$(echo "$out" | entries)" = 3000 ] || fail "three runs under lrvm-run should hold 3000 entries"

say "3. A crash: a run appending continuously, committing every 100 ms, killed with SIGKILL"
"$RUN" --segment "$SEG" --commit exit,interval:100ms -- "$JOURNAL" grow >"$DIR/grow.out" 2>&1 &
pid=$!
for _ in $(seq 300); do   # wait until main has started (at most 30 s), then let it run 1.5 s
  grep -q starting "$DIR/grow.out" 2>/dev/null && break
  sleep 0.1
done
sleep 1.5
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
cat "$DIR/grow.out"
seen=$(entries <"$DIR/grow.out")
echo "   killed with SIGKILL after it reported $seen entries (no exit commit ran)"

say "4. Restart: the state of the last commit before the kill, verified entry by entry"
out=$(show "$RUN" --segment "$SEG" -- "$JOURNAL" show) || fail "the restart found a corrupt journal"
echo "$out"
got=$(echo "$out" | entries)
[ "$got" -ge 3000 ] || fail "the restart lost committed entries ($got < 3000)"
[ "$got" -gt 3000 ] || fail "no timer commit reached the segment in 1.5 s"
echo "   $got entries survived: more than the 3000 of step 2 (timer commits happened),"
echo "   at most what the killed run had appended; the rest was never committed."

say "5. The data segment, as rvmutl sees it"
show "$RVMUTL" image "$SEG"
ls -lsh "$SEG" "$SEG.log" | sed "s#$DIR/#\$DIR/#g"
echo
echo "demo: OK. Appel & Li's primitives on this machine: bash scripts/bench-vmprim.sh"
