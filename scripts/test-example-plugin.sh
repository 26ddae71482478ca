#!/usr/bin/env bash
# Builds the example out-of-tree plugin (examples/pci-counter) the way a third
# party would: against the SDK as `cmake --install` places it, from its own
# build directory, never against the source tree. Then runs its unit tests and
# boots it with the INSTALLED molt in the test guest's `counter` scenario.
#
#   scripts/test-example-plugin.sh [BUILD_DIR]     (default: build; built already)
#
# Leaves BUILD_DIR/sdk-install (the prefix) and BUILD_DIR/example-pci-counter.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
prefix=$build/sdk-install
example_build=$build/example-pci-counter
say() { echo "test-example-plugin: $*"; }
die() { echo "test-example-plugin: FAILED: $*" >&2; exit 1; }

[[ -f $build/build.ninja ]] || die "$build is not a configured build; run scripts/build.sh first"
say "installing molt and its SDK into $prefix"
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

# The installed molt must use the installed SDK library, not the build tree's.
sdk_lib=$(ldd "$prefix/bin/molt" | awk '/libmolt-sdk\.so/ { print $3 }')
[[ -n $sdk_lib && -e $sdk_lib ]] && sdk_lib=$(realpath "$sdk_lib")
[[ $sdk_lib == "$prefix/lib/libmolt-sdk.so."* ]] ||
  die "the installed molt loads libmolt-sdk from '${sdk_lib:-nowhere}', not from $prefix/lib (its RUNPATH: $(readelf -d "$prefix/bin/molt" | sed -n 's/.*runpath: //p'))"

say "building examples/pci-counter in $example_build against $prefix only"
rm -rf "$example_build"
cmake -S examples/pci-counter -B "$example_build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$example_build" -j"$(nproc)"
ctest --test-dir "$example_build" --output-on-failure

# The machine file names ../../build/...; for another build directory, the
# same file with those paths pointed at it.
machine=examples/pci-counter/machine.json
if [[ $build != "$(realpath build 2>/dev/null || true)" ]]; then
  machine=$example_build/machine.json
  sed -e "s|\.\./\.\./build/|$build/|g" examples/pci-counter/machine.json >"$machine"
fi

[[ -e /dev/kvm ]] || die "/dev/kvm is missing: the counter scenario needs KVM"
say "running $prefix/bin/molt run $machine (scenario counter)"
status=0
timeout 120 "$prefix/bin/molt" run "$machine" >"$example_build/console.log" 2>"$example_build/molt.log" || status=$?
cat "$example_build/console.log"
[[ $status -eq 1 ]] || { cat "$example_build/molt.log" >&2; die "molt exited with status $status, not 1 (guest passed)"; }
grep -q '^@counter done interrupts=3' "$example_build/console.log" || die "no '@counter done interrupts=3' line"
grep -q '^@result pass' "$example_build/console.log" || die "no '@result pass' line"
say "ok"
