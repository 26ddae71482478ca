#!/usr/bin/env python3
"""Boot benchmark: the test guest under molt and under Debian's QEMU, side by side.

For each VMM it measures, over several runs:
  * wall time from spawning the process to the guest's `@ready` line on the
    console (scenario `hello`);
  * peak RSS (VmHWM) beside the guest RAM the process actually holds (the
    resident size of the guest-RAM mapping in /proc/<pid>/smaps), after
    `hello` and after `memtest N`; the difference is the VMM's own memory;
and for molt alone, its start-up CPU cost: the `start-up took X CPU-ms` log
line (CPU time until the first KVM_RUN), and the child's rusage when the guest
exits on its first instructions (a 5-byte PVH guest this script writes).

Why VmHWM and not wait4()'s ru_maxrss: Linux folds the RSS of the address
space being replaced at execve() into ru_maxrss, and Python spawns children
with vfork, so ru_maxrss reports this script's own ~14 MiB for any child
smaller than that. The guest therefore runs without a debug-exit device: after
`@result` it halts for good, the script reads /proc/<pid>/{status,smaps} at
leisure, then stops the VMM with SIGTERM.

Speed is shown here, never asserted in tests. Python 3 standard library only.
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import selectors
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QEMU = "qemu-system-x86_64"
QEMU_FIXED_ARGS = ["-enable-kvm", "-nographic", "-no-reboot", "-display", "none", "-serial", "stdio",
                   "-monitor", "none"]
QEMU_DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
GOAL_RATIO = 1 / 20         # molt reaches @ready in at most 1/20 of QEMU's time
GOAL_STARTUP_CPU_MS = 8.0   # Firecracker's published start-up CPU budget
GOAL_OVERHEAD_MIB = 10.0    # molt's own memory beside guest RAM
KIB_PER_MIB = 1024


@dataclasses.dataclass
class Run:
    """One VMM process: console events, memory samples, exit and CPU figures."""
    argv: list
    events: dict = dataclasses.field(default_factory=dict)  # "@ready" -> seconds since spawn
    lines: dict = dataclasses.field(default_factory=dict)   # "@ready" -> first line with it
    stdout: str = ""
    stderr: str = ""
    status: dict = dataclasses.field(default_factory=dict)  # /proc/<pid>/status, KiB
    guest_rss_kib: int = -1
    mappings: list = dataclasses.field(default_factory=list)
    wall_s: float = 0.0
    exit_code: int = 0
    cpu_user_ms: float = 0.0
    cpu_sys_ms: float = 0.0
    timed_out: bool = False

    @property
    def cpu_ms(self):
        return self.cpu_user_ms + self.cpu_sys_ms

    def field(self, line_event, key):
        """Value of `key=` in the first console line starting with line_event."""
        for token in self.lines.get(line_event, "").split()[1:]:
            name, _, value = token.partition("=")
            if name == key:
                return value
        return None


# ---------------------------------------------------------------- processes

def read_status(pid):
    """Vm*/Rss*/Threads fields of /proc/<pid>/status, in KiB (Threads as a count)."""
    wanted = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads")
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in wanted:
                out[name] = int(rest.split()[0])
    return out


def read_smaps(pid):
    """[(name, size_kib, rss_kib)] for every mapping of the process."""
    maps = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if "-" in head[0] and not head[0].endswith(":"):
                maps.append([" ".join(head[5:]) or "[anon]", 0, 0])
            elif head[0] == "Size:":
                maps[-1][1] = int(head[1])
            elif head[0] == "Rss:":
                maps[-1][2] = int(head[1])
    return [tuple(m) for m in maps]


def guest_ram_rss(mappings, memory_mib):
    """Resident KiB of the guest-RAM mapping: the largest one at least as big as guest RAM."""
    big = [m for m in mappings if m[1] >= memory_mib * KIB_PER_MIB]
    return max(big, key=lambda m: m[1])[2] if big else -1


def scan_lines(run, buffer, scanned, now):
    """Records the first time each `@event` line was seen; returns the new scan offset."""
    while True:
        end = buffer.find(b"\n", scanned)
        if end < 0:
            return scanned
        line = buffer[scanned:end].decode(errors="replace").strip()
        scanned = end + 1
        if line.startswith("@"):
            event = line.split()[0]
            if event not in run.events:
                run.events[event] = now
                run.lines[event] = line


def run_vmm(argv, memory_mib, stop_at, timeout_s):
    """Spawns argv, timestamps console events, samples memory at `stop_at`, then SIGTERMs it.

    With stop_at=None the process is left to exit by itself (debug-exit)."""
    run = Run(argv=argv)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err, scanned = bytearray(), bytearray(), 0
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    deadline = start + timeout_s
    stopped = False
    while sel.get_map():
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            run.timed_out = True
            proc.kill()
            break
        for key, _ in sel.select(remaining):
            data = os.read(key.fd, 65536)
            now = time.perf_counter() - start
            if not data:
                sel.unregister(key.fileobj)
                continue
            key.data.extend(data)
            if key.data is out:
                scanned = scan_lines(run, out, scanned, now)
        if stop_at and not stopped and ("@result" in run.events or "@fault" in run.events):
            sample_memory(run, proc.pid, memory_mib)
            proc.send_signal(signal.SIGTERM)
            stopped = True
    sel.close()
    _, wait_status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(wait_status)  # keeps Popen from waiting again
    run.wall_s = time.perf_counter() - start
    run.exit_code = proc.returncode
    run.cpu_user_ms = usage.ru_utime * 1000
    run.cpu_sys_ms = usage.ru_stime * 1000
    run.stdout, run.stderr = out.decode(errors="replace"), err.decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    return run


def sample_memory(run, pid, memory_mib):
    try:
        run.status = read_status(pid)
        run.mappings = read_smaps(pid)
        run.guest_rss_kib = guest_ram_rss(run.mappings, memory_mib)
    except OSError as e:  # the process died between the line and the sample
        print(f"  warning: could not sample /proc/{pid}: {e}", file=sys.stderr)


# ---------------------------------------------------------------- guests and command lines

def write_exit_guest(path):
    """A PVH ELF whose first instructions write 0 to the debug-exit port (3 instructions).

    32-bit entry at 1 MiB: xor %eax,%eax; out %eax,$0xf4; 1: hlt; jmp 1b."""
    load_addr, code_offset = 0x100000, 0x1000
    code = bytes([0x31, 0xC0, 0xE7, 0xF4, 0xF4, 0xEB, 0xFD])
    note = struct.pack("<III4sQ", 4, 8, 18, b"Xen\0", load_addr)  # XEN_ELFNOTE_PHYS32_ENTRY
    ehdr_size, phdr_size = 64, 56
    note_offset = ehdr_size + 2 * phdr_size
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, load_addr, ehdr_size, 0, 0, ehdr_size, phdr_size,
                               2, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 7, code_offset, load_addr, load_addr, len(code), len(code), 0x1000)
    pt_note = struct.pack("<IIQQQQQQ", 4, 4, note_offset, 0, 0, len(note), len(note), 4)
    image = bytearray(ehdr + load + pt_note + note)
    image.extend(bytes(code_offset - len(image)))
    image.extend(code)
    path.write_bytes(bytes(image))


def write_machine_without_exit(source, target):
    """The machine file minus its debug-exit device, so the guest halts after `@result`."""
    machine = json.loads(source.read_text())
    machine["devices"] = [d for d in machine.get("devices", []) if d.get("type") != "debug-exit"]
    target.write_text(json.dumps(machine, indent=2))


def molt_argv(args, machine, kernel, cmdline):
    return [str(args.molt), "--log-level", "info", "run", str(machine), "--kernel", str(kernel),
            "--cmdline", cmdline, "--memory", f"{args.memory}M", "--vcpus", str(args.vcpus)]


def qemu_argv(args, cmdline):
    return [args.qemu, *QEMU_FIXED_ARGS, "-m", str(args.memory), "-smp", str(args.vcpus),
            "-kernel", str(args.guest), "-append", cmdline, *args.qemu_arg]


def startup_log_ms(run):
    """The `start-up took X CPU-ms` figure molt logs before its first KVM_RUN, or None."""
    for line in run.stderr.splitlines():
        if "start-up took" in line:
            return float(line.split("start-up took")[1].split()[0])
    return None


def image_load_mib(path):
    """Sum of an ELF64's PT_LOAD memory sizes: what loading the guest writes into its RAM."""
    data = path.read_bytes()
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    total = 0
    for i in range(min(phnum, 64)):
        p_type, = struct.unpack_from("<I", data, phoff + i * phentsize)
        if p_type == 1:
            total += struct.unpack_from("<Q", data, phoff + i * phentsize + 40)[0]
    return total / (1 << 20)


# ---------------------------------------------------------------- phases

def checked(run, what, expect_exit=None):
    """The run if the guest passed (and exited as expected), else None after saying why."""
    problem = None
    if run.timed_out:
        problem = "timed out"
    elif expect_exit is None and run.lines.get("@result") != "@result pass":
        problem = f"no '@result pass' on the console (got {run.lines.get('@result')!r})"
    elif expect_exit is not None and run.exit_code != expect_exit:
        problem = f"exit status {run.exit_code}, expected {expect_exit}"
    if problem is None:
        return run
    print(f"  {what}: run failed: {problem}", file=sys.stderr)
    print("  command: " + " ".join(run.argv), file=sys.stderr)
    for name, text in (("stdout", run.stdout), ("stderr", run.stderr)):
        tail = text.strip().splitlines()[-8:]
        if tail:
            print(f"  {name} (last lines):\n    " + "\n    ".join(tail), file=sys.stderr)
    return None


def repeat(label, count, make_run, expect_exit=None):
    runs = []
    for i in range(count):
        print(f"  {label} {i + 1}/{count} ...", end="", flush=True, file=sys.stderr)
        run = make_run()
        print(f" {run.wall_s * 1000:.1f} ms", file=sys.stderr)
        if checked(run, label, expect_exit):
            runs.append(run)
    return runs


def run_phases(args, tmp):
    no_exit_machine = tmp / "machine-no-exit.json"
    write_machine_without_exit(args.machine, no_exit_machine)
    exit_guest = tmp / "exit-at-entry.elf"
    write_exit_guest(exit_guest)
    memtest = f"memtest {args.memtest}"
    timeout = args.timeout
    mem = args.memory
    results = {"molt": {}, "qemu": {}}
    m = results["molt"]
    m["hello"] = repeat("molt hello", args.molt_runs, lambda: run_vmm(
        molt_argv(args, no_exit_machine, args.guest, "hello"), mem, True, timeout))
    m["memtest"] = repeat(f"molt {memtest}", args.molt_memory_runs, lambda: run_vmm(
        molt_argv(args, no_exit_machine, args.guest, memtest), mem, True, timeout))
    m["exit"] = repeat("molt exit-at-entry guest", args.molt_runs, lambda: run_vmm(
        molt_argv(args, args.machine, exit_guest, "exit"), mem, None, timeout), expect_exit=1)
    m["version"] = repeat("molt --version", args.molt_runs, lambda: run_vmm(
        [str(args.molt), "--version"], mem, None, timeout), expect_exit=0)
    if not args.skip_qemu:
        q = results["qemu"]
        q["hello"] = repeat("qemu hello", args.qemu_runs, lambda: run_vmm(
            qemu_argv(args, "hello"), mem, True, timeout))
        q["memtest"] = repeat(f"qemu {memtest}", args.qemu_memory_runs, lambda: run_vmm(
            qemu_argv(args, memtest), mem, True, timeout))
    return results


# ---------------------------------------------------------------- report

def spread(values):
    """(median, min, max) or None when there is nothing to summarise."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt_spread(s, digits=1):
    if s is None:
        return "n/a"
    med, lo, hi = s
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def mib(kib):
    return None if kib is None or kib < 0 else kib / KIB_PER_MIB


def print_boot_table(results):
    print("Boot: wall ms from spawning the VMM to `@ready` on its console (scenario hello)")
    print(f"  {'VMM':<6}{'runs':>5}  {'median':>10}{'min':>10}{'max':>10}   guest-reported us (median)")
    medians = {}
    for vmm in ("molt", "qemu"):
        runs = results[vmm].get("hello") or []
        s = spread([r.events.get("@ready", None) and r.events["@ready"] * 1000 for r in runs])
        if s is None:
            continue
        guest_us = spread([float(r.field("@ready", "us") or 0) for r in runs])
        medians[vmm] = s[0]
        print(f"  {vmm:<6}{len(runs):>5}  {s[0]:>10.1f}{s[1]:>10.1f}{s[2]:>10.1f}   {guest_us[0]:.0f}")
    ratio = medians["molt"] / medians["qemu"] if len(medians) == 2 else None
    if ratio is not None:
        print(f"  molt/QEMU (medians): {ratio:.5f} = 1/{1 / ratio:.0f}")
    print()
    return ratio


def memory_row(vmm, scenario, runs, touched):
    hwm = spread([mib(r.status.get("VmHWM")) for r in runs])
    guest = spread([mib(r.guest_rss_kib) for r in runs])
    own = spread([mib(r.status["VmHWM"] - r.guest_rss_kib) for r in runs
                  if "VmHWM" in r.status and r.guest_rss_kib >= 0])
    nominal = spread([mib(r.status["VmHWM"]) - touched for r in runs if "VmHWM" in r.status])
    files = spread([mib(r.status.get("RssFile")) for r in runs])
    print(f"  {vmm:<5}{scenario:<13}{len(runs):>4}{touched:>9.2f}{fmt_spread(guest):>21}"
          f"{fmt_spread(hwm):>21}{fmt_spread(own):>21}{fmt_spread(nominal):>21}{fmt_spread(files):>21}")
    return own


def print_memory_table(results, args):
    print("Memory (MiB; median (min-max)), sampled from /proc/<pid> after `@result`:")
    print("  touched  = guest RAM the test writes (hello: the loaded image; memtest N: N MiB)")
    print("  resident = resident size of the guest-RAM mapping (smaps): touched + firmware/boot data")
    print("  own      = peak RSS (VmHWM) - resident guest RAM: the VMM's own memory")
    print(f"  {'VMM':<5}{'scenario':<13}{'runs':>4}{'touched':>9}{'resident':>21}{'peak RSS':>21}"
          f"{'own':>21}{'peak - touched':>21}{'RssFile':>21}")
    image = image_load_mib(args.guest)
    own = {}
    for vmm in ("molt", "qemu"):
        for scenario, touched in (("hello", image), (f"memtest {args.memtest}", float(args.memtest))):
            runs = results[vmm].get(scenario.split()[0]) or []
            if runs:
                own[(vmm, scenario.split()[0])] = memory_row(vmm, scenario, runs, touched)
    print()
    return own


def print_startup_table(results):
    m = results["molt"]
    log = spread([startup_log_ms(r) for r in m.get("hello", [])])
    exit_cpu = spread([r.cpu_ms for r in m.get("exit", [])])
    exit_log = spread([startup_log_ms(r) for r in m.get("exit", [])])
    exit_wall = spread([r.wall_s * 1000 for r in m.get("exit", [])])
    user = spread([r.cpu_user_ms for r in m.get("exit", [])])
    system = spread([r.cpu_sys_ms for r in m.get("exit", [])])
    version = spread([r.cpu_ms for r in m.get("version", [])])
    print("molt start-up (CPU-ms; median (min-max)):")
    print(f"  log line 'start-up took' (process start -> first KVM_RUN), hello runs: {fmt_spread(log, 3)}")
    print(f"  log line, exit-at-entry guest runs:                                 {fmt_spread(exit_log, 3)}")
    print(f"  rusage user+sys of the whole process, exit-at-entry guest:          {fmt_spread(exit_cpu, 3)}")
    print(f"    of which user {fmt_spread(user, 3)}, system {fmt_spread(system, 3)};"
          f" wall spawn -> exit {fmt_spread(exit_wall, 1)} ms")
    print(f"  rusage of `molt --version` (exec, dynamic linking, static init):    {fmt_spread(version, 3)}")
    print()
    return log, exit_cpu


def verdict(ok):
    return "n/a " if ok is None else ("PASS" if ok else "MISS")


def print_goals(ratio, startup, own):
    log, exit_cpu = startup
    molt_own = [s[0] for (vmm, _), s in own.items() if vmm == "molt" and s is not None]
    worst_own = max(molt_own) if molt_own else None
    print("Goals:")
    ratio_text = f"{ratio:.5f} (1/{1 / ratio:.0f})" if ratio else "n/a (QEMU skipped or failed)"
    print(f"  [{verdict(ratio and ratio <= GOAL_RATIO)}] molt reaches @ready in <= 1/20 of QEMU's time:"
          f" molt/QEMU = {ratio_text}")
    print(f"  [{verdict(log and log[0] <= GOAL_STARTUP_CPU_MS)}] start-up CPU to the first guest instruction"
          f" <= {GOAL_STARTUP_CPU_MS:g} CPU-ms (Firecracker's class): log line median "
          f"{log[0] if log else float('nan'):.3f}")
    print(f"  [{verdict(exit_cpu and exit_cpu[0] <= GOAL_STARTUP_CPU_MS)}]   independent upper bound, whole"
          f" exit-at-entry process incl. teardown: {exit_cpu[0] if exit_cpu else float('nan'):.3f}")
    print(f"  [{verdict(worst_own is not None and worst_own < GOAL_OVERHEAD_MIB)}] molt's own memory"
          f" < {GOAL_OVERHEAD_MIB:g} MiB (peak RSS - resident guest RAM, worst scenario median):"
          f" {worst_own if worst_own is not None else float('nan'):.2f} MiB")


# ---------------------------------------------------------------- host facts and main

def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def kvm_backend():
    found = [m for m in ("kvm_pvm", "kvm_intel", "kvm_amd") if Path("/sys/module", m).exists()]
    return ", ".join(found) or "unknown"


def build_type(build_dir):
    cache = build_dir / "CMakeCache.txt"
    if cache.exists():
        for line in cache.read_text().splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                return line.split("=", 1)[1] or "RelWithDebInfo (project default)"
    return "?"


def print_header(args):
    with open("/proc/meminfo") as f:
        mem_total = f.readline().split()[1]
    print("molt boot benchmark (tests/bench/boot_bench.py)")
    print(f"  date:    {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"  host:    Linux {platform.release()}, {cpu_model()}, {os.cpu_count()} CPUs,"
          f" {int(mem_total) // KIB_PER_MIB} MiB RAM, KVM backend {kvm_backend()}")
    print(f"  molt:    {args.molt} ({first_line([str(args.molt), '--version'])},"
          f" build type {build_type(args.build_dir)})")
    print(f"  qemu:    {'skipped' if args.skip_qemu else first_line([args.qemu, '--version'])}")
    print(f"  guest:   {args.guest}, {args.memory} MiB, {args.vcpus} vCPU(s), memtest {args.memtest} MiB")
    print(f"  runs:    molt {args.molt_runs} (+{args.molt_memory_runs} memtest),"
          f" QEMU {0 if args.skip_qemu else args.qemu_runs} (+{0 if args.skip_qemu else args.qemu_memory_runs}"
          " memtest)")
    print("  command: " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    print()


def parse_args():
    here = Path(__file__).resolve().parent
    source = here.parent.parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--build-dir", type=Path, default=source / "build", help="molt build tree")
    p.add_argument("--machine", type=Path, default=source / "machines" / "default.json")
    p.add_argument("--molt", type=Path, help="molt binary (default: BUILD_DIR/molt)")
    p.add_argument("--guest", type=Path, help="test guest (default: BUILD_DIR/guest/testguest.elf)")
    p.add_argument("--qemu", default=QEMU, help="QEMU binary")
    p.add_argument("--qemu-arg", action="append", default=[], help="extra QEMU argument (repeatable)")
    p.add_argument("--molt-runs", type=int, default=10, help="hello, exit-at-entry and --version runs")
    p.add_argument("--molt-memory-runs", type=int, default=3, help="memtest runs under molt")
    p.add_argument("--qemu-runs", type=int, default=3, help="hello runs under QEMU (15-50 s each here)")
    p.add_argument("--qemu-memory-runs", type=int, default=1, help="memtest runs under QEMU")
    p.add_argument("--memory", type=int, default=256, help="guest RAM in MiB")
    p.add_argument("--vcpus", type=int, default=1)
    p.add_argument("--memtest", type=int, default=64, help="MiB the memtest runs touch")
    p.add_argument("--skip-qemu", action="store_true", help="measure molt only")
    p.add_argument("--timeout", type=float, default=180, help="seconds before a run is killed")
    p.add_argument("--json", type=Path, help="also write every run's figures here")
    args = p.parse_args()
    args.molt = (args.molt or args.build_dir / "molt").resolve()
    args.guest = (args.guest or args.build_dir / "guest" / "testguest.elf").resolve()
    args.machine = args.machine.resolve()
    return args


def preflight(args):
    """A sentence saying what is missing, or None."""
    for what, path in (("molt", args.molt), ("the test guest", args.guest), ("the machine file", args.machine)):
        if not path.is_file():
            return (f"{what} is missing at {path}; build it (cmake --build {args.build_dir} --target molt "
                    "testguest) or pass --build-dir")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is missing or not accessible; both VMMs need KVM"
    if args.memtest >= args.memory:
        return f"--memtest {args.memtest} must be smaller than --memory {args.memory}"
    if not args.skip_qemu and shutil.which(args.qemu) is None:
        return (f"{args.qemu} is not installed; run scripts/setup.sh --bench (installs Debian's "
                "qemu-system-x86), or pass --skip-qemu to measure molt alone")
    return None


def dump_json(path, results):
    def plain(run):
        d = dataclasses.asdict(run)
        d["mappings"] = sorted(run.mappings, key=lambda m: -m[2])[:12]
        return d
    path.write_text(json.dumps({vmm: {k: [plain(r) for r in runs] for k, runs in phases.items()}
                                for vmm, phases in results.items()}, indent=1))


def main():
    args = parse_args()
    problem = preflight(args)
    if problem:
        print(f"boot_bench: {problem}", file=sys.stderr)
        return 2
    print_header(args)
    with tempfile.TemporaryDirectory(prefix="molt-bench-") as tmp:
        results = run_phases(args, Path(tmp))
    if args.json:
        dump_json(args.json, results)
    ratio = print_boot_table(results)
    own = print_memory_table(results, args)
    startup = print_startup_table(results)
    print_goals(ratio, startup, own)
    complete = all(results["molt"].get(k) for k in ("hello", "memtest", "exit"))
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
