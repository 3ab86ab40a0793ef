"""Helpers for synfin's integration tests: run the real binary against the
real kernel, make real connections (peer.py), and read what synfin printed."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import jsonschema
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# SYNFIN_BIN: another build of synfin to test (the sanitizer build, for instance).
SYNFIN = os.path.abspath(os.environ.get("SYNFIN_BIN", os.path.join(ROOT, "synfin")))
PEER = os.path.join(HERE, "peer.py")
READY = "Tracing TCP connections... Hit Ctrl-C to end."
SCHEMA_DIR = os.path.join(ROOT, "docs", "schema")
# How long wait_for() waits by default: the common case returns at once, a TCG VM is ~10x
# slower than the host and a loaded machine slower still.
WAIT_TIMEOUT = 60


# Two tracers' programs each stamp their own time: microseconds apart on real hardware; in
# the suite's TCG VMs (VMTEST) an interrupt between their runs has taken 9 ms.
TWO_TRACERS_US = 20_000 if os.environ.get("VMTEST") else 2_000


class Skip(pytest.skip.Exception):
    """The kernel or machine lacks what the test needs; the message says what. A pytest
    skip (raise Skip("why") as before); like pytest's, an `except Exception` lets it by."""


_validators = {}


def validator_for(record_type):
    """A jsonschema validator for docs/schema/<record_type>.schema.json, of the draft the
    schema declares ($schema: 2020-12), the schema itself checked against its meta-schema."""
    if record_type not in _validators:
        with open(os.path.join(SCHEMA_DIR, f"{record_type}.schema.json")) as f:
            schema = json.load(f)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        _validators[record_type] = cls(schema)  # no format_checker: the schemas use no format
    return _validators[record_type]


def record_errors(record):
    """Every way a record breaks the schema of its type, as readable strings (empty: valid)."""
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        return [f"not a record with a string 'type': {record!r}"]
    try:
        validator = validator_for(record["type"])
    except FileNotFoundError:
        return [f"no docs/schema/{record['type']}.schema.json for this record type"]
    if validator.is_valid(record):  # the common case, ~40 us a record (x10 under TCG)
        return []
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
            for e in validator.iter_errors(record)]


def check_record(record):
    """Raises AssertionError when a record of synfin's breaks its schema."""
    problems = record_errors(record)
    kind = record.get("type") if isinstance(record, dict) else None
    assert not problems, f"record breaks docs/schema/{kind}.schema.json: {problems}: {record}"


def parse_records(out):
    """synfin's NDJSON output as records, each checked against its schema in docs/schema/."""
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    for record in records:
        check_record(record)
    return records


def require_root():
    if os.geteuid() != 0:
        raise Skip("needs root")


_running = set()


def contents(f):
    """All that file f holds now, read with pread: synfin's stdout and stderr are the same open
    file descriptions as ours, so a seek() and read() here would move the offset its next write
    lands at (it overwrote its own first records, and a read joined two halves of lines)."""
    fd = f.fileno()
    size = os.fstat(fd).st_size
    data = b""
    while len(data) < size:
        chunk = os.pread(fd, size - len(data), len(data))
        if not chunk:
            break
        data += chunk
    return data


def kill_leftovers():
    """Called after every test (conftest.py): a failed test must not leave a tracer behind."""
    for tracer in list(_running):
        tracer.kill()


class Synfin:
    """./synfin running in the background; stop() ends it with SIGINT and
    returns (exit status, stdout, stderr)."""

    def __init__(self, *args, json_output=True, stdout=None, wrapper=(), netns_exec=None):
        _running.add(self)
        prefix = ["ip", "netns", "exec", netns_exec] if netns_exec else []
        self.args = (prefix + list(wrapper) + [SYNFIN] + (["--json"] if json_output else [])
                     + list(args))
        self.out = tempfile.TemporaryFile(mode="w+b")
        self.err = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(self.args, stdout=stdout or self.out, stderr=self.err,
                                     stdin=subprocess.DEVNULL)
        self._wait_ready()

    def _stderr(self):
        return contents(self.err).decode(errors="replace")

    def _wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY in self._stderr():
                return
            if self.proc.poll() is not None:
                _running.discard(self)
                raise AssertionError(f"synfin exited early ({self.proc.returncode}): "
                                     f"{self._stderr().strip()}")
            time.sleep(0.02)
        self.kill()
        raise AssertionError("synfin never said it was tracing")

    def stop(self, sig=signal.SIGINT, settle=0):
        """No settling needed: at exit synfin drains every record the kernel's rings hold
        (and reports what was lost). settle (seconds) remains for callers that want one."""
        if settle:
            time.sleep(settle)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            status = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("synfin did not exit within 15 s of the signal")
        _running.discard(self)
        return status, contents(self.out).decode(errors="replace"), self._stderr()

    def records(self, **stop_args):
        """The NDJSON records, each checked against its schema in docs/schema/."""
        status, out, err = self.stop(**stop_args)
        assert status == 0, f"synfin exited {status}: {err.strip()}"
        return parse_records(out)

    def records_so_far(self):
        """The complete NDJSON lines synfin has written to its output file until now, as
        checked records (synfin writes to a file in blocks, flushed at least once a second)."""
        data = contents(self.out)
        # Only a file system that makes a write's size visible before its bytes would show a
        # read racing synfin's write zeros: never in NDJSON (JSON escapes NUL), and not yet read.
        hole = data.find(b"\0")
        if hole >= 0:
            data = data[:hole]
        return parse_records(data[:data.rfind(b"\n") + 1].decode(errors="replace"))

    def wait_for(self, predicate, timeout=WAIT_TIMEOUT, what=None):
        """Polls the records written so far until predicate(records) is true and returns
        them; AssertionError after timeout seconds, or when synfin exits first."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None
            records = self.records_so_far()
            if predicate(records):
                return records
            if exited:
                raise AssertionError(f"synfin exited ({self.proc.returncode}) before "
                                     f"{what or predicate.__name__}: {self._stderr().strip()}")
            if time.monotonic() >= deadline:
                conns = [r for r in records if r.get("type") == "conn"]
                raise AssertionError(f"no {what or predicate.__name__} within {timeout} s "
                                     f"({len(records)} records so far; lifecycles {conns}; "
                                     f"stderr {self._stderr().strip()!r})")
            time.sleep(0.02)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _running.discard(self)


def run_peer(*args, netns=None, timeout=60):
    """Runs peer.py (in netns if given) and returns its JSON report."""
    cmd = ([sys.executable, PEER] if not netns else
           ["ip", "netns", "exec", netns, sys.executable, PEER]) + list(args)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"peer failed: {done.stderr.strip()}"
    return json.loads(done.stdout.strip().splitlines()[-1])


class Netns:
    """A private network namespace with lo up, removed on exit."""

    def __init__(self):
        self.name = "synfin-t-" + uuid.uuid4().hex[:8]

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        self.inode = os.stat(f"/run/netns/{self.name}").st_ino
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def by_socket(records):
    """State records grouped by socket address, in order."""
    socks = {}
    for r in records:
        if r["type"] == "state":
            socks.setdefault(r["sk"], []).append(r)
    return socks


def transitions(events):
    return [(e["old"], e["new"]) for e in events]


def find_socket(records, sport=None, dport=None):
    """The transitions of the one socket whose events show this local/remote port."""
    found = [evs for evs in by_socket(records).values()
             if any((sport is None or e["sport"] == sport) and
                    (dport is None or e["dport"] == dport) for e in evs)]
    assert len(found) == 1, f"expected one socket with sport={sport} dport={dport}, got {len(found)}"
    return found[0]


def conn_records(records, sport=None, dport=None):
    return [r for r in records if r["type"] == "conn" and
            (sport is None or r["sport"] == sport) and (dport is None or r["dport"] == dport)]


def _fdinfo_ids(pid, field):
    """The values of one fdinfo field (prog_id:, map_id:) over a process's fds."""
    ids = set()
    fd_dir = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(fd_dir):
        try:
            with open(os.path.join(fd_dir, fd)) as f:
                ids |= {int(line.split()[1]) for line in f if line.startswith(field)}
        except OSError:
            pass
    return ids


def program_ids_held_by(pid):
    """BPF program ids a process holds through its fds (programs and links): /proc fdinfo."""
    return _fdinfo_ids(pid, "prog_id:")


def map_names_held_by(pid):
    """Names of the BPF maps a process holds through its fds (/proc fdinfo, then bpftool)."""
    ids = _fdinfo_ids(pid, "map_id:")
    out = subprocess.run(["bpftool", "-j", "map", "show"], capture_output=True, text=True)
    return {m.get("name", "") for m in json.loads(out.stdout or "[]") if m.get("id") in ids}


def synfin_programs_loaded(pid=None):
    """Names of synfin's BPF programs still in the kernel (bpftool's view); with pid,
    only those that process holds (other synfin instances may be running)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    held = program_ids_held_by(pid) if pid is not None else None
    names = {p.get("name", "") for p in json.loads(out.stdout or "[]")
             if held is None or p.get("id") in held}
    return names & {"set_state_btf", "set_state_tp"}


def programs_loaded(ids):
    """Which of these BPF program ids are still in the kernel (bpftool's view)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    return {p.get("id") for p in json.loads(out.stdout or "[]")} & set(ids)


def start_waiting_peer(netns, *args):
    """peer.py --wait: it reports its pid and acts only when finish_waiting_peer() says go."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, PEER, "--wait", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, json.loads(proc.stdout.readline())["pid"]


def finish_waiting_peer(proc):
    out, _ = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, "peer failed"
    return json.loads(out.strip().splitlines()[-1])


def time_wait_tuples(netns, port=None, family=None):
    """(local address, local port) of the namespace's TIME-WAIT sockets, per ss: those to
    port if given, of one family (4 or 6) if given."""
    cmd = ["ip", "netns", "exec", netns, "ss", "-Htan", "state", "time-wait"]
    if family:
        cmd.insert(5, f"-{family}")
    if port:
        cmd += ["dport", f"= :{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    local = (line.split()[-2].rsplit(":", 1) for line in out.splitlines() if line.strip())
    return {(addr, int(lport)) for addr, lport in local}


def nstat(netns, *names):
    """The namespace's MIB counters by nstat name (absolute, zeros included, its history
    file left alone)."""
    out = subprocess.run(["ip", "netns", "exec", netns, "nstat", "-asz", *names],
                         capture_output=True, text=True, check=True).stdout
    return {n: int(re.search(rf"^{n}\s+(\d+)", out, re.M).group(1)) for n in names}
