#!/usr/bin/env bash
# Builds molt with AddressSanitizer and UBSan in build-asan/ and runs the test
# suite against it (all but the Linux witnesses, whose minutes of emulated
# kernel code exercise the same core paths as the plain run, and the example
# plugin, which the plain run builds against the installed SDK).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [[ ! -f build-asan/build.ninja ]]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOLT_SANITIZE=ON >/dev/null
fi
cmake --build build-asan -j"$(nproc)"
cd build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --output-on-failure -j2 --timeout 600 -E "LinuxWitness|ExamplePlugin" "$@"
