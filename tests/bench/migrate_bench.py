#!/usr/bin/env python3
"""Live-migration benchmark: total time and downtime of a 1 GiB test guest
migrated over loopback TCP, molt against Debian's QEMU, in one run.

Scenarios (each --runs times, default 3; --quick: 1):
  idle  the guest runs `memtest 1 0`: 1 MiB rewritten and verified forever,
        one console line per round (nearly idle: the console dominates)
  load  the guest runs `memtest 256 0`: 256 MiB rewritten at native speed
        forever, a steady dirtying load

For each run a fresh source boots the guest and prints its first `@memtest`
round, a destination waits with --incoming (QEMU: -incoming), and the source is
told to migrate with the same downtime limit and bandwidth cap on both VMMs.
The figures are the VMMs' own: molt's migrate.status (total_ms,
downtime.actual_us and its breakdown_us) and QEMU's query-migrate (total-time,
downtime, setup-time). After each migration the destination's console must go
on printing `@memtest ... errors=0 ok` rounds; a `fail` or `corrupt` line, or
silence, is reported as a failure of that run.

The issue's goals are printed as PASS/FAIL, never asserted. Python 3 stdlib
only. Exits 1 if a molt run failed, 2 if something needed is missing.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

QEMU = "qemu-system-x86_64"
ROUND = re.compile(r"^@memtest round=(\d+) mib=(\d+) .*errors=(\d+) (ok|fail)\s*$")
BAD = re.compile(r"^@memtest (corrupt|too-large)|^@fault|^@result fail")
TERMINAL_MOLT = ("completed", "failed", "cancelled")
TERMINAL_QEMU = ("completed", "failed", "cancelled")
# QEMU's "no cap": max-bandwidth is bytes/s and its default is 128 MiB/s.
QEMU_UNLIMITED = 100 * 10**9


class BenchError(Exception):
    """A run that did not produce figures; the message says what was seen."""


class Console:
    """Collects a child's stdout lines in a thread so the pipe never fills."""

    def __init__(self, stream):
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            with self.cond:
                self.lines.append((time.monotonic(), line))
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.lines)

    def rounds_since(self, start):
        """(clean rounds, failure lines) among the lines from index `start` on."""
        with self.cond:
            return self._rounds_since_locked(start)

    def wait_rounds(self, start, count, timeout_s):
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while True:
                good, bad = self._rounds_since_locked(start)
                if bad or len(good) >= count or self.closed:
                    return good, bad
                left = deadline - time.monotonic()
                if left <= 0:
                    return good, bad
                self.cond.wait(left)

    def _rounds_since_locked(self, start):
        lines = [text for _, text in self.lines[start:]]
        rounds = [(line, ROUND.match(line)) for line in lines]
        good = [line for line, m in rounds if m and m.group(4) == "ok" and m.group(3) == "0"]
        bad = [line for line, m in rounds if BAD.match(line) or (m and (m.group(4) != "ok" or m.group(3) != "0"))]
        return good, bad

    def tail(self, n=8):
        with self.cond:
            return [text for _, text in self.lines[-n:]]


class LineRpc:
    """Newline-delimited JSON over a UNIX socket: molt's JSON-RPC 2.0 monitor or QEMU's QMP."""

    def __init__(self, path, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise BenchError(f"nothing answers on the monitor socket {path} after {timeout_s:.0f} s")
                time.sleep(0.02)
        self.sock.settimeout(30)
        self.buffer = b""
        self.next_id = 1

    def read_message(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("the monitor closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def close(self):
        self.sock.close()


class MoltMonitor(LineRpc):
    def call(self, method, params=None):
        request = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            request["params"] = params
        self.next_id += 1
        self.send(request)
        while True:
            reply = self.read_message()
            if reply.get("id") != request["id"]:
                continue  # an event notification
            if "error" in reply:
                raise BenchError(f"molt {method} {json.dumps(params)} answered {json.dumps(reply['error'])}")
            return reply["result"]


class Qmp(LineRpc):
    def __init__(self, path, timeout_s):
        super().__init__(path, timeout_s)
        self.read_message()  # the greeting
        self.call("qmp_capabilities")

    def call(self, command, arguments=None):
        request = {"execute": command, "id": self.next_id}
        if arguments is not None:
            request["arguments"] = arguments
        self.next_id += 1
        self.send(request)
        while True:
            reply = self.read_message()
            if "event" in reply or reply.get("id") != request["id"]:
                continue
            if "error" in reply:
                raise BenchError(f"QEMU {command} {json.dumps(arguments)} answered {json.dumps(reply['error'])}")
            return reply["return"]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_molt_machine(path, elf, disk, memory_mib):
    """machines/default.json's devices, with this run's memory and disk image."""
    machine = {
        "machine": "molt-pc",
        "vcpus": 1,
        "memory": {"size": f"{memory_mib}M", "backend": "memfd"},
        "kernel": {"path": str(elf), "cmdline": "hello"},
        "devices": [
            {"id": "com1", "type": "serial-16550a", "properties": {"backend": "stdio"}},
            {"id": "exit", "type": "debug-exit"},
            {"id": "host", "type": "i440fx-host"},
            {"id": "isa", "type": "piix3-isa"},
            {"id": "rtc", "type": "mc146818-rtc"},
            {"id": "ide0", "type": "piix3-ide", "properties": {"primary-master": str(disk)}},
            {"id": "fwcfg", "type": "fw-cfg"},
        ],
    }
    path.write_text(json.dumps(machine, indent=1))


class Vmm:
    """One VMM process: its console, its stderr in a file, and a way to end it."""

    def __init__(self, argv, stderr_path):
        self.argv = argv
        self.stderr_path = stderr_path
        self.stderr_file = open(stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr_file)
        self.console = Console(self.proc.stdout)

    def stderr_tail(self, n=12):
        self.stderr_file.flush()
        lines = Path(self.stderr_path).read_text(errors="replace").splitlines()
        return lines[-n:]

    def stop(self, quit_call=None):
        if self.proc.poll() is None and quit_call is not None:
            try:
                quit_call()
            except (BenchError, OSError, ValueError):
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.console.thread.join(timeout=5)
        self.stderr_file.close()


def wait_first_round(vmm, who, timeout_s):
    good, bad = vmm.console.wait_rounds(0, 1, timeout_s)
    if bad or not good:
        raise BenchError(f"{who}: no first `@memtest ... ok` round within {timeout_s:.0f} s "
                         f"(exit {vmm.proc.poll()}); console: {vmm.console.tail()}; stderr: {vmm.stderr_tail()}")


def check_destination(dst, mark, who, rounds, timeout_s):
    """The destination's console goes on with clean rounds after the switchover."""
    good, bad = dst.console.wait_rounds(mark, rounds, timeout_s)
    if bad:
        raise BenchError(f"{who}: corruption or failure on the destination's console: {bad[:6]}")
    if len(good) < rounds:
        raise BenchError(f"{who}: the destination printed {len(good)} clean rounds in {timeout_s:.0f} s "
                         f"(wanted {rounds}; exit {dst.proc.poll()}); console: {dst.console.tail()}; "
                         f"stderr: {dst.stderr_tail()}")
    return good


def run_molt(args, tmp, machine, mib, run_tag):
    port = free_port()
    src_sock, dst_sock = tmp / f"molt-src-{run_tag}.sock", tmp / f"molt-dst-{run_tag}.sock"
    cmdline = f"memtest {mib} 0"
    src = Vmm([str(args.molt), "run", str(machine), "--cmdline", cmdline, "--api-socket", str(src_sock)],
              tmp / f"molt-src-{run_tag}.err")
    dst = None
    src_mon = dst_mon = None
    try:
        wait_first_round(src, "molt source", args.boot_timeout)
        dst = Vmm([str(args.molt), "run", str(machine), "--cmdline", cmdline, "--api-socket", str(dst_sock),
                   "--incoming", f"tcp:127.0.0.1:{port}"], tmp / f"molt-dst-{run_tag}.err")
        dst_mon = MoltMonitor(dst_sock, 30)
        deadline = time.monotonic() + 30
        while dst_mon.call("migrate.status").get("state") != "listening":
            if time.monotonic() > deadline:
                raise BenchError(f"molt destination never listened: {dst_mon.call('migrate.status')}")
            time.sleep(0.02)
        src_mon = MoltMonitor(src_sock, 30)
        src_mon.call("migrate.set_parameters",
                     {"downtime_limit_ms": args.downtime_limit_ms, "max_bandwidth": args.max_bandwidth})
        dst_mark = dst.console.mark()
        started = time.monotonic()
        src_mon.call("migrate.start", {"uri": f"tcp:127.0.0.1:{port}"})
        status = poll(lambda: src_mon.call("migrate.status"), "state", TERMINAL_MOLT, args)
        wall_ms = (time.monotonic() - started) * 1000
        if status is None:
            last = src_mon.call("migrate.status")
            src_mon.call("migrate.cancel")
            raise BenchError(f"molt: no switchover within {args.migrate_timeout:.0f} s; cancelled. "
                             f"Last status: {json.dumps(last)}")
        if status["state"] != "completed":
            raise BenchError(f"molt migration ended {status['state']}: {json.dumps(status)}; "
                             f"source stderr: {src.stderr_tail()}; destination stderr: {dst.stderr_tail()}; "
                             f"destination console: {dst.console.tail()}")
        check_destination(dst, dst_mark, "molt", args.rounds_after, args.check_timeout)
        _, src_bad = src.console.rounds_since(0)
        if src_bad:
            raise BenchError(f"molt: the source's console reported failures: {src_bad[:6]}")
        downtime = status["downtime"]
        return {
            "total_ms": float(status["total_ms"]),
            "downtime_ms": downtime["actual_us"] / 1000.0,
            "breakdown_us": downtime.get("breakdown_us", {}),
            "expected_downtime_us": downtime.get("expected_us"),
            "phases_us": status.get("phases_us", {}),
            "iterations": status.get("ram", {}).get("iterations"),
            "bytes_sent": status.get("bytes_sent"),
            "ram": status.get("ram", {}),
            "wall_ms": wall_ms,
        }
    finally:
        for mon, vmm in ((src_mon, src), (dst_mon, dst)):
            if vmm is not None:
                vmm.stop((lambda m=mon: m.call("vm.quit")) if mon is not None else None)
            if mon is not None:
                mon.close()


def poll(get_status, key, terminal, args):
    """Polls until the status's `key` is terminal; None when --migrate-timeout passes first."""
    deadline = time.monotonic() + args.migrate_timeout
    while time.monotonic() < deadline:
        status = get_status()
        if status.get(key) in terminal:
            return status
        time.sleep(args.poll_ms / 1000.0)
    return None


def qemu_argv(args, elf, disk, cmdline, qmp_sock):
    return [args.qemu, "-enable-kvm", "-M", "pc", "-m", f"{args.memory_mib}M", "-smp", "1", "-nographic",
            "-no-reboot", "-display", "none", "-serial", "stdio", "-monitor", "none", "-vga", "none", "-nic", "none",
            "-kernel", str(elf), "-append", cmdline, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-drive", f"file={disk},format=raw,if=ide", "-qmp", f"unix:{qmp_sock},server=on,wait=off",
            *args.qemu_arg]


def run_qemu(args, tmp, elf, disk, mib, run_tag):
    port = free_port()
    src_sock, dst_sock = tmp / f"qemu-src-{run_tag}.sock", tmp / f"qemu-dst-{run_tag}.sock"
    cmdline = f"memtest {mib} 0"
    src = Vmm(qemu_argv(args, elf, disk, cmdline, src_sock), tmp / f"qemu-src-{run_tag}.err")
    dst = None
    src_qmp = dst_qmp = None
    try:
        wait_first_round(src, "QEMU source", args.boot_timeout)
        dst = Vmm(qemu_argv(args, elf, disk, cmdline, dst_sock) + ["-incoming", f"tcp:127.0.0.1:{port}"],
                  tmp / f"qemu-dst-{run_tag}.err")
        dst_qmp = Qmp(dst_sock, 30)
        src_qmp = Qmp(src_sock, 30)
        bandwidth = args.max_bandwidth or QEMU_UNLIMITED
        src_qmp.call("migrate-set-parameters",
                     {"downtime-limit": args.downtime_limit_ms, "max-bandwidth": bandwidth})
        dst_mark = dst.console.mark()
        started = time.monotonic()
        src_qmp.call("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
        status = poll(lambda: src_qmp.call("query-migrate"), "status", TERMINAL_QEMU, args)
        wall_ms = (time.monotonic() - started) * 1000
        if status is None:
            last = src_qmp.call("query-migrate")
            src_qmp.call("migrate_cancel")
            raise BenchError(f"QEMU: no switchover within {args.migrate_timeout:.0f} s; cancelled. "
                             f"Last status: {json.dumps(last)}")
        if status["status"] != "completed":
            raise BenchError(f"QEMU migration ended {status['status']}: {json.dumps(status)}; "
                             f"destination stderr: {dst.stderr_tail()}")
        check_destination(dst, dst_mark, "QEMU", args.rounds_after, args.check_timeout)
        return {
            "total_ms": float(status["total-time"]),
            "downtime_ms": float(status["downtime"]),
            "setup_ms": float(status.get("setup-time", 0)),
            "iterations": status.get("ram", {}).get("dirty-sync-count"),
            "bytes_sent": status.get("ram", {}).get("transferred"),
            "ram": status.get("ram", {}),
            "wall_ms": wall_ms,
        }
    finally:
        for qmp, vmm in ((src_qmp, src), (dst_qmp, dst)):
            if vmm is not None:
                vmm.stop((lambda q=qmp: q.call("quit")) if qmp is not None else None)
            if qmp is not None:
                qmp.close()


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt_ms(value):
    return "-" if value is None else f"{value:.1f}"


def fmt_ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.3f}"


def breakdown_shares(runs):
    """Median µs and share of the downtime per breakdown entry, plus what no entry covers:
    mostly stopping the vCPU threads, which happens before the first entry starts."""
    keys = []
    for r in runs:
        keys += [k for k in r["breakdown_us"] if k not in keys]
    rows = []
    for key in keys:
        us = statistics.median(r["breakdown_us"].get(key, 0) for r in runs)
        share = statistics.median(r["breakdown_us"].get(key, 0) / (r["downtime_ms"] * 1000) for r in runs)
        rows.append((key, us, share))
    rest = [r["downtime_ms"] * 1000 - sum(r["breakdown_us"].values()) for r in runs]
    rows.append(("(in no entry)", statistics.median(rest),
                 statistics.median(us / (r["downtime_ms"] * 1000) for us, r in zip(rest, runs))))
    return rows


def source_side_ms(run):
    """molt's downtime up to the end of sending, the span QEMU's `downtime` covers: without the
    entries after `send` (the destination's load, the commit, the destination's start)."""
    entries = list(run["breakdown_us"].items())
    names = [name for name, _ in entries]
    after_send = entries[names.index("send") + 1:] if "send" in names else []
    return run["downtime_ms"] - sum(us for _, us in after_send) / 1000.0


def report(args, results, failures, scenarios):
    print()
    print(f"Live migration, {args.memory_mib} MiB guest, 1 vCPU, loopback TCP, downtime limit "
          f"{args.downtime_limit_ms} ms, bandwidth "
          f"{'unlimited' if not args.max_bandwidth else str(args.max_bandwidth) + ' B/s'}; "
          f"median of {args.runs} run(s) (ms)")
    print("| scenario | molt total | QEMU total | ratio | molt downtime | QEMU downtime | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, mib in scenarios:
        m, q = results["molt"][name], results["qemu"][name]
        mt, qt, md, qd = median(m, "total_ms"), median(q, "total_ms"), median(m, "downtime_ms"), median(q, "downtime_ms")
        print(f"| {name} (memtest {mib} 0) | {fmt_ms(mt)} | {fmt_ms(qt)} | {fmt_ratio(mt, qt)} "
              f"| {fmt_ms(md)} | {fmt_ms(qd)} | {fmt_ratio(md, qd)} |")

    print("\nPer run:")
    for vmm in ("molt", "qemu"):
        for name, _ in scenarios:
            for i, r in enumerate(results[vmm][name]):
                extra = (f" to end of sending {source_side_ms(r):.1f}" if vmm == "molt"
                         else f" setup {r['setup_ms']:.0f}")
                print(f"  {vmm:4} {name:4} #{i + 1}: total {r['total_ms']:.0f} ms, downtime {r['downtime_ms']:.2f} ms"
                      f"{extra}, passes {r['iterations']}, bytes {r['bytes_sent']}, wall {r['wall_ms']:.0f} ms")

    for name, _ in scenarios:
        runs = results["molt"][name]
        if not runs:
            continue
        print(f"\nmolt downtime breakdown, {name} (median of {len(runs)}; shares of downtime.actual_us;"
              f" median downtime to the end of sending: {statistics.median(source_side_ms(r) for r in runs):.2f} ms)")
        for key, us, share in breakdown_shares(runs):
            print(f"  {key:22} {us:10.0f} us  {share * 100:5.1f} %")

    print("\nGoals (issue 5):")
    idle_md = median(results["molt"].get("idle", []), "downtime_ms")
    goal("molt's downtime under 10 ms, idle guest", None if idle_md is None else idle_md < 10,
         f"median {fmt_ms(idle_md)} ms")
    lm, lq = median(results["molt"].get("load", []), "downtime_ms"), median(results["qemu"].get("load", []),
                                                                             "downtime_ms")
    goal("molt's downtime below QEMU's under load", None if lm is None or lq is None else lm < lq,
         f"molt {fmt_ms(lm)} ms, QEMU {fmt_ms(lq)} ms")
    for name, _ in scenarios:
        mt, qt = median(results["molt"][name], "total_ms"), median(results["qemu"][name], "total_ms")
        goal(f"molt's total time at most half of QEMU's, {name}", None if mt is None or not qt else mt <= qt / 2,
             f"molt {fmt_ms(mt)} ms, QEMU {fmt_ms(qt)} ms, ratio {fmt_ratio(mt, qt)}")
    if failures:
        print("\nFailed runs:")
        for f in failures:
            print(f"  {f}")


def goal(text, ok, detail):
    """ok: True, False, or None when a figure is missing (a skipped or failed VMM)."""
    print(f"  [{'n/a ' if ok is None else 'PASS' if ok else 'FAIL'}] {text}: {detail}")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", type=Path, required=True, help="holds molt and guest/testguest.elf")
    ap.add_argument("--runs", type=int, default=3, help="repetitions per scenario and VMM (median shown)")
    ap.add_argument("--quick", action="store_true", help="one repetition (same as --runs 1)")
    ap.add_argument("--memory-mib", type=int, default=1024)
    ap.add_argument("--idle-mib", type=int, default=1, help="memtest MiB of the idle scenario")
    ap.add_argument("--load-mib", type=int, default=256, help="memtest MiB of the load scenario")
    ap.add_argument("--scenario", action="append", choices=("idle", "load"), help="run only these (repeatable)")
    ap.add_argument("--downtime-limit-ms", type=int, default=300)
    ap.add_argument("--max-bandwidth", type=int, default=0,
                    help=f"bytes/s for both VMMs; 0: no cap (QEMU is given {QEMU_UNLIMITED})")
    ap.add_argument("--skip-qemu", action="store_true")
    ap.add_argument("--qemu-arg", action="append", default=[], help="appended to both QEMU command lines")
    ap.add_argument("--rounds-after", type=int, default=3,
                    help="clean memtest rounds the destination must print after the switchover")
    ap.add_argument("--boot-timeout", type=float, default=120.0, help="s to the source's first round")
    ap.add_argument("--migrate-timeout", type=float, default=120.0, help="s before a migration counts as stuck")
    ap.add_argument("--check-timeout", type=float, default=60.0, help="s for the destination's rounds")
    ap.add_argument("--poll-ms", type=float, default=20.0, help="status polling period")
    ap.add_argument("--json", type=Path, help="write every run's figures here")
    args = ap.parse_args()
    if args.quick:
        args.runs = 1
    args.molt = args.build_dir / "molt"
    args.elf = args.build_dir / "guest" / "testguest.elf"
    for needed in (args.molt, args.elf):
        if not needed.exists():
            print(f"migrate_bench: {needed} is missing; build the molt, testguest and plugin targets first",
                  file=sys.stderr)
            sys.exit(2)
    args.qemu = shutil.which(QEMU)
    if not args.skip_qemu and args.qemu is None:
        print(f"migrate_bench: {QEMU} is not installed (scripts/setup.sh --bench), or pass --skip-qemu",
              file=sys.stderr)
        sys.exit(2)
    return args


def header(args):
    molt_version = subprocess.run([str(args.molt), "--version"], capture_output=True, text=True).stdout.strip()
    qemu_version = "-" if args.skip_qemu else subprocess.run(
        [args.qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"  date:    {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}")
    print(f"  host:    {platform.system()} {platform.release()}, {os.cpu_count()} CPUs")
    print(f"  molt:    {args.molt} ({molt_version})")
    print(f"  qemu:    {args.qemu or '-'} ({qemu_version})")
    print(f"  command: {' '.join([Path(sys.argv[0]).name] + sys.argv[1:])}")


def main():
    args = parse_args()
    scenarios = [(name, mib) for name, mib in (("idle", args.idle_mib), ("load", args.load_mib))
                 if not args.scenario or name in args.scenario]
    header(args)
    results = {vmm: {name: [] for name, _ in scenarios} for vmm in ("molt", "qemu")}
    failures = []
    molt_failed = False
    with tempfile.TemporaryDirectory(prefix="molt-migrate-bench-") as tmp:
        tmp = Path(tmp)
        disk = tmp / "disk.img"
        with open(disk, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, 16 << 20)
        machine = tmp / "machine.json"
        write_molt_machine(machine, args.elf.resolve(), disk, args.memory_mib)
        for name, mib in scenarios:
            for run in range(args.runs):
                tag = f"{name}-{run}"
                jobs = [("molt", lambda: run_molt(args, tmp, machine, mib, tag))]
                if not args.skip_qemu:
                    jobs.append(("qemu", lambda: run_qemu(args, tmp, args.elf.resolve(), disk, mib, tag)))
                for vmm, job in jobs:
                    try:
                        r = job()
                        results[vmm][name].append(r)
                        print(f"{vmm} {name} run {run + 1}/{args.runs}: total {r['total_ms']:.0f} ms, downtime "
                              f"{r['downtime_ms']:.2f} ms, passes {r['iterations']}", file=sys.stderr, flush=True)
                    except (BenchError, OSError, subprocess.SubprocessError, json.JSONDecodeError, KeyError) as e:
                        failures.append(f"{vmm} {name} run {run + 1}: {e}")
                        molt_failed |= vmm == "molt"
                        print(f"{vmm} {name} run {run + 1}/{args.runs}: FAILED: {e}", file=sys.stderr, flush=True)
    report(args, results, failures, scenarios)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "failures": failures}, indent=1))
    sys.exit(1 if molt_failed else 0)


if __name__ == "__main__":
    main()
