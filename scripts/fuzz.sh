#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/, -sanitize=fuzzer,address, linked with lld) and runs one
# or all of them, each for SECONDS from its seed corpus in Fuzz/corpus/TARGET. New inputs go
# to a scratch corpus under Fuzz/.build/corpus, never into the repository. Exit status 1 if a
# target finds a crash or a broken invariant (the input is left in Fuzz/.build/artifacts).
#
#   scripts/fuzz.sh all 15                 # every target, 15 s each (what .ci/run does)
#   scripts/fuzz.sh consumer-region 1800   # one target, 30 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
target=${1:?usage: scripts/fuzz.sh TARGET|all SECONDS}
seconds=${2:?usage: scripts/fuzz.sh TARGET|all SECONDS}
targets=(records hardware control control-session trace-importer fixture-reader consumer-region)
[ "$target" = all ] || targets=("$target")
# libFuzzer reports a crash itself; Swift's backtracer would spend up to 30 s symbolicating a
# sanitized binary first (and a target that blocks SIGTERM, like control-session, cannot be hurried).
export SWIFT_BACKTRACE=enable=no
swift build --package-path Fuzz -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld 2>&1 | tail -1
status=0
for t in "${targets[@]}"; do
  work=Fuzz/.build/corpus/$t
  artifacts=Fuzz/.build/artifacts/$t/
  mkdir -p "$work" "$artifacts"
  log=Fuzz/.build/fuzz-$t.log
  if Fuzz/.build/debug/fuzz-$t -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$artifacts" \
      "$work" "Fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep 'DONE' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+).*/\1/')
    echo "fuzz-$t: $runs executions in $seconds s, coverage $cov, no findings"
  else
    echo "fuzz-$t: FINDING (see $log and $artifacts)"; grep -E 'ERROR|Fatal error|SUMMARY' "$log" | head -5
    status=1
  fi
done
exit $status
