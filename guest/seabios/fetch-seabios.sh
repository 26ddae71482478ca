#!/bin/bash
# Fetches Debian's seabios package (nothing installed on the host) and leaves
# in guest/seabios/cache/:
#   bios.bin   the 128 KiB SeaBIOS image QEMU's pc machine boots
#   VERSION    the package name and version it came from
# A second run with the cache present does nothing but print where the files are.
# Usage: guest/seabios/fetch-seabios.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="$here/cache"

die() { echo "fetch-seabios: $*" >&2; exit 1; }

report() {
  echo "fetch-seabios: bios.bin: $cache/bios.bin"
  echo "fetch-seabios: from $(cat "$cache/VERSION")"
}

if [[ "${1:-}" != "--force" && -s "$cache/bios.bin" && -s "$cache/VERSION" ]]; then
  report
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb; do
  command -v "$tool" >/dev/null || die "needs '$tool' on PATH"
done

if ! apt-cache show seabios >/dev/null 2>&1; then
  echo "fetch-seabios: package lists lack seabios; running apt-get update" >&2
  apt-get update -qq || die "apt-get update failed; check the Debian mirrors in /etc/apt/sources.list*"
fi

mkdir -p "$cache"
work="$cache/work"
rm -rf "$work"
mkdir -p "$work/root"
(cd "$work" && apt-get download -q seabios) || die "apt-get download seabios failed"
deb="$(ls "$work"/*.deb | head -n1)"
dpkg-deb -x "$deb" "$work/root" || die "dpkg-deb -x $deb failed"
image="$work/root/usr/share/seabios/bios.bin"
[[ -s "$image" ]] || die "$deb holds no usr/share/seabios/bios.bin"
size="$(stat -c %s "$image")"
((size == 131072 || size == 262144)) || die "$image is $size bytes; expected 128 KiB or 256 KiB"

cp "$image" "$cache/bios.bin"
dpkg-deb -f "$deb" Package Version | tr '\n' ' ' | sed 's/ $/\n/' >"$cache/VERSION"
rm -rf "$work"
report
