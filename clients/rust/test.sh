#!/usr/bin/env bash
# Runs the whole test suite of the Rust client (clients/rust/faultring):
# unit tests, integration tests against a real `faultring serve`, the hostile
# fake-server tests, the gcc layout comparison, and the doc tests; examples are
# built too. Extra arguments go to `cargo test` (e.g. `./test.sh --test hostile`).
#
# Crates come offline from Debian's registry (/usr/share/cargo/registry, from
# the librust-libc-dev package), selected with cargo's source replacement on
# the command line: the user's ~/.cargo/config.toml is neither read for this
# nor changed. (`--config` goes after the subcommand: `cargo --config ... clippy`
# would not pass it on to the `cargo check` that clippy runs.)
#
#   FAULTRING_BIN   the service binary (default <repo>/.build/debug/faultring)
#   CLIPPY=1        also run `cargo clippy --all-targets -D warnings` first
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
registry=/usr/share/cargo/registry

# A rustup toolchain (~/.cargo/bin) is preferred when PATH lacks one: CI's
# non-login shell does not read the profile that adds it. Debian's own cargo
# is the fallback; the crate needs rustc 1.77 (core::mem::offset_of!).
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
need_min=77
version=$(rustc --version 2>/dev/null | sed -n 's/^rustc 1\.\([0-9]*\).*/\1/p')
if [ -n "$version" ] && [ "$version" -lt "$need_min" ]; then
    echo "test.sh: rustc 1.$version is older than the crate's rust-version 1.$need_min (rustup, or a newer Debian)" >&2
    exit 1
fi
if ! compgen -G "$registry/libc-*" >/dev/null; then
    echo "test.sh: no libc crate in $registry: apt-get install librust-libc-dev cargo" >&2
    exit 1
fi
if ! command -v cargo >/dev/null; then
    echo "test.sh: cargo not found: apt-get install librust-libc-dev cargo" >&2
    exit 1
fi
if ! command -v gcc >/dev/null; then
    echo "test.sh: gcc not found (tests/layout.rs compiles the C headers): apt-get install gcc" >&2
    exit 1
fi

FAULTRING_BIN="${FAULTRING_BIN:-$repo/.build/debug/faultring}"
case "$FAULTRING_BIN" in /*) ;; *) FAULTRING_BIN="$PWD/$FAULTRING_BIN" ;; esac
if [ ! -x "$FAULTRING_BIN" ]; then
    echo "test.sh: no faultring binary at $FAULTRING_BIN (swift build, or set FAULTRING_BIN)" >&2
    exit 1
fi
export FAULTRING_BIN

offline=(--offline
    --config 'source.crates-io.replace-with="debian"'
    --config "source.debian.directory=\"$registry\"")

cd "$here/faultring"
if [ "${CLIPPY:-0}" = 1 ]; then
    cargo clippy "${offline[@]}" --all-targets -- -D warnings
fi
echo "test.sh: FAULTRING_BIN=$FAULTRING_BIN"
exec cargo test "${offline[@]}" "$@"
