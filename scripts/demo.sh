#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs the main job: a producer and a
# consumer process streaming fault records through a shared-memory queue,
# with a live summary and a check of both sides' books at the end.
# Extra arguments go to `faultring stream` (see `faultring stream --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product faultring
exec .build/release/faultring stream --records 10000000 --pause-every 2000000 --pause-microseconds 20000 "$@"
