#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs the main job: simulated PRI devices
# raise page-request groups; the page-request tracker gives each a cookie and
# publishes it into the shared-memory ring; a reference consumer reads and
# answers (injecting every kind of bad answer); every group is completed on
# its device exactly once. Live summary, then the devices' ledger verdict.
# Extra arguments go to `faultring demo` (see `faultring demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product faultring
exec .build/release/faultring demo --groups 5000000 "$@"
