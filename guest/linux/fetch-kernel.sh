#!/bin/bash
# Fetches Debian 12's current kernel package (nothing installed on the host) and
# leaves in guest/linux/cache/:
#   bzImage   the kernel as Debian ships it (/boot/vmlinuz-*), booted through the
#             Linux 64-bit boot protocol
#   vmlinux   the uncompressed ELF extracted from bzImage, booted through PVH
#   VERSION   the package name and version these came from
# A second run with the cache present does nothing but print where the files are.
# Usage: guest/linux/fetch-kernel.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="$here/cache"

die() { echo "fetch-kernel: $*" >&2; exit 1; }

report() {
  echo "fetch-kernel: bzImage: $cache/bzImage"
  echo "fetch-kernel: vmlinux: $cache/vmlinux"
  echo "fetch-kernel: from $(cat "$cache/VERSION")"
}

if [[ "${1:-}" != "--force" && -s "$cache/bzImage" && -s "$cache/vmlinux" && -s "$cache/VERSION" ]]; then
  report
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb od xz readelf; do
  command -v "$tool" >/dev/null || die "needs '$tool' on PATH"
done

# linux-image-amd64 is a metapackage; its first dependency is the concrete
# linux-image-6.1.0-N-amd64 package that holds /boot/vmlinuz-*.
resolve_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\(-unsigned\)\?\)$/\1/p' | head -n1
}
package="$(resolve_package)"
if [[ -z "$package" ]]; then
  echo "fetch-kernel: package lists lack linux-image-amd64; running apt-get update" >&2
  apt-get update -qq || die "apt-get update failed; check the Debian mirrors in /etc/apt/sources.list*"
  package="$(resolve_package)"
fi
[[ -n "$package" ]] || die "cannot resolve linux-image-amd64 to a concrete kernel package"

work="$cache/work"
rm -rf "$work"
mkdir -p "$work/root"
(cd "$work" && apt-get download -q "$package") || die "apt-get download $package failed"
deb="$(ls "$work"/*.deb | head -n1)"
dpkg-deb -x "$deb" "$work/root" || die "dpkg-deb -x $deb failed"

vmlinuz="$(ls "$work"/root/boot/vmlinuz-* 2>/dev/null | head -n1 || true)"
if [[ -z "$vmlinuz" ]]; then
  # The signed package may only carry a signature; the unsigned one holds the image.
  [[ "$package" == *-unsigned ]] && die "$package holds no /boot/vmlinuz-*"
  package="$package-unsigned"
  rm -rf "$work" && mkdir -p "$work/root"
  (cd "$work" && apt-get download -q "$package") || die "apt-get download $package failed"
  deb="$(ls "$work"/*.deb | head -n1)"
  dpkg-deb -x "$deb" "$work/root"
  vmlinuz="$(ls "$work"/root/boot/vmlinuz-* 2>/dev/null | head -n1 || true)"
  [[ -n "$vmlinuz" ]] || die "$package holds no /boot/vmlinuz-*"
fi

# Little-endian unsigned integer of $3 bytes at offset $2 of file $1.
read_le() { od -An -tu"$3" -j "$2" -N "$3" "$1" | tr -d ' '; }

# The compressed payload's place comes from the setup header (boot protocol
# 2.08+): it starts payload_offset bytes into the protected-mode part, which
# follows (setup_sects + 1) 512-byte sectors; the magic there names the codec.
extract_vmlinux() {
  local image="$1" out="$2"
  [[ "$(od -An -c -j 0x202 -N 4 "$image" | tr -d ' ')" == "HdrS" ]] || die "$image: no HdrS magic"
  local setup_sects payload_offset payload_length start magic
  setup_sects="$(read_le "$image" $((0x1f1)) 1)"
  ((setup_sects == 0)) && setup_sects=4
  payload_offset="$(read_le "$image" $((0x248)) 4)"
  payload_length="$(read_le "$image" $((0x24c)) 4)"
  start=$(((setup_sects + 1) * 512 + payload_offset))
  magic="$(od -An -tx1 -j "$start" -N 6 "$image" | tr -d ' ')"
  # Linux appends the decompressed size after the stream, so decoders must stop
  # at the end of the first stream.
  payload() { dd if="$image" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$payload_length" status=none; }
  case "$magic" in
    fd377a585a00) payload | xz -dc --single-stream >"$out" ;;
    1f8b*) payload | gzip -dc >"$out" 2>/dev/null || [[ -s "$out" ]] ;;
    28b52ffd*) command -v zstd >/dev/null || die "payload is zstd; install zstd"
      payload | zstd -dcq >"$out" ;;
    *) die "$image: unknown payload magic $magic at offset $start" ;;
  esac
  [[ "$(od -An -tx1 -N 4 "$out" | tr -d ' ')" == "7f454c46" ]] || die "extracted payload is not an ELF"
}

extract_vmlinux "$vmlinuz" "$work/vmlinux"

# PVH entry: a "Xen" ELF note of type XEN_ELFNOTE_PHYS32_ENTRY (18 = 0x12).
if ! readelf -n "$work/vmlinux" | grep -A0 '^ *Xen ' | grep -q '0x00000012\|PHYS32_ENTRY'; then
  die "extracted vmlinux has no XEN_ELFNOTE_PHYS32_ENTRY note (kernel built without CONFIG_PVH)"
fi

cp "$vmlinuz" "$cache/bzImage"
mv "$work/vmlinux" "$cache/vmlinux"
dpkg-deb -f "$deb" Package Version | tr '\n' ' ' | sed 's/ $/\n/' >"$cache/VERSION"
rm -rf "$work"
report
