#!/usr/bin/env python3
"""IDE DMA benchmark: sequential write and read throughput of one IDE disk,
molt's piix3-ide against Debian's QEMU (PIIX3 IDE, `-drive if=ide`), in one run.

Both VMMs boot the same test guest with `ide bench SEED` and the same raw image
(allocated up front, so neither pays for block allocation): the guest writes
the whole disk with READ/WRITE DMA EXT commands of 4 MiB (64 PRD regions of
64 KiB), then reads it back, and prints the time spent in the commands alone
(`@ide dma write|read ... us=`); the pattern check after each read is not
timed. Runs alternate between the VMMs; the table shows the median MiB/s of
each and molt/QEMU. Speed is shown, never asserted. Python 3 stdlib only.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

QEMU = "qemu-system-x86_64"
LINE = re.compile(r"^@ide dma (write|read) sectors=(\d+) us=(\d+) .* ok\s*$")


def molt_machine(path, elf, image, memory_mib):
    machine = {
        "machine": "molt-pc",
        "vcpus": 1,
        "memory": {"size": f"{memory_mib}M"},
        "kernel": {"path": str(elf), "cmdline": "ide bench"},
        "devices": [
            {"id": "com1", "type": "serial-16550a", "properties": {"backend": "stdio"}},
            {"id": "exit", "type": "debug-exit"},
            {"id": "host", "type": "i440fx-host"},
            {"id": "isa", "type": "piix3-isa"},
            {"id": "ide0", "type": "piix3-ide", "properties": {"primary-master": str(image)}},
        ],
    }
    path.write_text(json.dumps(machine, indent=1))


def run_guest(argv, timeout_s):
    """Returns {"write": MiB/s, "read": MiB/s} from the guest's lines, or raises."""
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
    console = proc.stdout.decode(errors="replace")
    figures = {}
    for line in console.splitlines():
        m = LINE.match(line.strip())
        if m:
            op, sectors, us = m.group(1), int(m.group(2)), int(m.group(3))
            figures[op] = sectors * 512 / (1 << 20) / (us / 1e6) if us else float("inf")
    if proc.returncode != 1 or set(figures) != {"write", "read"}:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}:\n{console[-2000:]}\n{proc.stderr.decode()[-2000:]}")
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--disk-mib", type=int, default=256)
    ap.add_argument("--memory-mib", type=int, default=256)
    ap.add_argument("--skip-qemu", action="store_true")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()

    molt = args.build_dir / "molt"
    elf = args.build_dir / "guest" / "testguest.elf"
    for needed in (molt, elf):
        if not needed.exists():
            sys.exit(f"ide_bench: {needed} is missing; build the molt, testguest and plugin targets first")
    qemu = shutil.which(QEMU)
    if not args.skip_qemu and qemu is None:
        sys.exit(f"ide_bench: {QEMU} is not installed (apt-get install qemu-system-x86), or pass --skip-qemu")

    results = {"molt": [], "qemu": []}
    with tempfile.TemporaryDirectory(prefix="molt-ide-bench-") as tmp:
        tmp = Path(tmp)
        image = tmp / "disk.img"
        with open(image, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, args.disk_mib << 20)
        machine = tmp / "machine.json"
        molt_machine(machine, elf, image, args.memory_mib)
        for run in range(args.runs):
            seed = str(run + 1)
            results["molt"].append(run_guest([str(molt), "run", str(machine), "--cmdline", f"ide bench {seed}"],
                                             args.timeout))
            if not args.skip_qemu:
                results["qemu"].append(run_guest(
                    [qemu, "-enable-kvm", "-m", str(args.memory_mib), "-nographic", "-no-reboot", "-display", "none",
                     "-serial", "stdio", "-monitor", "none", "-kernel", str(elf), "-append", f"ide bench {seed}",
                     "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                     "-drive", f"file={image},format=raw,if=ide"], args.timeout))
            print(f"run {run + 1}/{args.runs}: molt {results['molt'][-1]}"
                  + ("" if args.skip_qemu else f" qemu {results['qemu'][-1]}"), file=sys.stderr)

    print(f"IDE DMA, {args.disk_mib} MiB disk, 4 MiB commands, median of {args.runs} runs (MiB/s)")
    print("| op | molt | QEMU 7.2 | molt/QEMU |")
    print("| --- | ---: | ---: | ---: |")
    for op in ("write", "read"):
        m = statistics.median(r[op] for r in results["molt"])
        if args.skip_qemu:
            print(f"| {op} | {m:.0f} | - | - |")
            continue
        q = statistics.median(r[op] for r in results["qemu"])
        print(f"| {op} | {m:.0f} | {q:.0f} | {m / q:.2f} |")
    for vmm, runs in results.items():
        if runs:
            print(f"{vmm} runs: " + ", ".join(f"w {r['write']:.0f} r {r['read']:.0f}" for r in runs))


if __name__ == "__main__":
    main()
