#!/usr/bin/env bash
# The cross-process path, io_uring and poll side by side: a release
# `faultring serve` with 4 simulated devices, and a `faultring consume`
# process answering everything for SECONDS_PER_RUN (default 5), at two
# offered loads: 4 x 64 groups per 1 ms tick (saturating) and 4 x 2 (moderate).
# Reports groups/s answered and the service's request-to-answer latency
# percentiles (HdrHistogram).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
swift build -c release --product faultring >/dev/null
bin=.build/release/faultring
seconds="${SECONDS_PER_RUN:-5}"
echo "| offered load | event loop | groups/s answered | p50 | p90 | p99 | p99.9 | max |"
echo "|---|---|---|---|---|---|---|---|"
for load in 64000 2000; do
for backend in io_uring poll; do
  sock="/tmp/faultring-bench-$$-$backend.sock"
  "$bin" serve --socket-path "$sock" --devices 4 --rate "$load" --backend "$backend" --log-level error &
  serve=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  consume=$("$bin" consume --socket-path "$sock" --devices 1 2 3 4 --format smmuv3 --seconds "$seconds" --quiet --json)
  stats=$("$bin" stats --socket-path "$sock")
  kill -TERM "$serve"; wait "$serve"
  python3 - "$load" "$backend" "$consume" "$stats" <<'PY'
import json, sys
load, backend, consume, stats = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
lat = stats["latency"]
us = lambda ns: f"{ns / 1000:.1f} µs"
rate = consume["groups"] / consume["seconds"]
print(f"| {4 * int(load) * 1000:,}/s | {backend} | {rate:,.0f} | {us(lat['p50'])} | {us(lat['p90'])} | {us(lat['p99'])} | {us(lat['p999'])} | {us(lat['max'])} |")
PY
done
done
