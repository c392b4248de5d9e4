#!/bin/sh
# Run the faultring_client tests with python3 -m unittest.
#
#   clients/python/test.sh [unittest arguments...]
#
# The service tests run the real service: $FAULTRING_BIN, by default
# <repo>/.build/debug/faultring (they are skipped, saying so, if it is
# missing). PYTHON picks the interpreter (default python3).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
: "${FAULTRING_BIN:=$repo/.build/debug/faultring}"
export FAULTRING_BIN
cd "$here"
if [ ! -x "$FAULTRING_BIN" ]; then
	echo "test.sh: $FAULTRING_BIN not found: the service tests will be skipped (set FAULTRING_BIN)" >&2
fi
if [ "$#" -eq 0 ]; then
	set -- discover -s tests -t . -v
fi
exec "${PYTHON:-python3}" -m unittest "$@"
