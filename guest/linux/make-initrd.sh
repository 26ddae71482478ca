#!/bin/bash
# Builds guest/linux/cache/initrd.cpio: a tiny initramfs (newc cpio) holding a
# static /init (guest/linux/init.c) that prints "molt-init: ..." lines on the
# console and powers off, plus /dev/console, /proc and /sys. Written by this
# script itself; no cpio tool needed. Idempotent: rebuilt only when init.c or
# this script is newer than the archive.
# Usage: guest/linux/make-initrd.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="$here/cache"
out="$cache/initrd.cpio"

die() { echo "make-initrd: $*" >&2; exit 1; }

if [[ "${1:-}" != "--force" && -s "$out" && "$out" -nt "$here/init.c" && "$out" -nt "${BASH_SOURCE[0]}" ]]; then
  echo "make-initrd: initrd: $out"
  exit 0
fi
command -v "${CC:-cc}" >/dev/null || die "needs a C compiler (\$CC or cc)"

mkdir -p "$cache"
work="$(mktemp -d "$cache/initrd-work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"${CC:-cc}" -static -Os -s -o "$work/init" "$here/init.c" || die "building a static /init failed (is libc6-dev installed?)"

ino=1
# One newc entry: name, mode (octal), rdev major, rdev minor, file with the data (or empty).
entry() {
  local name="$1" mode="$2" major="$3" minor="$4" data="${5:-}"
  local size=0 namesize=$((${#1} + 1))
  [[ -n "$data" ]] && size=$(stat -c %s "$data")
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    "$ino" "$((8#$mode))" 0 0 1 0 "$size" 0 0 "$major" "$minor" "$namesize" 0
  printf '%s\0' "$name"
  # The 110-byte header plus the name is padded to a multiple of 4.
  head -c $(((4 - (110 + namesize) % 4) % 4)) /dev/zero
  if [[ -n "$data" ]]; then
    cat "$data"
    head -c $(((4 - size % 4) % 4)) /dev/zero
  fi
  ino=$((ino + 1))
}

{
  entry dev 040755 0 0
  entry dev/console 020600 5 1
  entry proc 040755 0 0
  entry sys 040755 0 0
  entry init 0100755 0 0 "$work/init"
  entry TRAILER!!! 0 0 0
} >"$work/initrd.cpio"
mv "$work/initrd.cpio" "$out"
echo "make-initrd: initrd: $out ($(stat -c %s "$out") bytes)"
