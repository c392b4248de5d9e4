#!/usr/bin/env bash
# Builds and runs the side-by-side ring benchmark in release mode: faultring
# next to Boost spsc_queue and DPDK rte_ring (Docs/PERFORMANCE.md §1).
# BENCH_REPS (default 21) and BENCH_SCALE (default 1) shrink or grow the run.
set -euo pipefail
cd "$(dirname "$0")"
bash ../scripts/setup.sh >/dev/null
missing=()
for p in libboost-dev libdpdk-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
swift build -c release --product ring-bench -Xswiftc -cross-module-optimization  # as scripts/demo.sh builds the service
exec .build/release/ring-bench
