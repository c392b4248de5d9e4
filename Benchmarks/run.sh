#!/usr/bin/env bash
# Builds and runs the side-by-side ring benchmark in release mode.
# BENCH_REPS (default 3) and BENCH_SCALE (default 1) shrink or grow the run.
set -euo pipefail
cd "$(dirname "$0")"
bash ../scripts/setup.sh >/dev/null
dpkg-query -W -f='${Status}' libboost-dev 2>/dev/null | grep -q "install ok installed" || {
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libboost-dev >/dev/null
}
swift build -c release --product ring-bench
exec .build/release/ring-bench
