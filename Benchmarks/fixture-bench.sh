#!/usr/bin/env bash
# Parse speed and memory of a large fixture: json-c streaming reader vs
# Foundation's JSONDecoder, same file, each in its own process, best of 3.
# EVENTS (default 1000000).
set -euo pipefail
cd "$(dirname "$0")"
bash ../scripts/setup.sh >/dev/null
swift build -c release --product fixture-bench >/dev/null
bin=.build/release/fixture-bench
file="${TMPDIR:-/tmp}/faultring-large-fixture.json"
"$bin" generate "$file" "${EVENTS:-1000000}"
echo "file: $(du -h "$file" | cut -f1), ${EVENTS:-1000000} events"
for mode in jsonc foundation; do
  for _ in 1 2 3; do "$bin" "$mode" "$file"; done
done
rm -f "$file"
