#!/usr/bin/env bash
# Installs what is missing, builds everything, and boots machines/default.json
# with the guest's serial console in this terminal. Extra arguments go to
# `molt run` (for example: --cmdline "memtest 64 3" or --vcpus 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >&2
exec build/molt run machines/default.json "$@"
