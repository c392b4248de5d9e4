#!/usr/bin/env bash
# The client libraries' own test suites, each with its ecosystem's runner,
# against the faultring binary the Swift build just made (scripts/test.sh
# runs this after `swift test`): C (make check).
set -euo pipefail
cd "$(dirname "$0")/.."
export FAULTRING_BIN="${FAULTRING_BIN:-$PWD/.build/debug/faultring}"
echo "== clients/c: make check"
make -s -C clients/c check FAULTRING_BIN="$FAULTRING_BIN"
