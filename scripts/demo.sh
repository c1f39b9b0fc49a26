#!/usr/bin/env bash
# demo.sh -- the project's main job: build, then run the demonstration.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
exec "$BUILD_DIR/bench/vmprim/vmprim-bench" "$@"
