#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh -- the project's main job: install, build, then show an UNMODIFIED program getting a
# persistent, crash-consistent heap and globals from `lrvm-run`.
#
# The program is examples/journal.c: plain C, no lrvm call, its data a linked list in the heap
# rooted in global variables. The demo runs it without lrvm (nothing survives), then under
# lrvm-run several times (its state grows across runs), then kills a run with SIGKILL while it
# appends under 100 ms timer commits, and restarts it: the restart finds the state of a commit,
# verified entry by entry. Every claim the demo prints is checked first; it exits non-zero if
# one does not hold.
#
#   bash scripts/demo.sh                      # as root on Debian 12: installs, builds, runs
#   DEMO_DIR=/some/dir bash scripts/demo.sh   # put the segment and log there, and keep them
#   DEMO_KEEP=1 bash scripts/demo.sh          # keep the scratch directory (its name is printed)
set -euo pipefail
cd "$(dirname "$0")/.."

# Escape codes only on a terminal: redirected output stays plain text.
if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
say() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

# 0. Install and build: one line per step, with its duration; the details go to a log.
SETUP_LOG=$(mktemp /tmp/lrvm-demo-setup.XXXXXX.log)
step() {  # step "what" setup-argument
  local t0=$SECONDS
  printf '%s... ' "$1"
  if ! bash scripts/setup.sh "$2" >"$SETUP_LOG" 2>&1; then
    echo "failed"; cat "$SETUP_LOG" >&2; fail "$1 (log above, also in $SETUP_LOG)"
  fi
  echo "done ($((SECONDS - t0)) s)"
}
step "installing Debian packages (only those missing)" deps
step "building into ./${BUILD_DIR:-build} (the first time takes a few minutes)" build
rm -f "$SETUP_LOG"

BUILD_DIR=${BUILD_DIR:-build}
B=$(cd "$BUILD_DIR" && pwd)
JOURNAL=$B/examples/journal
RUN=$B/preload/lrvm-run
RVMUTL=$B/core/rvmutl
if [ -n "${DEMO_DIR:-}" ]; then
  DIR=$DEMO_DIR KEEP=1
  mkdir -p "$DIR"
else
  DIR=$(mktemp -d /tmp/lrvm-demo.XXXXXX) KEEP=${DEMO_KEEP:-0}
fi
# The scratch directory holds a 256 MiB log: remove it at the end unless asked to keep it.
cleanup() {
  if [ "$KEEP" = 1 ]; then echo "demo: kept the segment and log in $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
SEG=$DIR/journal.seg
rm -f "$SEG" "$SEG.log"

show() { printf '$ %s\n' "$*" | sed "s#$B/##g; s#$DIR/#\$DIR/#g"; "$@"; }
entries() { sed -n 's/.* \([0-9][0-9]*\) entries.*/\1/p' | tail -1; }

say "1. examples/journal is an ordinary C program: no lrvm call, no file. Alone, it forgets."
for i in 1 2; do out=$(show "$JOURNAL" add 3); echo "$out"; done
[ "$(echo "$out" | entries)" = 3 ] || fail "a plain run should start from nothing"
echo "   both runs started from nothing: 3 entries each time"

say "2. The same binary under lrvm-run: its heap and globals live in \$DIR/journal.seg"
echo "   (commit at exit, the default; the segment and its log are created on first use)"
for i in 1 2 3; do out=$(show "$RUN" --segment "$SEG" -- "$JOURNAL" add 1000); echo "$out"; done
[ "$(echo "$out" | entries)" = 3000 ] || fail "three runs under lrvm-run should hold 3000 entries"
echo "   each run continued from the last: 3000 entries after three runs"

say "3. A crash: a run appending continuously, committing every 100 ms, killed with SIGKILL"
"$RUN" --segment "$SEG" --commit exit,interval:100ms -- "$JOURNAL" grow >"$DIR/grow.out" 2>&1 &
pid=$!
for _ in $(seq 300); do   # wait until main has started (at most 30 s), then let it run 1.5 s
  grep -q starting "$DIR/grow.out" 2>/dev/null && break
  sleep 0.1
done
grep -q starting "$DIR/grow.out" || fail "the growing run did not start within 30 s"
sleep 1.5
# kill and reap in one group whose stderr is discarded: bash reports the killed job there
{ kill -KILL "$pid"; wait "$pid"; } 2>/dev/null || true
cat "$DIR/grow.out"
seen=$(entries <"$DIR/grow.out")
[ -n "$seen" ] && [ "$seen" -gt 3000 ] || fail "the growing run reported no progress before the kill"
echo "   killed with SIGKILL after it reported $seen entries: no exit commit ran"

say "4. Restart: the state of the last commit before the kill, verified entry by entry"
out=$(show "$RUN" --segment "$SEG" -- "$JOURNAL" show) || fail "the restart found a corrupt journal"
echo "$out"
got=$(echo "$out" | entries)
[ -n "$got" ] || fail "the restart printed no summary"
[ "$got" -ge 3000 ] || fail "the restart lost committed entries ($got < 3000)"
[ "$got" -gt 3000 ] || fail "no timer commit reached the segment in 1.5 s"
echo "   $got entries came back, each one checked by the program itself (it exits with status 3"
echo "   on a torn list); more than the 3000 of step 2, so the timer commits reached the disk."

say "5. The data segment, as rvmutl sees it"
show "$RVMUTL" image "$SEG"

say "6. The two files, and why they look big"
seg_size=$(stat -c %s "$SEG") seg_disk=$(($(stat -c '%b * %B' "$SEG")))
log_size=$(stat -c %s "$SEG.log") log_disk=$(($(stat -c '%b * %B' "$SEG.log")))
mib() { echo "$(( $1 / 1048576 )) MiB"; }
printf '   %-14s %10s long, %10s on disk\n' journal.seg "$(mib "$seg_size")" "$(mib "$seg_disk")"
printf '   %-14s %10s long, %10s on disk\n' journal.seg.log "$(mib "$log_size")" "$(mib "$log_disk")"
[ "$seg_disk" -lt "$seg_size" ] || fail "the segment should be sparse (less on disk than its length)"
echo "   The segment is sparse: it is as long as the heap's address-space reservation"
echo "   (--heap-size, 16 GiB by default) but only the committed pages occupy disk."
[ "$log_disk" -ge "$log_size" ] || fail "the log should be fully allocated"
echo "   The log is preallocated to its full size (--log-size, 256 MiB by default) and written"
echo "   in place, so a full disk can never interrupt a commit halfway."
echo
echo "demo: OK. More: README.md (a tour of the four ways to use lrvm), man lrvm-run after install,"
echo "      bash scripts/bench-vmprim.sh for Appel & Li's primitives on this machine."
