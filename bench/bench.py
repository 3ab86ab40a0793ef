#!/usr/bin/env python3
"""What a TCP tracer costs a loopback connection storm (issue 6).

In one run, interleaved and repeated (rounds; medians with min-max), the
storm of .output/bench/loadgen runs without a tracer and under each tracer
(stdout to /dev/null): synfin --json, synfin --life --json, libbpf-tools'
tcpstates and tcplife, and the floor: an empty program on the same tracepoint
(bench/floor.bpf.c), the hook's own price. For each: connections/s, the ratio to the baseline of
the same round, the tracer's CPU time (utime+stime from /proc/PID/stat,
sampled just before it is stopped, less what it had used once ready) per
1,000 connections, its peak RSS (VmHWM) and the events it says it lost.

Then, once per tracer, a counting pass writes the tracer's output to a file
to compare events expected (per-connection transitions measured by a slow
calibration run under synfin) with events captured and lost; with BPF run
time statistics on (kernel.bpf_stats_enabled) for that pass only, it also
gives the BPF program's nanoseconds per run. Then a drop storm: SYNs from
raw sockets (bench/synstorm.c) that an nftables rule drops, alone and beside
a connection storm, against the rule's own counter (issue 17). And
bench/micro.c measures synfin's user-space path alone (run first, while the
machine is quiet).

Markdown on stdout, progress on stderr, everything in --out (JSON).
Python 3 standard library only; needs root.
"""
import argparse
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_BIN = os.path.join(ROOT, ".output", "bench")
LOADGEN = os.path.join(BENCH_BIN, "loadgen")
SYNSTORM = os.path.join(BENCH_BIN, "synstorm")
MICRO = os.path.join(BENCH_BIN, "micro")
FLOOR = os.path.join(BENCH_BIN, "floor")
FLOOR_OBJ = os.path.join(BENCH_BIN, "floor.bpf.o")
READY = "Tracing TCP connections... Hit Ctrl-C to end."
CLK_TCK = os.sysconf("SC_CLK_TCK")
BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"
# After the load: let the tracer drain its buffers (synfin polls every 10 ms,
# and looks up TIME_WAIT sockets 50 ms after their close) before sampling it.
SETTLE_S = 0.3
NETNS_SETTLE_S = 0.5

# The namespace each run gets, as hosts have it (issue 13): fresh; its TIME_WAIT table full
# (net.ipv4.tcp_max_tw_buckets reached before the tracer starts, so no close of the storm
# gets a mini-socket); or already holding 100,000 TIME_WAIT sockets when the tracer starts.
CONDITIONS = {
    "fresh": {"name": "fresh", "label": "fresh namespace", "tw_buckets": 2000000, "prefill": 0},
    "full": {"name": "full", "label": "TIME_WAIT table full (tcp_max_tw_buckets 1,000)",
             "tw_buckets": 1000, "prefill": 1100},
    "tw100k": {"name": "tw100k", "label": "100,000 TIME_WAIT sockets at start",
               "tw_buckets": 2000000, "prefill": 100000},
}


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- tools

def find_bcc_tool(name):
    """libbpf-tools' binary: Debian installs /usr/sbin/NAME; other builds use a bpf- prefix."""
    for cand in (name, "bpf-" + name, "/usr/sbin/" + name, "/usr/sbin/bpf-" + name):
        path = shutil.which(cand)
        if path:
            return path
    try:
        files = subprocess.run(["dpkg", "-L", "libbpf-tools"], capture_output=True,
                               text=True).stdout.split()
    except FileNotFoundError:
        files = []
    for f in files:
        if os.path.basename(f) in (name, "bpf-" + name) and os.access(f, os.X_OK):
            return f
    return None


def ensure_tracefs():
    """bcc's tools attach classic tracepoints, whose ids libbpf reads from tracefs."""
    if any(os.path.isdir(d) for d in ("/sys/kernel/tracing/events",
                                       "/sys/kernel/debug/tracing/events")):
        return
    log("tracefs not mounted: mounting it on /sys/kernel/tracing")
    subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=False)


def ensure_bcc_tools():
    """tcpstates and tcplife, installing Debian's libbpf-tools when they are missing."""
    ensure_tracefs()
    tools = {n: find_bcc_tool(n) for n in ("tcpstates", "tcplife")}
    if all(tools.values()) or not shutil.which("apt-get"):
        return tools
    log("libbpf-tools missing: installing it with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "libbpf-tools"]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)
    return {n: find_bcc_tool(n) for n in ("tcpstates", "tcplife")}


# ---------------------------------------------------------------- /proc

def stat_fields(path):
    """A /proc .../stat line's fields after the command name (which may hold spaces and
    parentheses): [0] is the state, field 3 of proc(5)."""
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()


def proc_cpu_ns(pid):
    """utime + stime of the whole process, in ns (clock-tick resolution: 10 ms)."""
    fields = stat_fields(f"/proc/{pid}/stat")
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLK_TCK


def reader_faults(pid):
    """Minor page faults of the main thread (synfin's reader) so far (minflt): first touches
    of memory, each a stall while the rings fill. A helper thread's faults are not in it."""
    return int(stat_fields(f"/proc/{pid}/task/{pid}/stat")[7])


def status_field(path, key):
    """The number on the KEY: line of a /proc status file (a process's or one thread's);
    0 when it has none."""
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def thread_times(pid):
    """Each thread of the tracer by name: its CPU time and its waits on a run queue (ns,
    /proc/PID/task/TID/schedstat), its forced context switches (status) and its system
    time (ticks, stat). Which thread spent what, and in which mode, when a run falls
    behind: the reader, or a helper beside it; its own code, or the kernel for it."""
    threads = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return threads
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, wait_ns = (int(x) for x in f.read().split()[:2])
            forced = status_field(f"/proc/{pid}/task/{tid}/status", "nonvoluntary_ctxt_switches")
            sys_ticks = int(stat_fields(f"/proc/{pid}/task/{tid}/stat")[12])
        except (OSError, ValueError):
            continue
        threads[f"{name}/{tid}"] = (run_ns, wait_ns, forced, sys_ticks)
    return threads


def thread_deltas(before, after):
    """Per thread over the storm: CPU ms, run-queue wait ms, forced context switches, and
    the kernel's share of the CPU (system_ms, from stat's ticks)."""
    out = {}
    for key, (run1, wait1, forced1, sys1) in after.items():
        run0, wait0, forced0, sys0 = before.get(key, (0, 0, 0, 0))
        out[key] = {"cpu_ms": (run1 - run0) / 1e6, "runq_wait_ms": (wait1 - wait0) / 1e6,
                    "forced_switches": forced1 - forced0,
                    "system_ms": (sys1 - sys0) * 1000 / os.sysconf("SC_CLK_TCK")}
    return out


# The host's side of a run that fell behind: stolen time (/proc/stat), page-fault
# compaction and huge pages (/proc/vmstat), over the storm.
HOST_VMSTAT = ("compact_stall", "thp_fault_alloc", "thp_fault_fallback", "pgmajfault",
               "allocstall_normal", "allocstall_movable")


def host_counters():
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    counters = {"steal_ticks": int(cpu[8]) if len(cpu) > 8 else 0}
    with open("/proc/vmstat") as f:
        for line in f:
            key, _, value = line.partition(" ")
            if key in HOST_VMSTAT:
                counters[key] = int(value)
    return counters


def host_deltas(before, after):
    return {k: v - before.get(k, 0) for k, v in after.items()}


def threads_text(threads, host=None):
    text = "; ".join(f"{k} cpu {v['cpu_ms']:.0f} ms ({v['system_ms']:.0f} in the kernel), "
                     f"waited {v['runq_wait_ms']:.0f} ms, {v['forced_switches']} forced switches"
                     for k, v in sorted(threads.items()))
    if host:
        text += "; host: " + ", ".join(f"{k} {v}" for k, v in host.items())
    return text


def proc_runtime_ns(pid):
    """The same CPU time at nanosecond resolution: the scheduler's sum_exec_runtime of
    every thread (/proc/PID/task/*/schedstat, first field); None when not available."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def kernel_time_wait(netns):
    """TIME_WAIT sockets in the run's namespace now (/proc/net/sockstat "tw"). Past
    net.ipv4.tcp_max_tw_buckets the kernel makes none, and synfin then has none to follow:
    its cost depends on it, so every run records it."""
    done = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/sockstat"],
                          capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            try:
                return int(fields[fields.index("tw") + 1])
            except (ValueError, IndexError):
                return None
    return None


class RunNetns:
    """A fresh network namespace for one run. A storm leaves tens of thousands of TIME_WAIT
    sockets that the kernel expires in softirq a minute later, on the same CPUs: in a shared
    namespace every run paid for the ones before it (up to 900,000 of them), so each run gets
    its own, deleted (and its time-wait sockets purged) before the next starts."""

    count = 0

    def __init__(self, cond):
        RunNetns.count += 1
        self.name = f"synfin-bench-{os.getpid()}-{RunNetns.count}"
        self.tw_buckets = cond["tw_buckets"]
        self.prefill = cond.get("prefill", 0)

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        if self.tw_buckets:
            subprocess.run(["ip", "netns", "exec", self.name, "sysctl", "-qw",
                            f"net.ipv4.tcp_max_tw_buckets={self.tw_buckets}"], check=True)
        if self.prefill:
            self._fill_time_wait()
        return self

    def _fill_time_wait(self):
        """The host as it is: client-first closes leave the namespace's TIME_WAIT table as
        full as the condition says before any tracer starts (a storm is 2+2 threads, bounded)."""
        done = subprocess.run(["ip", "netns", "exec", self.name, LOADGEN, "--clients", "2",
                               "--servers", "2", "--count", str(self.prefill), "--seconds", "120",
                               "--close", "client"], capture_output=True, text=True, timeout=180)
        if done.returncode:
            raise RuntimeError(f"loadgen (prefill) failed: {done.stderr.strip()}")

    def __exit__(self, *exc):
        if os.path.exists(os.path.join("/run/netns", self.name)):  # end_time_wait() may have
            subprocess.run(["ip", "netns", "del", self.name], check=False)
        time.sleep(NETNS_SETTLE_S)  # the kernel tears the namespace down in a worker


def prog_ids(pid):
    """IDs of the BPF programs a process holds (its prog and link fds name them)."""
    ids = set()
    fdinfo = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(fdinfo):
        try:
            with open(os.path.join(fdinfo, fd)) as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            pass
    return sorted(ids)


def prog_stats(ids):
    """{program name: (run_time_ns, run_cnt)} (zeros when stats are off)."""
    stats = {}
    for pid_ in ids:
        out = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(pid_)],
                             capture_output=True, text=True)
        try:
            info = json.loads(out.stdout)
        except ValueError:
            continue
        name = info.get("name", str(pid_))
        ns, cnt = stats.get(name, (0, 0))
        stats[name] = (ns + info.get("run_time_ns", 0), cnt + info.get("run_cnt", 0))
    return stats


def prog_deltas(before, after, conns):
    """Per program that ran: runs and ns per connection, ns per run."""
    progs = {}
    for name, (ns1, cnt1) in after.items():
        ns0, cnt0 = before.get(name, (0, 0))
        if cnt1 > cnt0:
            progs[name] = {"runs_per_conn": (cnt1 - cnt0) / conns,
                           "ns_per_run": (ns1 - ns0) / (cnt1 - cnt0),
                           "ns_per_conn": (ns1 - ns0) / conns}
    return progs


def fd_kinds(pid):
    kinds = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                kinds.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    except OSError:
        pass
    return kinds


# ---------------------------------------------------------------- tracers

class Tracer:
    """One tracer process: started, ready before the load, stopped with SIGINT after."""

    def __init__(self, spec, out_path=None, netns=None):
        self.spec = spec
        self.err = tempfile.TemporaryFile(mode="w+b")
        self.out = open(out_path or os.devnull, "wb")
        # The packet layer attaches to the run namespace's lo: start it there (ip netns exec
        # execs, so the pid stays the tracer's).
        prefix = ["ip", "netns", "exec", netns] if netns and spec.get("in_netns") else []
        self.proc = subprocess.Popen(prefix + spec["argv"], stdout=self.out, stderr=self.err,
                                     stdin=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except Exception:
            self.kill()
            raise
        if spec.get("stop_reader"):
            self.proc.send_signal(signal.SIGSTOP)

    def stderr(self):
        # pread: the tracer writes through this same open file description, and a seek()
        # here would move the offset its next line lands at.
        fd = self.err.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec['name']} exited early ({self.proc.returncode}): "
                                   f"{self.stderr().strip()[-500:]}")
            if self.spec["kind"] in ("synfin", "floor"):
                if READY in self.stderr():
                    return
            else:
                # bcc tools print their header once attached, but it goes to /dev/null:
                # ready = the link exists and the perf buffer's epoll is set up.
                kinds = fd_kinds(self.proc.pid)
                if "anon_inode:bpf_link" in kinds and "anon_inode:[eventpoll]" in kinds:
                    time.sleep(0.5)
                    return
            time.sleep(0.02)
        raise RuntimeError(f"{self.spec['name']} never became ready")

    def cpu_ns(self):
        """(utime+stime, sum_exec_runtime) in ns."""
        return proc_cpu_ns(self.proc.pid), proc_runtime_ns(self.proc.pid)

    def hwm_kib(self):
        return status_field(f"/proc/{self.proc.pid}/status", "VmHWM")

    def stop(self):
        if self.proc.poll() is None:
            if self.spec.get("stop_reader"):
                self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = "killed (no exit 30 s after SIGINT)"
        self.out.close()
        return rc, self.stderr()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def lost_from_stderr(spec, err):
    """Events the tracer itself says it lost."""
    if spec["kind"] == "synfin":
        return sum(int(n) for n in re.findall(r"(\d+) events lost", err))
    # libbpf-tools: "lost N events on CPU #C" once per perf-buffer loss callback
    return sum(int(n) for n in re.findall(r"lost (\d+) events", err))


def compare_specs(other):
    """--compare OTHER: the same synfin rows for another build, interleaved in the same rounds
    (an A/B of a change, with the baseline of each round shared)."""
    tag = os.path.basename(os.path.dirname(other)) or other
    return [{"name": "cmp_json", "label": f"synfin --json [{tag}]", "kind": "synfin",
             "argv": [other, "--json"], "unit": "state"},
            {"name": "cmp_life", "label": f"synfin --life --json [{tag}]", "kind": "synfin",
             "argv": [other, "--life", "--json"], "unit": "conn"}]


def tracer_specs(synfin, bcc, smoke):
    specs = [{"name": "baseline", "label": "no tracer", "kind": None, "argv": None},
             {"name": "synfin_json", "label": "synfin --json", "kind": "synfin",
              "argv": [synfin, "--json"], "unit": "state"}]
    life = {"name": "synfin_life", "label": "synfin --life --json", "kind": "synfin",
            "argv": [synfin, "--life", "--json"], "unit": "conn"}
    if smoke:
        return specs + [life]
    specs.append({"name": "synfin_wire", "label": "synfin --json -i lo (packet layer)",
                  "kind": "synfin", "argv": [synfin, "--json", "-i", "lo"], "unit": "state",
                  "in_netns": True})
    specs.append(life)
    # The overhead split in two: with the reader stopped (SIGSTOP once ready), its rings fill
    # at once and every record after is lost (counted), so this row is the BPF side's price
    # without the reader, and without the copies into the rings (no counting pass).
    specs.append({"name": "synfin_bpf_only", "label": "synfin --json, reader stopped (the BPF "
                  "side alone, less the ring copies: its records are lost)", "kind": "synfin",
                  "argv": [synfin, "--json"], "unit": None, "stop_reader": True})
    specs.append({"name": "floor", "label": "empty program on sock:inet_sock_set_state (floor)",
                  "kind": "floor", "argv": [FLOOR, FLOOR_OBJ], "unit": None})
    for name, unit in (("tcpstates", "state"), ("tcplife", "conn")):
        if bcc.get(name):
            specs.append({"name": name, "label": f"libbpf-tools {name}", "kind": "bcc",
                          "argv": [bcc[name]], "unit": unit})
        else:
            log(f"{name} not available: left out")
    return specs


# ---------------------------------------------------------------- runs

def loadgen(args, count, netns, extra=()):
    cmd = ["ip", "netns", "exec", netns, LOADGEN, "--clients", str(args.clients), "--servers", str(args.servers),
           "--count", str(count), "--seconds", str(args.seconds), "--close", args.close,
           *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60)
    if done.returncode:
        raise RuntimeError(f"loadgen failed ({done.returncode}): {done.stderr.strip()}")
    res = json.loads(done.stdout.strip().splitlines()[-1])
    if res["connections"] <= 0:
        raise RuntimeError(f"loadgen made no connection: {res}")
    return res


def run_once(spec, args, count, cond, out_path=None, bpf_stats=False, extra=(), end_tw=False):
    """One load under one tracer (or none), in a namespace of its own made as the condition
    says. Returns the measurements."""
    with RunNetns(cond) as ns:
        return run_in(spec, args, count, ns, out_path, bpf_stats, extra, end_tw)


def tw_overflows(netns):
    """TcpExtTCPTimeWaitOverflow of the namespace: closes the kernel made no mini-socket for."""
    done = subprocess.run(["ip", "netns", "exec", netns, "nstat", "-asz",
                           "TcpExtTCPTimeWaitOverflow"], capture_output=True, text=True)
    m = re.search(r"TcpExtTCPTimeWaitOverflow\s+(\d+)", done.stdout)
    return int(m.group(1)) if m else 0


def end_time_wait(ns, out_path, timeout=20):
    """Deletes the namespace while the tracer runs: the kernel purges its TIME_WAIT sockets,
    and every one synfin followed must get its time_wait_end (the end of this output)."""
    subprocess.run(["ip", "netns", "del", ns.name], check=False)
    deadline = time.monotonic() + timeout
    last, stable = -1, 0
    while time.monotonic() < deadline and stable < 5:
        with open(out_path, "rb") as f:
            n = f.read().count(b'"type":"time_wait_end"')
        stable = stable + 1 if n == last else 0
        last = n
        time.sleep(0.2)


class ReaderProfile:
    """perf sampling synfin over the storm (499 Hz, call graphs), kept only when the run lost
    records: the rare run whose reader falls behind has spent its time in the kernel (issue
    13: 790 of 819 ms once), and its profile names what the kernel did. Without perf, or
    with --no-profile, nothing."""

    def __init__(self, spec, pid, enabled):
        self.proc = self.path = None
        if not (enabled and spec["kind"] == "synfin" and shutil.which("perf")):
            return
        fd, self.path = tempfile.mkstemp(prefix="synfin-bench-", suffix=".perf")
        os.close(fd)
        self.proc = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-g", "-p", str(pid),
                                      "-o", self.path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def discard(self):
        """Removes the samples, unread."""
        if self.path:
            os.unlink(self.path)
            self.path = None

    def top(self, lines=15):
        """The busiest symbols (self time), or None without samples; then removes them."""
        if not self.path:
            return None
        try:
            done = subprocess.run(["perf", "report", "-i", self.path, "--stdio", "--no-children",
                                   "--sort", "sym", "-g", "none", "--percent-limit", "1"],
                                  capture_output=True, text=True, timeout=120)
            return [l.strip() for l in done.stdout.splitlines()
                    if l.strip() and not l.startswith("#")][:lines]
        finally:
            self.discard()


def run_in(spec, args, count, ns, out_path, bpf_stats, extra, end_tw):
    netns = ns.name
    overflow0 = tw_overflows(netns)
    if not spec["argv"]:
        load = loadgen(args, count, netns, extra)
        return {"load": load, "conn_per_s": load["conn_per_s"],
                "kernel_tw_after": kernel_time_wait(netns),
                "kernel_tw_skipped": tw_overflows(netns) - overflow0}
    tracer = Tracer(spec, out_path, netns)
    profile = None
    try:
        ids = prog_ids(tracer.proc.pid) if bpf_stats else []
        k0 = prog_stats(ids) if bpf_stats else {}
        cpu0, faults0 = tracer.cpu_ns(), reader_faults(tracer.proc.pid)
        threads0, host0 = thread_times(tracer.proc.pid), host_counters()
        profile = ReaderProfile(spec, tracer.proc.pid, args.profile)
        load = loadgen(args, count, netns, extra)
        time.sleep(SETTLE_S)
        profile.stop()
        cpu1, faults1 = tracer.cpu_ns(), reader_faults(tracer.proc.pid)
        threads = thread_deltas(threads0, thread_times(tracer.proc.pid))
        host = host_deltas(host0, host_counters())
        tw_after = kernel_time_wait(netns)
        tw_skipped = tw_overflows(netns) - overflow0
        hwm = tracer.hwm_kib()
        k1 = prog_stats(ids) if bpf_stats else {}
        if end_tw and out_path:
            end_time_wait(ns, out_path)
    except Exception:
        tracer.kill()
        if profile:
            profile.stop()
            profile.discard()
        raise
    rc, err = tracer.stop()
    conns = load["connections"]
    # CPU: the scheduler's runtime (ns resolution) when readable, else utime+stime (10 ms ticks).
    stat_ns = cpu1[0] - cpu0[0]
    run_ns = cpu1[1] - cpu0[1] if cpu0[1] is not None and cpu1[1] is not None else None
    cpu_ns = run_ns if run_ns else stat_ns
    res = {"load": load, "conn_per_s": load["conn_per_s"],
           "cpu_ms": cpu_ns / 1e6, "cpu_ms_utime_stime": stat_ns / 1e6,
           "cpu_ms_sched_runtime": None if run_ns is None else run_ns / 1e6,
           "cpu_ms_per_1k": cpu_ns / 1e6 / conns * 1000,
           "peak_rss_kib": hwm, "lost": lost_from_stderr(spec, err), "exit": rc,
           "reader_faults": faults1 - faults0, "threads": threads, "host": host,
           "kernel_tw_after": tw_after, "kernel_tw_skipped": tw_skipped,
           "tw_followed": sum(int(n) for n in re.findall(r"(\d+) connections in TIME_WAIT at exit",
                                                         err)),
           "tw_not_followed": sum(int(n) for n in re.findall(
               r"(\d+) TIME_WAIT connections not followed", err)),
           "stderr_summary": [l for l in err.splitlines() if l.strip() and READY not in l][:10]}
    # The stopped-reader row loses by design: its profile would say nothing.
    res["profile"] = None
    if res["lost"] and not spec.get("stop_reader"):
        res["profile"] = profile.top()
    else:
        profile.discard()
    if res["profile"]:
        log(f"{spec['name']} lost {res['lost']}: where synfin's time went "
            f"(perf, self): " + " | ".join(res["profile"]))
    if bpf_stats:
        progs = prog_deltas(k0, k1, conns)
        runs = sum(cnt - k0.get(name, (0, 0))[1] for name, (_, cnt) in k1.items())
        ns = sum(ns1 - k0.get(name, (0, 0))[0] for name, (ns1, _) in k1.items())
        res["bpf"] = {"prog_ids": ids, "runs": runs, "run_time_ns": ns,
                      "ns_per_run": ns / runs if runs else None,
                      "ms_per_1k_conns": ns / 1e6 / conns * 1000, "programs": progs}
    if rc != 0:
        log(f"{spec['name']} exited {rc}: {err.strip()[-300:]}")
    return res


# ---------------------------------------------------------------- drop storm

# A SYN flood an nftables rule drops (issue 17): every SYN is one skb:kfree_skb, which
# synfin's drop program sees (filtering first, in the kernel). The port is the flood's only;
# the connection storm beside it (--storm-with-load) listens on an ephemeral one.
STORM_PORT = 7777
STORM_RULE = ("table inet synfin_storm {\n counter dropped {\n }\n chain input {\n"
              "  type filter hook input priority 0;\n"
              f"  tcp dport {STORM_PORT} tcp flags & (syn | ack) == syn counter name \"dropped\" "
              "drop\n }\n}\n")


def nft_dropped(netns):
    """What the rule's own counter says it dropped: the witness."""
    done = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "counter", "inet",
                           "synfin_storm", "dropped"], capture_output=True, text=True, check=True)
    return int(re.search(r"packets (\d+)", done.stdout).group(1))


def start_synstorm(netns, count, seconds):
    """Returns once it sends: from then on a SIGINT ends it with its JSON line."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, SYNSTORM, "--port", str(STORM_PORT),
                             "--count", str(count), "--seconds", str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if "sending" not in line:
        proc.kill()
        raise RuntimeError(f"synstorm did not start: {line.strip()}")
    return proc


def finish_synstorm(proc, seconds):
    out, err = proc.communicate(timeout=seconds + 60)
    if proc.returncode:
        raise RuntimeError(f"synstorm failed ({proc.returncode}): {err.strip()}")
    return json.loads(out.strip().splitlines()[-1])


def storm_run(spec, args, tmpdir, with_load=False, calib=None):
    """One SYN storm in a fresh namespace whose nftables drops it, under one tracer (or none),
    its output to a file; with_load: a connection storm at the same time (the state records
    must all get through the flood's drop records)."""
    path = os.path.join(tmpdir, "storm.out")
    with RunNetns(CONDITIONS["fresh"]) as ns:
        subprocess.run(["ip", "netns", "exec", ns.name, "nft", "-f", "-"], input=STORM_RULE,
                       text=True, check=True)
        tracer = Tracer(spec, path, ns.name) if spec["argv"] else None
        try:
            cpu0 = tracer.cpu_ns() if tracer else None
            storm = start_synstorm(ns.name, args.storm_syns * (10 if with_load else 1),
                                   args.seconds)
            load = loadgen(args, args.storm_conns, ns.name) if with_load else None
            if with_load:
                storm.send_signal(signal.SIGINT)  # the flood ends with the load
            res = {"storm": finish_synstorm(storm, args.seconds), "load": load}
            time.sleep(SETTLE_S)
            cpu1 = tracer.cpu_ns() if tracer else None
            res["dropped"] = nft_dropped(ns.name)
        except Exception:
            if tracer:
                tracer.kill()
            raise
    res["syn_per_s"] = res["storm"]["syn_per_s"]
    if not tracer:
        return res
    rc, err = tracer.stop()
    c = count_storm_output(path, load["port"] if load else None)
    os.unlink(path)
    run_ns = cpu1[1] - cpu0[1] if cpu0[1] is not None and cpu1[1] is not None else None
    cpu_ns = run_ns if run_ns else cpu1[0] - cpu0[0]
    res.update({"exit": rc, "cpu_ms_per_1k": cpu_ns / 1e6 / max(res["dropped"], 1) * 1000,
                "drops_written": c["drop"], "state_written": c["state"],
                "drop_lost": sum(int(n) for n in re.findall(r"(\d+) drop records lost", err)),
                "lost": lost_from_stderr(spec, err)})
    if load:
        res["state_expected"] = round(calib["state_per_conn"] * load["connections"])
    return res


def count_storm_output(path, port):
    """drop records of the flood's port; state records of the load's port (if any)."""
    counts = {"drop": 0, "state": 0}
    with open(path, "rb") as f:
        for raw in f:
            if b'"type":"drop"' in raw:
                counts["drop"] += json.loads(raw).get("dport") == STORM_PORT
            elif port and b'"type":"state"' in raw:
                r = json.loads(raw)
                # the listener's own CLOSE->LISTEN / LISTEN->CLOSE are not per connection
                own = r["new"] == "LISTEN" or r["old"] == "LISTEN" and r["new"] == "CLOSE"
                counts["state"] += port in (r.get("sport"), r.get("dport")) and not own
    return counts


def run_drop_storm(args, specs, results, tmpdir):
    """Interleaved rounds of the flood alone (baseline, synfin --json, --life --json), then
    the flood beside a connection storm under synfin --json."""
    storm_specs = [s for s in specs if s["name"] in ("baseline", "synfin_json", "synfin_life")]
    out = {"syns": args.storm_syns, "conns": args.storm_conns, "rounds": [], "with_load": []}
    for rnd in range(args.rounds):
        this_round = {}
        for spec in storm_specs[rnd % 3:] + storm_specs[:rnd % 3]:
            this_round[spec["name"]] = r = storm_run(spec, args, tmpdir)
            log(f"drop storm round {rnd + 1}/{args.rounds} {spec['name']}: "
                f"{r['syn_per_s']:,.0f} SYN/s, dropped {r['dropped']:,}"
                + (f", drop records {r['drops_written']:,}, lost {r['drop_lost']}"
                   if spec["argv"] else ""))
        out["rounds"].append(this_round)
    json_spec = next(s for s in specs if s["name"] == "synfin_json")
    for rnd in range(1 if args.smoke else 3):
        r = storm_run(json_spec, args, tmpdir, with_load=True, calib=results["calibration"])
        out["with_load"].append(r)
        log(f"drop storm with load {rnd + 1}: state {r['state_written']:,}/{r['state_expected']:,}"
            f", drops {r['drops_written']:,}/{r['dropped']:,}, lost {r['lost']}+{r['drop_lost']}")
    results["drop_storm"] = out


def drop_storm_table(storm, tracers):
    labels = {t["name"]: t["label"] for t in tracers}
    lines = [f"### Drop storm: {storm['syns']:,} SYNs from raw sockets (distinct tuples), dropped "
             "by an nftables rule in a fresh namespace", "",
             "Each SYN is one skb:kfree_skb (NETFILTER_DROP). Tracer output to a file; the "
             "witness is the rule's own counter.", "",
             "| tracer | SYN/s | ratio to baseline | tracer CPU ms / 1k drops "
             "| drop records written / dropped (nft) / lost |", "|---|---|---|---|---|"]
    base = [r["baseline"]["syn_per_s"] for r in storm["rounds"]]
    for name in ("baseline", "synfin_json", "synfin_life"):
        runs = [r[name] for r in storm["rounds"]]
        row = [labels[name], spread([r["syn_per_s"] for r in runs], "{:,.0f}"),
               spread([r["syn_per_s"] / b for r, b in zip(runs, base)], "{:.2f}")]
        if name == "baseline":
            row += ["–", "–"]
        else:
            row += [spread([r["cpu_ms_per_1k"] for r in runs], "{:.2f}"),
                    f"{sum(r['drops_written'] for r in runs):,} / "
                    f"{sum(r['dropped'] for r in runs):,} / {sum(r['drop_lost'] for r in runs):,}"
                    + (" (--life writes no drop record)" if name == "synfin_life" else "")]
        lines.append("| " + " | ".join(row) + " |")
    w = storm["with_load"]
    if w:
        lines += ["", f"The flood beside a {storm['conns']:,}-connection storm, under synfin "
                  f"--json ({len(w)} run(s)): state records expected / written / lost "
                  f"{sum(r['state_expected'] for r in w):,} / {sum(r['state_written'] for r in w):,}"
                  f" / {sum(r['lost'] for r in w):,}; drop records written / dropped / lost "
                  f"{sum(r['drops_written'] for r in w):,} / {sum(r['dropped'] for r in w):,} / "
                  f"{sum(r['drop_lost'] for r in w):,}; "
                  f"{spread([r['syn_per_s'] for r in w], '{:,.0f}')} SYN/s."]
    return lines


# ---------------------------------------------------------------- counting

def count_synfin(path, port):
    """state and conn records of the load's connections, lost reports, unparseable lines."""
    counts = {"state": 0, "conn": 0, "lost": 0, "bad_lines": 0, "lines": 0,
              "tw_entered": 0, "tw_skipped": 0, "tw_ended": 0, "paths": collections.Counter()}
    with open(path, "rb") as f:
        for raw in f:
            counts["lines"] += 1
            try:
                r = json.loads(raw)
            except ValueError:
                counts["bad_lines"] += 1
                continue
            t = r.get("type")
            if t == "lost":
                counts["lost"] = max(counts["lost"], r.get("total", 0))
                continue
            if port not in (r.get("sport"), r.get("dport")):
                continue
            if t == "state":
                # the listener's own CLOSE->LISTEN / LISTEN->CLOSE are not per connection
                if r["new"] == "LISTEN" or r["old"] == "LISTEN" and r["new"] == "CLOSE":
                    continue
                counts["state"] += 1
            elif t == "conn":
                counts["conn"] += 1
                # Which way each connection went: a count short of expected with no loss
                # reported is either records gone or connections that took another path.
                counts["paths"][f"{r.get('role')} {'>'.join(r.get('states') or [])} "
                                f"{r.get('outcome')}"] += 1
                tw = r.get("time_wait")
                if tw in ("entered", "fin_wait2"):
                    counts["tw_entered"] += 1
                elif tw == "skipped":
                    counts["tw_skipped"] += 1
            elif t == "time_wait_end":
                counts["tw_ended"] += 1
    return counts


def count_text(path, port):
    """Lines of a libbpf-tools table whose LPORT or RPORT is the load's port."""
    n, cols = 0, None
    port = str(port)
    with open(path, "rb") as f:
        for raw in f:
            fields = raw.decode(errors="replace").split()
            if cols is None:
                if "LPORT" in fields:
                    cols = (fields.index("LPORT"), fields.index("RPORT"))
                continue
            if len(fields) > max(cols) and port in (fields[cols[0]], fields[cols[1]]):
                # tcpstates: skip the listener's own CLOSE -> LISTEN / LISTEN -> CLOSE
                if "LISTEN" in fields and "SYN_RECV" not in fields:
                    continue
                n += 1
    return n


def calibrate(synfin, args, tmpdir):
    """Transitions and lifecycle records per connection, from a slow run nobody can lose."""
    spec = {"name": "calibration", "kind": "synfin", "argv": [synfin, "--json"]}
    path = os.path.join(tmpdir, "calibration.ndjson")
    slow = argparse.Namespace(**vars(args))
    slow.clients, slow.servers = 1, 1
    res = run_once(spec, slow, args.calibration_conns, CONDITIONS["fresh"], out_path=path,
                   extra=("--pause-us", "2000"))
    conns = res["load"]["connections"]
    c = count_synfin(path, res["load"]["port"])
    os.unlink(path)
    return {"connections": conns, "state_records": c["state"], "conn_records": c["conn"],
            "lost": c["lost"] + res["lost"],
            "state_per_conn": c["state"] / conns, "conn_per_conn": c["conn"] / conns,
            "close": args.close}


def counting_pass(spec, args, calib, tmpdir, bpf_stats, cond):
    path = os.path.join(tmpdir, spec["name"] + ".out")
    res = run_once(spec, args, args.conns, cond, out_path=path, bpf_stats=bpf_stats,
                   end_tw=spec["kind"] == "synfin" and spec["unit"] == "conn")
    conns, port = res["load"]["connections"], res["load"]["port"]
    per_conn = calib["state_per_conn"] if spec["unit"] == "state" else calib["conn_per_conn"]
    if spec["kind"] == "synfin":
        c = count_synfin(path, port)
        captured, lost_records, bad = c[spec["unit"]], c["lost"], c["bad_lines"]
        res["time_wait"] = {k: c[k] for k in ("tw_entered", "tw_skipped", "tw_ended")}
        res["paths"] = dict(c["paths"].most_common(8))
    else:
        captured, lost_records, bad = count_text(path, port), 0, 0
    size = os.path.getsize(path)
    os.unlink(path)
    res.update({"unit": spec["unit"], "expected": round(per_conn * conns), "captured": captured,
                "lost_reported": max(res["lost"], lost_records), "bad_lines": bad,
                "output_bytes": size})
    return res


def run_micro(smoke):
    cmd = [MICRO] + (["--conns", "20000", "--tw-conns", "2000"] if smoke else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"micro failed: {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report

def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def summarise(name, runs, baseline_by_round):
    ratios = [r["conn_per_s"] / baseline_by_round[i] for i, r in enumerate(runs)]
    out = {"conn_per_s": [r["conn_per_s"] for r in runs], "ratio": ratios}
    if name != "baseline":
        out["cpu_ms_per_1k"] = [r["cpu_ms_per_1k"] for r in runs]
        out["peak_rss_kib"] = [r["peak_rss_kib"] for r in runs]
        out["lost"] = [r["lost"] for r in runs]
    for key in list(out):
        vals = out[key]
        out[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
                    "values": vals}
    return out


def condition_table(results, cond):
    lines = []
    tws = [r.get("kernel_tw_after") for rnd in cond["rounds"] for r in rnd.values()]
    tws = [t for t in tws if t is not None]
    lines.append(f"### {cond['label']}")
    lines.append("")
    lines.append(f"Each run in a network namespace of its own: net.ipv4.tcp_max_tw_buckets "
                 f"{cond['tw_buckets']:,}, {cond['prefill']:,} client-first connections closed "
                 f"in it before the tracer starts"
                 + (f"; TIME_WAIT sockets it held at the end: {min(tws):,}–{max(tws):,}."
                    if tws else "."))
    lines.append("")
    lines.append("| tracer | conn/s | ratio to baseline | tracer CPU ms / 1k conns | peak RSS MiB "
                 "| lost (timed runs) | events expected / written / lost (counting pass) "
                 "| TIME_WAIT entered / ended / skipped by the kernel (nstat) / not followed "
                 "| BPF ns / run |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for spec in results["tracers"]:
        s = cond["summary"][spec["name"]]
        row = [spec["label"], spread(s["conn_per_s"]["values"], "{:,.0f}"),
               spread(s["ratio"]["values"], "{:.2f}")]
        if spec["name"] == "baseline":
            row += ["–"] * 6
        else:
            c = cond["counting"].get(spec["name"])
            tw = "–"
            if c:
                events = (f"{c['expected']:,} / {c['captured']:,} / {c['lost_reported']:,} "
                          f"({spec['unit']})")
                bpf = c.get("bpf", {}).get("ns_per_run")
                bpf = f"{bpf:,.0f}" if bpf else "–"
                t = c.get("time_wait")
                if t and spec["unit"] == "conn":
                    tw = (f"{t['tw_entered']:,} / {t['tw_ended']:,} / {t['tw_skipped']:,} "
                          f"({c.get('kernel_tw_skipped', 0):,}) / {c.get('tw_not_followed', 0):,}")
            else:
                events, bpf = "–", "–"
            row += [spread(s["cpu_ms_per_1k"]["values"], "{:.1f}"),
                    f"{max(s['peak_rss_kib']['values']) / 1024:.1f}",
                    spread(s["lost"]["values"], "{:,.0f}"), events, tw, bpf]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def programs_table(results, cond):
    """Where the BPF side's time goes, per program, in the counting pass (run-time statistics
    on: each run also pays for its own timing, a few tens of ns)."""
    counted = [(spec, cond["counting"][spec["name"]]["bpf"]["programs"])
               for spec in results["tracers"]
               if cond["counting"].get(spec["name"], {}).get("bpf", {}).get("programs")]
    if not counted:
        return []
    lines = ["", "BPF programs per connection (counting pass, kernel.bpf_stats_enabled): "
             "runs × ns per run = ns", "",
             "| program | " + " | ".join(spec["label"] for spec, _ in counted) + " |",
             "|---|" + "---|" * len(counted)]
    names = sorted({n for _, progs in counted for n in progs},
                   key=lambda n: -max(progs.get(n, {}).get("ns_per_conn", 0) for _, progs in counted))
    for name in names + ["total"]:
        cells = []
        for _, progs in counted:
            if name == "total":
                cells.append(f"{sum(p['ns_per_conn'] for p in progs.values()):,.0f}")
            elif name in progs:
                p = progs[name]
                cells.append(f"{p['runs_per_conn']:.2f} × {p['ns_per_run']:,.0f} = "
                             f"{p['ns_per_conn']:,.0f}")
            else:
                cells.append("–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def markdown(results):
    lines = []
    cfg = results["config"]
    lines.append(f"Loopback storm: {cfg['conns']:,} connections per run, {cfg['clients']} client + "
                 f"{cfg['servers']} server threads, close={cfg['close']}, {cfg['rounds']} "
                 f"interleaved round(s) per condition; median (min–max). Kernel "
                 f"{results['env']['kernel']}, {results['env']['cpus']} CPUs.")
    for cond in results["conditions"]:
        lines.append("")
        lines += condition_table(results, cond)
        lines += programs_table(results, cond)
    if results.get("drop_storm"):
        lines.append("")
        lines += drop_storm_table(results["drop_storm"], results["tracers"])
    cal = results["calibration"]
    lines.append("")
    lines.append(f"Expected per connection (slow calibration run, {cal['connections']} connections "
                 f"under synfin --json): {cal['state_per_conn']:.2f} state records, "
                 f"{cal['conn_per_conn']:.2f} lifecycle records.")
    m = results.get("micro")
    if m:
        lines.append("")
        lines.append(f"User-space micro-benchmark (bench/micro.c, one thread, best of 3, "
                     f"{m['conns']:,} synthetic connections × {m['events_per_conn']} transitions):")
        lines.append("")
        lines.append("| path | events/s per core | ns / event |")
        lines.append("|---|---|---|")
        for key, label in (("tracker_only", "tracker_feed only"),
                           ("json_full", "tracker + NDJSON, every transition (--json)"),
                           ("json_life", "tracker + NDJSON lifecycles only (--life --json)"),
                           ("text_full", "tracker + text columns"),
                           ("json_full_tw_add", "--json path + tw_add() as in main.c")):
            r = m[key]
            lines.append(f"| {label} | {r['events_per_s']:,.0f} | {r['ns_per_event']:.1f} |")
        ev = m["json_full"]["events_per_s"]
        lines.append("")
        lines.append(f"Targets: ≥ 3,000,000 events/s per core (--json path): {ev:,.0f} → "
                     f"{'met' if ev >= 3e6 else 'NOT met'}; ≤ 256 bytes per tracked connection: "
                     f"{m['bytes_per_tracked_conn']:.0f} (sizeof(struct conn) = {m['sizeof_conn']}, "
                     f"table of {m['cap']:,} full) → "
                     f"{'met' if 0 < m['bytes_per_tracked_conn'] <= 256 else 'NOT met'}.")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synfin", default=os.path.join(ROOT, "synfin"))
    ap.add_argument("--rounds", type=int, default=env_int("BENCH_ROUNDS", 5))
    ap.add_argument("--conns", type=int, default=env_int("BENCH_CONNS", 40000))
    ap.add_argument("--seconds", type=float, default=env_int("BENCH_SECONDS", 60),
                    help="time bound of one load run")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--servers", type=int, default=4)
    ap.add_argument("--close", choices=("client", "server", "rst"), default="client")
    ap.add_argument("--calibration-conns", type=int, default=50)
    ap.add_argument("--smoke", action="store_true",
                    help="quick: 300 connections, 1 round, fresh and full-table namespaces, "
                         "baseline + synfin --json and --life --json only (with --storm-syns N "
                         "a drop storm too, beside 300 connections)")
    ap.add_argument("--no-micro", action="store_true")
    ap.add_argument("--no-profile", dest="profile", action="store_false",
                    help="no perf sampling of synfin during the storms (kept only for runs "
                         "that lost records)")
    ap.add_argument("--storm-syns", type=int, default=None,
                    help="SYNs of the drop storm (0: none; default 100000, --smoke none)")
    ap.add_argument("--storm-conns", type=int, default=20000,
                    help="connections of the load beside the drop storm")
    ap.add_argument("--storm-only", action="store_true",
                    help="only the drop storm (and the calibration it needs)")
    ap.add_argument("--compare", metavar="SYNFIN",
                    help="another synfin build: its --json and --life --json rows in the same "
                         "rounds (an A/B of a change)")
    ap.add_argument("--tracers", metavar="NAMES",
                    help="only these rows (comma-separated names: synfin_json, synfin_wire, "
                         "synfin_life, synfin_bpf_only, floor, tcpstates, tcplife, cmp_json, "
                         "cmp_life); the baseline always runs")
    ap.add_argument("--out", default=os.path.join(BENCH_BIN, "results.json"))
    ap.add_argument("--conditions", default=os.environ.get("BENCH_CONDITIONS",
                                                           ",".join(CONDITIONS)),
                    help="the namespaces to measure in, comma-separated: "
                         + ", ".join(f"{k} ({v['label']})" for k, v in CONDITIONS.items()))
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.conns, args.seconds, args.calibration_conns = 1, 300, 15, 20
        args.storm_conns = 300
        args.conditions = "fresh,full"
    if args.storm_syns is None:
        args.storm_syns = 0 if args.smoke else env_int("BENCH_STORM_SYNS", 100000)
    conditions = [c for c in args.conditions.split(",") if c]
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        ap.error(f"unknown condition {unknown[0] if unknown else '(none)'}: "
                 f"choose from {', '.join(CONDITIONS)}")
    if args.rounds < 1 or args.conns < 1 or args.storm_syns < 0 or args.storm_conns < 1:
        ap.error("--rounds, --conns and --storm-conns must be positive, --storm-syns not "
                 "negative")
    if args.storm_only and not args.storm_syns:
        ap.error("--storm-only needs --storm-syns N")
    if os.geteuid() != 0:
        print("bench: needs root (the tracers load BPF programs)", file=sys.stderr)
        return 1
    for path in (args.synfin, LOADGEN, SYNSTORM) + (() if args.no_micro else (MICRO,)):
        if not os.access(path, os.X_OK):
            print(f"bench: {path} missing: run make bench-build", file=sys.stderr)
            return 1
    args.synfin = os.path.abspath(args.synfin)
    wanted = set(args.tracers.split(",")) if args.tracers else None
    bcc_wanted = wanted is None or bool({"tcpstates", "tcplife"} & wanted)
    bcc = ensure_bcc_tools() if bcc_wanted and not args.smoke else {}
    specs = tracer_specs(args.synfin, bcc, args.smoke)
    if args.compare:
        specs += compare_specs(os.path.abspath(args.compare))
    if wanted is not None:
        unknown = wanted - {s["name"] for s in specs}
        if unknown:
            ap.error(f"unknown tracer row {sorted(unknown)[0]}: choose from "
                     + ", ".join(s["name"] for s in specs if s["argv"]))
        specs = [s for s in specs if not s["argv"] or s["name"] in wanted]
    started = time.time()
    results = {"config": {"conns": args.conns, "rounds": args.rounds, "clients": args.clients,
                          "servers": args.servers, "close": args.close, "seconds": args.seconds,
                          "smoke": args.smoke, "synfin": args.synfin},
               "env": {"kernel": os.uname().release, "cpus": os.cpu_count(),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
               "tracers": [{k: s.get(k) for k in ("name", "label", "kind", "argv", "unit")}
                           for s in specs],
               "conditions": []}

    # First, while the machine is quiet: after the storms the kernel spends a minute expiring
    # hundreds of thousands of TIME_WAIT sockets in softirq, on the same two CPUs.
    if not args.no_micro:
        log("micro-benchmark")
        results["micro"] = run_micro(args.smoke)

    run_all(args, specs, results, [CONDITIONS[c] for c in conditions])

    results["elapsed_s"] = round(time.time() - started, 1)
    results["markdown"] = markdown(results)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(results["markdown"])
    log(f"done in {results['elapsed_s']} s; JSON in {args.out}")
    return 0


def run_all(args, specs, results, conditions):
    """Calibration, then per condition the interleaved rounds and the counting passes."""
    with tempfile.TemporaryDirectory(prefix="synfin-bench-") as tmpdir:
        log("calibration: slow run under synfin --json")
        results["calibration"] = calibrate(args.synfin, args, tmpdir)
        log(f"calibration: {results['calibration']}")
        for cond in [] if args.storm_only else conditions:
            res = dict(cond, rounds=[], counting={})
            run_rounds(args, specs, cond, res, results["calibration"], tmpdir)
            if not args.smoke:
                run_counting(args, specs, cond, res, results["calibration"], tmpdir)
            results["conditions"].append(res)
        if args.storm_syns:
            run_drop_storm(args, specs, results, tmpdir)


def run_rounds(args, specs, cond, out, calibration, tmpdir):
    """The interleaved rounds. --smoke has one, and counts its tracers' output as it goes
    (its own counting pass would double the runs: too slow in a VM without KVM)."""
    runs = {s["name"]: [] for s in specs}
    baseline_by_round = []
    for rnd in range(args.rounds):
        order = specs[rnd % len(specs):] + specs[:rnd % len(specs)]
        this_round = {}
        for spec in order:
            if args.smoke and spec["argv"]:
                res = counting_pass(spec, args, calibration, tmpdir, bpf_stats=False, cond=cond)
                out["counting"][spec["name"]] = res
            else:
                res = run_once(spec, args, args.conns, cond)
            this_round[spec["name"]] = res
            log(f"{cond['name']} round {rnd + 1}/{args.rounds} {spec['name']}: "
                f"{res['conn_per_s']:,.0f} conn/s"
                + (f", cpu {res['cpu_ms_per_1k']:.1f} ms/1k, lost {res['lost']}, "
                   f"{res.get('reader_faults', 0)} reader faults"
                   if spec["argv"] else "")
                + (f" ({threads_text(res['threads'], res.get('host'))})"
                   if res.get("lost") else ""))
        out["rounds"].append(this_round)
        baseline_by_round.append(this_round["baseline"]["conn_per_s"])
        for name, res in this_round.items():
            runs[name].append(res)
    out["summary"] = {name: summarise(name, r, baseline_by_round) for name, r in runs.items()}


def run_counting(args, specs, cond, out, calibration, tmpdir):
    """Output to a file; BPF run-time statistics on for this pass only."""
    stats_before = None
    if not args.smoke and os.path.exists(BPF_STATS):
        with open(BPF_STATS) as f:
            stats_before = f.read().strip()
    try:
        if stats_before is not None:
            with open(BPF_STATS, "w") as f:
                f.write("1")
        for spec in specs:
            if not spec["argv"] or not spec["unit"]:  # the floor writes nothing to count
                continue
            res = counting_pass(spec, args, calibration, tmpdir,
                                bpf_stats=stats_before is not None, cond=cond)
            out["counting"][spec["name"]] = res
            log(f"{cond['name']} counting {spec['name']}: expected {res['expected']}, captured "
                f"{res['captured']}, lost {res['lost_reported']}"
                + (f", time_wait {res['time_wait']}" if res.get("time_wait") else "")
                + (f", lifecycles by path {res['paths']}"
                   if res.get("paths") and res["captured"] != res["expected"] else ""))
    finally:
        if stats_before is not None:
            with open(BPF_STATS, "w") as f:
                f.write(stats_before)


if __name__ == "__main__":
    sys.exit(main())
