#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs the whole test suite, after checking
# that every public declaration is documented (scripts/doc-coverage.py).
# Build first (including the faultring binary the multi-process tests spawn),
# then run the tests from that build, then the client libraries' own suites.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# Every public declaration carries a /// doc comment (lists any that do not).
python3 scripts/doc-coverage.py >/dev/null || { python3 scripts/doc-coverage.py | grep -v ' %)$'; exit 1; }
swift build --build-tests
swift test --skip-build "$@"
# The C, Rust and Python client libraries' suites, against the binary just built.
bash scripts/test-clients.sh
