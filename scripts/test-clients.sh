#!/usr/bin/env bash
# The client libraries' own test suites, each with its ecosystem's runner,
# against the faultring binary the Swift build just made (scripts/test.sh
# runs this after `swift test`): C (make check), Rust (cargo test), Python
# (unittest).
set -euo pipefail
cd "$(dirname "$0")/.."
export FAULTRING_BIN="${FAULTRING_BIN:-$PWD/.build/debug/faultring}"
# The suites skip nothing here: without the service they would test nothing.
[ -x "$FAULTRING_BIN" ] || { echo "test-clients: no faultring binary at $FAULTRING_BIN (swift build first)" >&2; exit 1; }
echo "== clients/c: make check"
make -s -C clients/c check FAULTRING_BIN="$FAULTRING_BIN"
echo "== clients/rust: cargo test (crates from Debian's registry, offline)"
bash clients/rust/test.sh
echo "== clients/python: python3 -m unittest"
sh clients/python/test.sh discover -s tests -t .
