#!/usr/bin/env bash
# Installs what faultring needs on a fresh Debian machine: liburing (event
# loop), json-c (fixtures), the kernel uapi headers (ABI compatibility test)
# and a C compiler. Swift itself is expected at /opt/swift or on PATH.
set -euo pipefail
mapfile -t packages < "$(dirname "${BASH_SOURCE[0]}")/packages.txt"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "faultring setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
swift --version 2>&1 | head -1
