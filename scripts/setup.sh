#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# setup.sh -- install what lrvm needs from Debian (only what is missing), then configure and
# build into ./build. Idempotent: a second run installs nothing and rebuilds incrementally.
#
#   bash scripts/setup.sh                 # build ./build
#   bash scripts/setup.sh deps            # only install the missing packages
#   bash scripts/setup.sh build           # only configure and build
#   BUILD_DIR=build-asan MESON_ARGS="-Db_sanitize=address,undefined" bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Build and test dependencies. Benchmark peers (LMDB, SQLite, PMDK) are listed separately so
# that a user who only wants the library does not pull them in: bench scripts install them.
PKGS=(meson ninja-build pkg-config gcc g++ libcriterion-dev libjemalloc-dev libunwind-dev
      python3 util-linux gawk sqlite3  # gawk, sqlite3: programs the preload tests run under the shim
      rsync                            # tests that copy a segment with its log
      # the restore compatibility matrix (tests/preload/restore_matrix.sh): the programs it
      # restarts under the shim (perl, bash, tar, coreutils are always there)
      nodejs ruby lua5.4 tcl vim bc jq git less xz-utils zstd
      clang libclang-rt-14-dev         # libFuzzer for the fuzz suite (scripts/fuzz.sh)
      clang-format)                    # scripts/check-format.sh (.clang-format)
PKGS+=(${EXTRA_PKGS:-})

STEP=${1:-all}
case $STEP in all|deps|build) ;; *) echo "setup.sh: unknown step '$STEP' (all, deps, build)" >&2; exit 2;; esac

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "$STEP" != build ] && [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: missing Debian packages: ${missing[*]}" >&2
    echo "setup.sh: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "$STEP" = deps ] && exit 0
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # shellcheck disable=SC2086
  meson setup "$BUILD_DIR" ${MESON_ARGS:-}
fi
meson compile -C "$BUILD_DIR"
