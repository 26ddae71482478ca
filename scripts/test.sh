#!/usr/bin/env bash
# Installs what is missing, builds everything, and runs the whole test suite:
# unit tests (no KVM), KVM tests that boot real guests, and the witnesses
# (Linux's early boot; the kernel package is fetched on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# The SDK as third parties get it: install it, build examples/pci-counter
# against the installed copy only, and run it in a guest under installed molt.
scripts/test-example-plugin.sh build
guest/linux/fetch-kernel.sh >/dev/null 2>&1 || echo "test: could not fetch Debian's kernel; the Linux witness tests will say so" >&2
guest/seabios/fetch-seabios.sh >/dev/null 2>&1 || echo "test: could not fetch Debian's seabios; the SeaBIOS tests will fail and say how to fetch it" >&2
cd build
ctest --output-on-failure -j2 --timeout 600 "$@"
