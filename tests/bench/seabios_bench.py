#!/usr/bin/env python3
"""SeaBIOS benchmark: Debian's bios.bin boots the same disk image under molt and
under Debian's QEMU, side by side.

The disk image (2 MiB) holds a boot sector this script writes: it prints
MOLT-BOOT-SECTOR-OK on COM1 (waiting for the UART's THRE bit before each
byte) and writes 0x2a to the debug-exit port 0xf4, so both VMMs end with
status 85. For each VMM, over several runs, the script measures the wall time
from spawning the process to the marker on the console, and to the exit.
Both run the firmware's code in guest kernel mode, which hosts with kvm_pvm
emulate, so these are seconds, not milliseconds.

molt: the pc platform (i440FX and PIIX3, RTC, IDE disk, fw_cfg, COM1,
debug-exit), RAM as given. QEMU: -machine pc -enable-kvm -bios <same bios.bin>
-drive file=IMG,format=raw,if=ide, the same RAM, COM1 on stdio, isa-debug-exit.

Speed is shown here, never asserted in tests. Python 3 standard library only.
"""
import argparse
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKER = b"MOLT-BOOT-SECTOR-OK"
EXIT_VALUE = 0x2A
EXPECTED_STATUS = 2 * EXIT_VALUE + 1


def boot_sector():
    """Real mode: DS=0; per byte wait for LSR.THRE, out to 0x3f8; out 0x2a to 0xf4; hlt."""
    code = bytes([
        0x31, 0xC0, 0x8E, 0xD8,          # xor ax, ax; mov ds, ax
        0xBE, 0x23, 0x7C, 0xFC,          # mov si, 0x7c23; cld
        0xBA, 0xFD, 0x03,                # .next: mov dx, 0x3fd
        0xEC, 0xA8, 0x20, 0x74, 0xFB,    # .wait: in al, dx; test al, 0x20; jz .wait
        0xAC, 0x84, 0xC0, 0x74, 0x05,    # lodsb; test al, al; jz .done
        0xB2, 0xF8, 0xEE, 0xEB, 0xEE,    # mov dl, 0xf8; out dx, al; jmp .next
        0xBA, 0xF4, 0x00,                # .done: mov dx, 0xf4
        0xB0, EXIT_VALUE, 0xEE,          # mov al, 0x2a; out dx, al
        0xF4, 0xEB, 0xFD,                # .halt: hlt; jmp .halt
    ])
    sector = bytearray(512)
    sector[:len(code)] = code
    message = b"\r\n" + MARKER + b"\r\n"
    sector[0x23:0x23 + len(message)] = message
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def write_disk(path, size=2 * 1024 * 1024):
    with open(path, "wb") as f:
        f.write(boot_sector())
        f.truncate(size)


def molt_machine(path, bios, disk, memory):
    devices = [
        {"id": "com1", "type": "serial-16550a", "properties": {"backend": "stdio"}},
        {"id": "exit", "type": "debug-exit"},
        {"id": "host", "type": "i440fx-host"},
        {"id": "isa", "type": "piix3-isa"},
        {"id": "rtc", "type": "mc146818-rtc"},
        {"id": "ide0", "type": "piix3-ide", "properties": {"primary-master": str(disk)}},
        {"id": "fwcfg", "type": "fw-cfg"},
    ]
    doc = {"machine": "molt-pc", "memory": {"size": memory}, "firmware": {"path": str(bios)}, "devices": devices}
    Path(path).write_text(json.dumps(doc, indent=2))


def timed_run(argv, timeout_s):
    """Spawns argv; returns (seconds to marker or None, seconds to exit, exit code, console)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    console = b""
    marker_at = None
    deadline = start + timeout_s
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        console += chunk
        if marker_at is None and MARKER in console:
            marker_at = time.monotonic() - start
    try:
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    return marker_at, time.monotonic() - start, code, console.decode("latin-1")


def summarize(name, runs):
    marks = [r[0] for r in runs if r[0] is not None and r[2] == EXPECTED_STATUS]
    if not marks:
        print(f"{name}: no run reached the marker with status {EXPECTED_STATUS}", file=sys.stderr)
        for r in runs:
            print(f"  status {r[2]} after {r[1]:.1f} s; console tail: {r[3][-400:]!r}", file=sys.stderr)
        return None
    exits = [r[1] for r in runs if r[2] == EXPECTED_STATUS]
    return {"runs": len(runs), "ok": len(marks), "marker_median_s": statistics.median(marks),
            "marker_min_s": min(marks), "exit_median_s": statistics.median(exits)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", required=True, type=Path)
    parser.add_argument("--bios", type=Path, help="default: guest/seabios/cache/bios.bin of the source tree")
    parser.add_argument("--source-dir", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory", default="128M")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--skip-qemu", action="store_true")
    args = parser.parse_args()

    bios = args.bios or args.source_dir / "guest/seabios/cache/bios.bin"
    if not bios.exists():
        sys.exit(f"seabios-bench: {bios} is missing; run guest/seabios/fetch-seabios.sh")
    molt = args.build_dir / "molt"
    work = Path(tempfile.mkdtemp(prefix="molt-seabios-bench-"))
    try:
        disk = work / "disk.img"
        write_disk(disk)
        machine = work / "machine.json"
        molt_machine(machine, bios.resolve(), disk, args.memory)
        vmms = {"molt": [str(molt), "run", str(machine)]}
        if not args.skip_qemu and shutil.which("qemu-system-x86_64"):
            vmms["qemu"] = ["qemu-system-x86_64", "-machine", "pc", "-enable-kvm", "-m", args.memory.rstrip("M"),
                            "-bios", str(bios.resolve()), "-drive", f"file={disk},format=raw,if=ide",
                            "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
                            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
        results = {}
        for name, argv in vmms.items():
            runs = []
            for i in range(args.runs):
                write_disk(disk)  # the same image every run
                runs.append(timed_run(argv, args.timeout))
                print(f"{name} run {i + 1}: marker {runs[-1][0]} s, exit {runs[-1][1]:.2f} s, status {runs[-1][2]}",
                      file=sys.stderr)
            results[name] = summarize(name, runs)
        print(f"SeaBIOS {bios.name} ({bios.stat().st_size // 1024} KiB), {args.memory} RAM, 2 MiB IDE disk, "
              f"{args.runs} runs each; seconds from spawn (median, min)")
        print("| VMM | to boot-sector marker | min | to exit |")
        print("| --- | --- | --- | --- |")
        for name, r in results.items():
            if r:
                print(f"| {name} | {r['marker_median_s']:.2f} | {r['marker_min_s']:.2f} | {r['exit_median_s']:.2f} |")
            else:
                print(f"| {name} | failed | | |")
        if results.get("molt") and results.get("qemu"):
            ratio = results["molt"]["marker_median_s"] / results["qemu"]["marker_median_s"]
            print(f"molt/QEMU time to marker: {ratio:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
