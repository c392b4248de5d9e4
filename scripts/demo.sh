#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs the main job. Three processes:
# - the faultring service, event-driven, idle when there is nothing to do;
# - `faultring device`: four simulated PRI devices in their own process,
#   served to the service over a device socket that speaks the kernel's
#   iommufd fault-queue records (and a vEVENTQ socket for unrecoverable faults);
# - a reference VMM (`faultring consume`) that attaches the devices, reinjects
#   every fault as vSMMUv3 records and answers through CMD_PRI_RESP.
# Then the service's books, the device process's own ledgers, and a clean
# SIGTERM stop. Extra arguments go to `faultring consume` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product faultring -Xswiftc -cross-module-optimization  # Docs/PERFORMANCE.md "Across modules"
bin=.build/release/faultring
sock="${TMPDIR:-/tmp}/faultring-demo-$$.sock"
"$bin" serve --socket-path "$sock" --devices 0 --log-level notice &
serve=$!
trap 'kill -TERM $serve 2>/dev/null || true; wait $serve 2>/dev/null || true' EXIT
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
"$bin" device --socket-path "$sock" --devices 1 2 3 4 --rate 8000 --events-every 64 --seconds 10 \
  --wait-for-consumer > "${sock}.device" &
device=$!
# The VMM attaches once the device process has handed its socket over.
for _ in $(seq 200); do "$bin" stats --socket-path "$sock" | grep -q '"id":4,' && break; sleep 0.05; done
"$bin" consume --socket-path "$sock" --devices 1 2 3 4 --format smmuv3 --policy random --seconds 10 "$@"
wait "$device"
echo "device process (its own ledgers):"
sed 's/^/  /' "${sock}.device"
rm -f "${sock}.device"
"$bin" stats --socket-path "$sock" --summary
kill -TERM "$serve"
wait "$serve"
trap - EXIT
echo "service stopped on SIGTERM: outstanding groups answered INVALID, queues marked closed"
