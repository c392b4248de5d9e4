#!/usr/bin/env bash
# Builds and runs the whole suite under a sanitizer: thread (TSan) or address (ASan). The
# multi-process tests start the faultring binary next to the test bundle, so the service,
# device and consumer processes they spawn are built with the same sanitizer. Separate build
# directories (.build-tsan, .build-asan) keep the normal build as it is.
#
#   scripts/sanitize.sh address
#   scripts/sanitize.sh thread
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
kind=${1:?usage: scripts/sanitize.sh thread|address}
case "$kind" in
  thread) dir=.build-tsan ;;
  address) dir=.build-asan ;;
  *) echo "usage: scripts/sanitize.sh thread|address" >&2; exit 64 ;;
esac
# Tests that must allow for a sanitizer read which one the binaries carry (the chaos storm's
# memory check cannot hold under ASan, whose quarantine keeps freed memory resident).
export FAULTRING_SANITIZER="$kind"
# A report in any process (the spawned ones included) fails the run, and says where it came from.
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=0 ${ASAN_OPTIONS:-}"
swift build --build-tests --build-path "$dir" -Xswiftc -sanitize="$kind" 2>&1 | tail -1
swift test --skip-build --build-path "$dir" 2>&1 | tee "$dir/sanitize-$kind.log" | grep -E "✘|Test run with|ThreadSanitizer|AddressSanitizer|SUMMARY" | head -40
grep -q "Test run with .* passed" "$dir/sanitize-$kind.log"
! grep -qE "ThreadSanitizer|AddressSanitizer" "$dir/sanitize-$kind.log"
