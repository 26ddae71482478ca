#!/usr/bin/env bash
# Installs what molt needs from Debian 12's repositories. Idempotent: when
# everything is present it prints nothing and touches nothing.
#   scripts/setup.sh          build + test dependencies
#   scripts/setup.sh --bench  also Debian's QEMU, the reference for benchmarks
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config xz-utils cpio
  libboost1.81-dev libboost-json1.81-dev   # Boost.JSON and Boost.DLL (1.74 has no JSON)
  libspdlog-dev libfmt-dev libcli11-dev
  libxxhash-dev                            # the migration stream's checksum (XXH3-64)
  libgtest-dev libgmock-dev libbenchmark-dev
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(qemu-system-x86 python3)  # the reference VMM; the bench scripts are Python
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  sudo=sudo
else
  sudo=
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/molt-setup.log 2>&1; then
  $sudo apt-get update -qq >>/tmp/molt-setup.log 2>&1
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/molt-setup.log 2>&1 || {
    echo "setup: apt-get install failed; see /tmp/molt-setup.log" >&2
    tail -20 /tmp/molt-setup.log >&2
    exit 1
  }
fi
