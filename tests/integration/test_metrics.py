"""--metrics: a Prometheus endpoint whose counters move by exactly the
connections really made, that promtool accepts, and that keeps answering
while a storm of connections runs, with 500 idle connections held, and under
a low file descriptor limit."""
import json
import os
import re
import resource
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from lib import PEER, ROOT, SYNFIN, Netns, Synfin, require_root, run_peer

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
# The tracer publishes a snapshot every ~100 ms; under TCG a scrape and promtool take seconds.
PUBLISH_TIMEOUT = 30


def require_metrics_option():
    require_root()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4"), resp.headers
        return resp.read().decode()


def parse(text):
    """{'name{labels}': value} for every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not an exposition line: {line!r}"
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


def promtool_check(text):
    # The suite installs it (tools/install-deps.sh test): missing is a failure, not a pass.
    assert shutil.which("promtool"), "promtool not installed: install the Debian package prometheus"
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def wait_ready(port, timeout=5):
    """The first scrape, retried while the server comes up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return scrape(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


CLOSED = 'synfin_connections_total{outcome="closed"}'
REFUSED = 'synfin_connections_total{outcome="refused"}'
ESTABLISHED = 'synfin_connections{state="ESTABLISHED"}'


def delta(before, after, key):
    return after.get(key, 0) - before.get(key, 0)


class Endpoint:
    """synfin --metrics 127.0.0.1:PORT tracing one namespace."""

    def __init__(self, ns, *extra):
        self.port = free_port()
        self.tracer = Synfin("--netns", str(ns.inode), "--metrics", f"127.0.0.1:{self.port}",
                             *extra)
        wait_ready(self.port)

    def samples(self, until=None, timeout=PUBLISH_TIMEOUT):
        """One scrape, parsed and checked by promtool. With until, scrapes again while the
        tracer publishes new snapshots until until(samples) holds (or timeout: the caller's
        assertions then say what is missing)."""
        deadline = time.monotonic() + timeout
        while True:
            text = scrape(self.port)
            samples = parse(text)
            if until is None or until(samples) or time.monotonic() >= deadline:
                promtool_check(text)
                return samples
            time.sleep(0.02)


def test_counters_move_by_the_connections_made():
    require_metrics_option()
    with Netns() as ns:
        ep = Endpoint(ns)
        before = ep.samples()
        report = run_peer("--count", "5", netns=ns.name)
        run_peer("--scenario", "refused", netns=ns.name)
        # The refused connect comes last: once it is counted, so is everything before it.
        after = ep.samples(until=lambda s: delta(before, s, REFUSED) >= 1 and
                           delta(before, s, CLOSED) >= 10)
        ep.tracer.records()  # the usual records still flow, each valid
    # 5 connections, two sockets each, and one refused connect().
    assert delta(before, after, 'synfin_connections_total{outcome="closed"}') == 10
    assert delta(before, after, 'synfin_connections_total{outcome="refused"}') == 1
    assert delta(before, after, 'synfin_connections_closed_total{closer="local"}') == 5
    assert delta(before, after, 'synfin_connections_closed_total{closer="remote"}') == 5
    assert delta(before, after, 'synfin_connections_closed_total{closer="none"}') == 1
    hs = "synfin_handshake_duration_seconds"
    assert delta(before, after, f'{hs}_count{{role="client"}}') == 5
    assert delta(before, after, f'{hs}_count{{role="server"}}') == 5
    assert delta(before, after, f'{hs}_bucket{{role="client",le="+Inf"}}') == 5
    assert 0 < delta(before, after, f'{hs}_sum{{role="client"}}') < 5
    port = report["listen_port"]
    assert delta(before, after, f'synfin_listener_connections_total{{port="{port}"}}') == 5
    assert delta(before, after, "synfin_events_total") >= 5 * 8
    assert after["synfin_lost_events_total"] == 0
    assert after["synfin_evicted_connections_total"] == 0
    # Nothing of the loopback peer is left open: the state gauges are back to zero.
    assert after['synfin_connections{state="ESTABLISHED"}'] == 0


def test_histogram_buckets_are_cumulative_and_complete():
    require_metrics_option()
    with Netns() as ns:
        ep = Endpoint(ns)
        run_peer("--count", "3", netns=ns.name)
        samples = ep.samples(until=lambda s: all(
            s.get(f'synfin_handshake_duration_seconds_count{{role="{role}"}}', 0) >= 3
            for role in ("client", "server")))
        ep.tracer.stop()
    for role in ("client", "server"):
        buckets = [(float(m.group(1)) if m.group(1) != "+Inf" else float("inf"), v)
                   for k, v in samples.items()
                   if (m := re.fullmatch(rf'synfin_handshake_duration_seconds_bucket'
                                         rf'\{{role="{role}",le="([^"]+)"\}}', k))]
        buckets.sort()
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), buckets
        assert buckets[-1][0] == float("inf") and buckets[-1][1] == 3, buckets


def test_gauges_follow_connections_held_open():
    require_metrics_option()
    with Netns() as ns:
        ep = Endpoint(ns)
        peer = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, PEER,
                                 "--scenario", "hold", "--count", "4", "--hold-seconds", "30"],
                                stdout=subprocess.DEVNULL)
        try:
            # Generous, and within the 30 s the peer holds them: under TCG the peer's
            # start-up and each promtool run take seconds.
            held = ep.samples(until=lambda s: s.get(ESTABLISHED, 0) >= 8, timeout=25)[ESTABLISHED]
        finally:
            peer.terminate()
            peer.wait(timeout=30)
        ep.tracer.stop()
    assert held == 8, held  # 4 clients and their 4 accepted children


def test_endpoint_answers_during_a_connection_storm():
    require_metrics_option()
    storm = 2000
    with Netns() as ns:
        ep = Endpoint(ns)
        before = ep.samples()
        scrapes, failures = [], []
        stop = threading.Event()

        def scraper():
            while not stop.is_set():
                start = time.monotonic()
                try:
                    parse(scrape(ep.port, timeout=2.0))
                    scrapes.append(time.monotonic() - start)
                except Exception as err:  # noqa: BLE001 - every failure is reported
                    failures.append(repr(err))
                time.sleep(0.02)

        thread = threading.Thread(target=scraper)
        thread.start()
        try:
            run_peer("--count", str(storm), netns=ns.name, timeout=110)
        finally:
            stop.set()
            thread.join()
        # Every connection counted, or some lost (then the count is not checked).
        after = ep.samples(until=lambda s: delta(before, s, CLOSED) >= 2 * storm or
                           delta(before, s, "synfin_lost_events_total") > 0)
        status, _, err = ep.tracer.stop()
    assert status == 0, err
    assert not failures, failures[:5]
    assert len(scrapes) >= 5 and max(scrapes) < 1.0, (len(scrapes), max(scrapes))
    lost = delta(before, after, "synfin_lost_events_total")
    if lost == 0:
        assert delta(before, after, 'synfin_connections_total{outcome="closed"}') == 2 * storm


def hold_idle_connections(port, count):
    """count connections to 127.0.0.1:port that never send a byte; connect()
    is not waited for, so a server that stops accepting cannot stall the test."""
    held = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        held.append(s)
    return held


def established(held, timeout):
    """How many of held have completed their handshake within timeout."""
    deadline = time.monotonic() + timeout
    poller = select.poll()  # not select(): the fds may be above 1024
    pending = {s.fileno(): s for s in held}
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(50):
            poller.unregister(fd)
            del pending[fd]
    return sum(1 for s in held if s.fileno() not in pending and
               s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)


def listener_in_ss(port):
    """ss's line for the socket listening on port, split: state, Recv-Q, Send-Q, local
    address, peer address ([] if none)."""
    return subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                          text=True).stdout.split()


def accept_queue(port):
    """Connections the kernel has completed but the endpoint has not accepted yet: the
    listener's Recv-Q."""
    fields = listener_in_ss(port)
    return int(fields[1]) if len(fields) > 1 else None


def late_scrape(port):
    """After a scrape that timed out: slow or no answer at all? (for the failure message)"""
    start = time.monotonic()
    try:
        scrape(port, timeout=10.0)
        return f"a second scrape took {time.monotonic() - start:.2f} s"
    except OSError as err:
        return f"a second scrape got no answer in 10 s either ({err!r})"


def close_all(held):
    for s in held:
        s.close()


def raise_own_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def test_scrape_answers_within_1s_while_500_idle_connections_are_held():
    require_metrics_option()
    idle = 500
    raise_own_fd_limit(idle + 100)
    with Netns() as ns:
        ep = Endpoint(ns)
        held = hold_idle_connections(ep.port, idle)
        try:
            ready = established(held, timeout=2.0)
            queued = accept_queue(ep.port)
            start = time.monotonic()
            try:
                scrape(ep.port, timeout=1.0)
                took = time.monotonic() - start
            except OSError as err:
                took = f"no answer ({err!r}); {late_scrape(ep.port)}"
        finally:
            close_all(held)
        status, _, err = ep.tracer.stop()
    assert isinstance(took, float) and took < 1.0, \
        f"{took} with {ready} idle connections, {queued} of them not yet accepted (ss)"
    assert ready == idle, f"only {ready} of {idle} idle connections were accepted"
    assert status == 0, err


def threads_cpu_seconds(pid):
    """CPU time used so far by every thread of pid but the main (tracing) one."""
    ticks = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        if int(tid) == pid:
            continue
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    return ticks / os.sysconf("SC_CLK_TCK")


def assert_no_busy_loop(pid, what):
    before = threads_cpu_seconds(pid)
    time.sleep(2)
    spent = threads_cpu_seconds(pid) - before
    assert spent < 0.2, f"{what}: HTTP threads used {spent:.2f} s of CPU in 2 s, a busy loop"


def set_fd_limit(pid, soft, hard):
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={soft}:{hard}"], check=True)


def scrape_fails(port):
    try:
        scrape(port, timeout=1.0)
    except OSError:
        return True
    return False


def serves_without_spinning(tracer, port, nofile):
    """Scrapes work; neither more idle connections than the limit nor, with
    the limit then lowered under the fds open (prlimit --pid), accept()
    failing with EMFILE makes the HTTP threads spin; scrapes work again after."""
    pid = tracer.proc.pid
    wait_ready(port)
    held = hold_idle_connections(port, 100)
    try:
        assert_no_busy_loop(pid, "100 idle connections")
    finally:
        close_all(held)
    wait_ready(port)
    # Below every fd open: no new one whatever the process closes meanwhile (a limit at
    # the lowest free fd let an fd freed by then serve the scrape, seen under ASan).
    set_fd_limit(pid, 3, nofile)
    try:
        assert scrape_fails(port), "a scrape was answered with no fd to accept it"
        assert_no_busy_loop(pid, "accept() failing with EMFILE")
    finally:
        set_fd_limit(pid, nofile, nofile)
    assert "synfin_events_total" in wait_ready(port)
    status, _, err = tracer.stop()
    assert status == 0, err


def test_low_fd_limit_is_refused_clearly_or_served_without_spinning():
    require_metrics_option()
    outcomes = {}
    for nofile in (16, 96):
        port = free_port()
        with Netns() as ns:
            try:
                tracer = Synfin("--netns", str(ns.inode), "--metrics", f"127.0.0.1:{port}",
                                wrapper=("prlimit", f"--nofile={nofile}:{nofile}", "--"))
            except AssertionError as refused:  # Synfin() says how it exited early
                why = str(refused)
                assert re.search(r"exited early \([1-9]\d*\)", why), why
                # Either the tracer's own floor or the metrics server's count says so.
                assert (f"open-file limit is {nofile} (ulimit -n)" in why or
                        ("synfin: --metrics: only " in why and
                         f"file descriptors left under the limit of {nofile} (ulimit -n)" in why)), why
                assert "raise it" in why, why
                outcomes[nofile] = "refused"
                continue
            serves_without_spinning(tracer, port, nofile)
            outcomes[nofile] = "served"
    assert outcomes == {16: "refused", 96: "served"}, outcomes


def test_port_alone_listens_on_loopback_only():
    require_metrics_option()
    port = free_port()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), "--metrics", str(port))
        listening = listener_in_ss(port)
        scrape_ok = "synfin_events_total" in wait_ready(port)
        tracer.stop()
    assert f"127.0.0.1:{port}" in listening, listening
    assert scrape_ok


def test_bad_metrics_address_is_a_command_line_error():
    require_metrics_option()
    for bad in ("0", "65536", "nonsense", ":9102", "localhost:9102"):
        done = subprocess.run([SYNFIN, "--metrics", bad], capture_output=True, text=True,
                              timeout=10)
        assert done.returncode == 2, (bad, done.returncode, done.stderr)
        assert done.stderr.startswith("synfin: ") and "metrics" in done.stderr, done.stderr


def test_busy_port_stops_synfin_from_starting():
    require_metrics_option()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([SYNFIN, "--metrics", f"127.0.0.1:{port}", "-d", "1"],
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Address already in use" in done.stderr, done.stderr


def test_dashboard_queries_only_metrics_synfin_exports():
    # The exposition is written by user/sinks/metrics_text.c.
    with open(os.path.join(ROOT, "user", "sinks", "metrics_text.c")) as f:
        exported = set(re.findall(r"synfin_[a-z_]+", f.read()))
    hist = "synfin_handshake_duration_seconds"
    exported |= {hist + suffix for suffix in ("_bucket", "_sum", "_count")}
    with open(os.path.join(ROOT, "contrib", "grafana", "synfin-dashboard.json")) as f:
        dashboard = json.load(f)
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"synfin_[a-z_]+", target["expr"]))
    assert used and used <= exported, used - exported
