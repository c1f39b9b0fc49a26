#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-format.sh -- is every C source formatted as .clang-format says? Lists the files that
# are not and exits 1; exits 0 when all are. Nothing is changed.
#
#   bash scripts/check-format.sh            # list unformatted files
#   bash scripts/check-format.sh --count    # also: lines formatting would change, per folder
#   clang-format -i FILE                    # format one file
#
# Checked: every .c and .h under vmprim core preload tests bench examples man. Nothing there is
# generated (generated sources go to the build directory) or vendored; a file that ever must
# be left alone goes into EXCLUDE below, with the reason.
#
# The output of clang-format differs between its major versions; the tree is formatted with
# clang-format 14 (Debian 12's). Another version is used too, with a warning, since its
# complaints can then be about the version rather than the code.
set -euo pipefail
cd "$(dirname "$0")/.."

FOLDERS=(vmprim core preload tests bench examples man)
EXCLUDE=()   # paths relative to the top, e.g. tests/fixtures/third_party.c (with the reason)

count=0
case ${1:-} in
  --count) count=1 ;;
  "") ;;
  *) echo "usage: check-format.sh [--count]" >&2; exit 2 ;;
esac
if ! command -v clang-format >/dev/null; then
  echo "check-format.sh: clang-format not found: apt-get install clang-format" \
       "(or bash scripts/setup.sh)" >&2
  exit 2
fi
version=$(clang-format --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
[ "$version" = 14 ] ||
  echo "check-format.sh: warning: clang-format $version; the tree's format is clang-format 14's" >&2

excluded() {
  local e
  for e in "${EXCLUDE[@]}"; do [ "$1" = "$e" ] && return 0; done
  return 1
}

bad=() nfiles=0
declare -A changed
while IFS= read -r f; do
  excluded "$f" && continue
  nfiles=$((nfiles + 1))
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    bad+=("$f")
    if [ "$count" = 1 ]; then
      top=${f%%/*}
      n=$(clang-format "$f" | diff "$f" - | grep -c '^<' || true)
      changed[$top]=$(( ${changed[$top]:-0} + n ))
    fi
  fi
done < <(find "${FOLDERS[@]}" -type f \( -name '*.c' -o -name '*.h' \) | sort)

if [ "$count" = 1 ]; then
  total=0
  for top in "${FOLDERS[@]}"; do
    echo "check-format.sh: $top: ${changed[$top]:-0} lines would change"
    total=$((total + ${changed[$top]:-0}))
  done
  echo "check-format.sh: all: $total lines would change"
fi
if [ "${#bad[@]}" -gt 0 ]; then
  printf '%s\n' "${bad[@]}"
  echo "check-format.sh: ${#bad[@]} of $nfiles files are not formatted as .clang-format says" \
       "(listed above; fix with clang-format -i FILE)" >&2
  exit 1
fi
echo "check-format.sh: all $nfiles files are formatted"
