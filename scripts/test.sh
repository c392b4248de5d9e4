#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs the whole test suite.
# Build first (including the faultring binary the multi-process tests spawn),
# then run the tests from that build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
