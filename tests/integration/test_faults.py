"""Faults and bad input as a hostile user or a real host makes them: broken or odd
stdouts, signals, limits, a damaged BTF file, missing capabilities. Each case ends
with one clear line and the right exit status, never a crash, a hang or silent loss."""
import fcntl
import json
import os
import signal
import subprocess
import time

import pytest

from lib import READY, SYNFIN, Netns, Synfin, require_root, run_peer


def run_synfin(*args, timeout=30, **kw):
    return subprocess.run([SYNFIN, *args], capture_output=True, text=True, timeout=timeout, **kw)


def first_error_line(done):
    lines = [line for line in done.stderr.splitlines() if line != READY]
    return lines[0] if lines else ""


def wait_ready(proc):
    """Reads the child's stderr (a text pipe) up to synfin's ready line."""
    seen = []
    while (line := proc.stderr.readline()):
        seen.append(line)
        if READY in line:
            return
    raise AssertionError(f"synfin exited before tracing: {''.join(seen)}")


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_write_error_on_stdout_is_said_and_fails():
    require_root()
    with Netns() as ns, open("/dev/full", "w") as full:
        proc = subprocess.Popen([SYNFIN, "-j", "--netns", str(ns.inode), "-d", "20"],
                                stdout=full, stderr=subprocess.PIPE, text=True)
        wait_ready(proc)
        run_peer(netns=ns.name)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, (proc.returncode, err)
    assert "synfin: write error on stdout: No space left on device" in err, err


def test_non_blocking_stdout_is_waited_on_not_an_error():
    """A parent that leaves its pipe O_NONBLOCK, read slowly: EAGAIN is back-pressure."""
    require_root()
    rd, wr = os.pipe()
    fcntl.fcntl(wr, fcntl.F_SETFL, fcntl.fcntl(wr, fcntl.F_GETFL) | os.O_NONBLOCK)
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), stdout=wr)
        os.close(wr)
        run_peer("--count", "200", netns=ns.name)  # ~2,000 records: more than a pipe holds
        time.sleep(0.5)  # let the pipe fill while nobody reads
        tracer.proc.send_signal(signal.SIGINT)
        data = b""
        with os.fdopen(rd, "rb") as f:
            while chunk := f.read(4096):
                data += chunk
                time.sleep(0.001)  # a slow reader
        status, _, err = tracer.stop()
    assert status == 0, err
    records = [json.loads(line) for line in data.decode().splitlines()]
    assert sum(r["type"] == "conn" for r in records) == 400, err
    assert "write error" not in err


def test_closed_stdout_at_start_goes_to_dev_null_and_tracing_goes_on():
    """fd 1 closed by the parent must not become an epoll fd or a socket that records go to."""
    require_root()
    with Netns() as ns:
        start = time.monotonic()
        proc = subprocess.Popen([SYNFIN, "-j", "--netns", str(ns.inode), "-d", "3"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: os.close(1))
        wait_ready(proc)
        target = os.readlink(f"/proc/{proc.pid}/fd/1")
        run_peer("--count", "3", netns=ns.name)
        _, err = proc.communicate(timeout=30)
    assert target == "/dev/null", target
    assert proc.returncode == 0, err
    assert time.monotonic() - start >= 3.0, "synfin stopped before --duration"


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGALRM, signal.SIGQUIT, signal.SIGXCPU],
                         ids=lambda s: s.name)
def test_hangup_and_other_ending_signals_flush_everything(sig, tracer, peer):
    require_root()
    synfin = tracer("--life")
    peer("--count", "20")
    status, out, err = synfin.stop(sig=sig, settle=0)
    assert status == 0, (sig, status, err)
    conns = [json.loads(line) for line in out.splitlines() if '"type":"conn"' in line]
    assert len(conns) == 40, (sig, len(conns))


def test_sigusr1_prints_the_summary_so_far_and_goes_on(tracer, peer):
    require_root()
    synfin = tracer("--summary")
    peer("--count", "3")
    synfin.proc.send_signal(signal.SIGUSR1)
    synfin.wait_for(lambda records: any(r["type"] == "summary" for r in records), timeout=30)
    assert synfin.proc.poll() is None, "SIGUSR1 must not end tracing"
    status, out, err = synfin.stop()
    summaries = [json.loads(line) for line in out.splitlines()]
    assert status == 0, err
    assert len(summaries) == 2, summaries  # the one asked for, and the one at exit


def test_bad_input_gets_one_clear_line():
    cases = [
        (["-p"], "option '-p' needs an argument (PID)"),
        (["--pid"], "option '--pid' needs an argument (PID)"),
        (["-d"], "option '-d' needs an argument (SECONDS)"),
        (["--netns", "/proc/self/ns/mnt"], "is not a network namespace"),
        (["--netns", "/proc/self/ns/pid"], "is not a network namespace"),
        (["--max-conns", "16777216"], "from 16 to 1048576"),
        (["--ringbuf-size", "1048576"], "from 4 to 262144"),
        (["-4", "-6"], "-4 and -6 exclude each other"),
    ]
    for args, needle in cases:
        done = run_synfin(*args)
        assert done.returncode == 2, (args, done.returncode, done.stderr)
        assert needle in first_error_line(done), (args, done.stderr)
        assert len(done.stderr.splitlines()) == 1, done.stderr


def test_repeated_options_mean_the_same_as_once():
    require_root()
    done = run_synfin("-4", "-4", "-i", "lo", "-i", "lo", "-d", "1")
    assert done.returncode == 0, done.stderr
    assert "foreign" not in done.stderr and "already has" not in done.stderr


def in_private_mounts(script):
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=30)


def test_empty_or_damaged_btf_is_named():
    require_root()
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        head = f.read(4096)
    for content, name in ((b"", "empty"), (head, "truncated")):
        path = f"/tmp/synfin-btf-{os.getpid()}-{name}"
        with open(path, "wb") as f:
            f.write(content)
        try:
            done = in_private_mounts(f"mount --bind {path} /sys/kernel/btf/vmlinux && "
                                     f"exec {SYNFIN} -d 1")
        finally:
            os.unlink(path)
        assert done.returncode == 1, (name, done.returncode, done.stderr)
        assert "cannot read the kernel's BTF" in first_error_line(done), (name, done.stderr)
        assert "empty or damaged" in first_error_line(done), done.stderr


def test_low_open_file_limit_is_named():
    require_root()
    done = subprocess.run(["prlimit", "--nofile=16:16", SYNFIN, "-d", "1"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, done.stderr
    assert "open-file limit is 16 (ulimit -n)" in first_error_line(done), done.stderr


def test_soft_open_file_limit_is_raised_to_the_hard_one():
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), wrapper=("prlimit", "--nofile=32:4096", "--"))
        with open(f"/proc/{tracer.proc.pid}/limits") as f:
            line = next(line for line in f if line.startswith("Max open files"))
        tracer.stop()
    assert line.split()[3:5] == ["4096", "4096"], line


def as_nobody_with(caps, *args):
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           f"--inh-caps={caps}", f"--ambient-caps={caps}", SYNFIN, *args],
                          capture_output=True, text=True, timeout=30)


def test_packet_layer_names_cap_net_admin():
    require_root()
    if not os.access(SYNFIN, os.X_OK) or os.stat(SYNFIN).st_mode & 0o005 != 0o005:
        raise AssertionError(f"{SYNFIN} must be readable and executable by nobody for this test")
    done = as_nobody_with("+bpf,+perfmon", "-d", "1")
    assert done.returncode == 0, f"CAP_BPF+CAP_PERFMON must be enough without -i: {done.stderr}"
    done = as_nobody_with("+bpf,+perfmon", "-i", "lo", "-d", "1")
    assert done.returncode == 1, done.stderr
    assert "-i needs CAP_NET_ADMIN" in first_error_line(done), done.stderr
    done = as_nobody_with("+bpf,+perfmon,+net_admin", "-i", "lo", "-d", "1")
    assert done.returncode == 0, done.stderr
