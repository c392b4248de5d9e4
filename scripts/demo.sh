#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs the main job: the faultring service
# with four simulated PRI devices, a reference VMM consumer in another
# process (reinjecting as vSMMUv3 records and answering through CMD_PRI_RESP),
# a live summary, the service's own books, and a clean SIGTERM stop.
# Extra arguments go to `faultring consume` (see `faultring consume --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product faultring
bin=.build/release/faultring
sock="${TMPDIR:-/tmp}/faultring-demo-$$.sock"
"$bin" serve --socket-path "$sock" --devices 4 --rate 8000 --log-level notice &
serve=$!
trap 'kill -TERM $serve 2>/dev/null || true; wait $serve 2>/dev/null || true' EXIT
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
"$bin" consume --socket-path "$sock" --devices 1 2 3 4 --format smmuv3 --policy random --seconds 10 "$@"
"$bin" stats --socket-path "$sock" --summary
kill -TERM "$serve"
wait "$serve"
trap - EXIT
echo "service stopped on SIGTERM: outstanding groups answered INVALID, queues marked closed"
