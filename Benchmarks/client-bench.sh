#!/usr/bin/env bash
# The client libraries side by side (see client-bench.py): builds the service
# and every client in release mode, then runs them against the same loads.
# SECONDS_PER_RUN (default 4), REPS (3), LOADS (per device, default 250000,10000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh >/dev/null
swift build -c release --product faultring >/dev/null
make -s -C clients/c build/bench
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
(cd clients/rust/faultring && cargo build --offline --release --example bench \
    --config 'source.crates-io.replace-with="debian"' \
    --config 'source.debian.directory="/usr/share/cargo/registry"' >/dev/null 2>&1)
exec python3 Benchmarks/client-bench.py .build/release/faultring
