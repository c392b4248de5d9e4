#!/usr/bin/env bash
# The cross-process path benchmark (see path-bench.py): builds faultring in
# release mode and runs the three placements side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh >/dev/null
swift build -c release --product faultring >/dev/null
exec python3 Benchmarks/path-bench.py .build/release/faultring
