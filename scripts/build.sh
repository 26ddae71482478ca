#!/usr/bin/env bash
# Configures and builds molt, its plugins, the test guest and the tests in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh "$@"
if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build build -j"$(nproc)"
