"""Listener health: a listen(1) server that never accepts, and clients that keep knocking.
The witness is the namespace's own MIB counters (nstat: ListenOverflows, ListenDrops) and
the server's own backlog; synfin's listener table and its --stuck alarm must say the same."""
import subprocess
import sys
import time

from lib import Netns, Synfin, nstat, require_root

CLIENTS = 6
SERVER = r"""
import socket, sys
ls = socket.socket()
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
sys.stdin.readline()  # until the test is done: never accepts
"""
CLIENT = r"""
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
cs = []
for _ in range(n):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    cs.append(c)
print("connecting", flush=True)
sys.stdin.readline()  # then every socket closes: no SYN is retransmitted after that
"""


def steady_nstat(ns, *names):
    """The counters once two reads 200 ms apart agree (the last SYNs processed)."""
    last = nstat(ns, *names)
    while True:
        time.sleep(0.2)
        now = nstat(ns, *names)
        if now == last:
            return now
        last = now


def start(ns, script, *args):
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_a_full_accept_queue_is_told_as_the_kernel_counts_it():
    require_root()
    names = ("TcpExtListenOverflows", "TcpExtListenDrops")
    with Netns() as ns:
        before = nstat(ns.name, *names)
        tracer = Synfin("--netns", str(ns.inode), "--summary", "--stuck", "1")
        server = start(ns.name, SERVER, "0")
        port = int(server.stdout.readline())
        clients = start(ns.name, CLIENT, str(port), str(CLIENTS))
        assert clients.stdout.readline().strip() == "connecting"
        # The alarm: its queue full for a second (a record to wait on, not a sleep).
        records = tracer.wait_for(
            lambda rs: any(r["type"] == "stuck" and r["state"] == "LISTEN" for r in rs),
            timeout=30, what="the full listener's stuck record")
        clients.communicate("done\n", timeout=30)
        after = steady_nstat(ns.name, *names)
        summary = [r for r in tracer.records() if r["type"] == "summary"][-1]
        server.communicate("done\n", timeout=30)
    [stuck] = [r for r in records if r["type"] == "stuck" and r["state"] == "LISTEN"]
    assert (stuck["role"], stuck["sport"], stuck["pid"]) == ("listener", port, server.pid), stuck
    [listener] = [l for l in summary["listeners"] if l["port"] == port]
    drops = after["TcpExtListenDrops"] - before["TcpExtListenDrops"]
    overflows = after["TcpExtListenOverflows"] - before["TcpExtListenOverflows"]
    assert drops > 0 and overflows == drops, (before, after)  # every drop a full queue
    assert listener["drops"] == drops, (listener, drops)
    # listen(1): the kernel lets the queue reach backlog + 1 before it refuses.
    assert (listener["backlog"], listener["queue"], listener["queue_peak"]) == (1, 2, 2), listener
    assert not listener["closed"], listener


def drop_handshake_acks_to(ns, port):
    rules = ("table inet synfin_acks {\n chain input {\n  type filter hook input priority 0;\n"
             f"  tcp dport {port} tcp flags == ack drop\n }}\n}}\n")
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True,
                   check=True)


def test_synacks_retransmitted_for_lost_handshake_acks_are_counted_per_listener():
    """The clients' final ACKs are dropped: the listener retransmits its SYN-ACKs, which
    nstat counts as TCPSynRetrans (no SYN of the clients is retransmitted: each got its
    SYN-ACK)."""
    require_root()
    with Netns() as ns:
        server = start(ns.name, SERVER, "0")
        port = int(server.stdout.readline())
        drop_handshake_acks_to(ns.name, port)
        before = nstat(ns.name, "TcpExtTCPSynRetrans")["TcpExtTCPSynRetrans"]
        tracer = Synfin("--netns", str(ns.inode), "--summary", "--interval", "1")
        clients = start(ns.name, CLIENT, str(port), "2")
        assert clients.stdout.readline().strip() == "connecting"

        def retransmitted(rs):
            return any(l["port"] == port and (l["synack_retrans"] or 0) >= 2
                       for r in rs if r["type"] == "summary" for l in r["listeners"])
        tracer.wait_for(retransmitted, timeout=30, what="two SYN-ACK retransmissions")
        low = nstat(ns.name, "TcpExtTCPSynRetrans")["TcpExtTCPSynRetrans"] - before
        summary = [r for r in tracer.records() if r["type"] == "summary"][-1]
        high = nstat(ns.name, "TcpExtTCPSynRetrans")["TcpExtTCPSynRetrans"] - before
        clients.communicate("done\n", timeout=30)
        server.communicate("done\n", timeout=30)
    [listener] = [l for l in summary["listeners"] if l["port"] == port]
    assert low <= listener["synack_retrans"] <= high, (low, listener, high)


TIMING_OUT = r"""
import select, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
cs = []
for _ in range(n):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("127.0.0.1", port))
    cs.append(c)
errors = []
for c in cs:  # each becomes writable when its connect ends (here: times out)
    select.select([], [c], [], 60)
    errors.append(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
print(" ".join(map(str, errors)), flush=True)
"""


def test_a_timeout_names_the_full_local_listener_that_dropped_its_syns():
    """Both ends here, the accept queue full before the clients knock: their SYNs are
    dropped at the listener (the kernel traces none: nstat ListenOverflows counts them), and
    each client's timeout names that listener and its SYNs, as many as nstat counted."""
    require_root()
    names = ("TcpExtListenOverflows",)
    with Netns() as ns:
        subprocess.run(["ip", "netns", "exec", ns.name, "sysctl", "-qw",
                        "net.ipv4.tcp_syn_retries=1"], check=True)
        tracer = Synfin("--netns", str(ns.inode), "--life", "--stuck", "1")
        server = start(ns.name, SERVER, "0")
        port = int(server.stdout.readline())
        fillers = start(ns.name, CLIENT, str(port), "2")  # backlog 1: the queue holds two
        assert fillers.stdout.readline().strip() == "connecting"
        tracer.wait_for(lambda rs: any(r["type"] == "stuck" and r["state"] == "LISTEN"
                                       for r in rs), timeout=30, what="the listener full")
        before = steady_nstat(ns.name, *names)
        knockers = start(ns.name, TIMING_OUT, str(port), "3")
        errors = knockers.communicate(timeout=60)[0].split()
        after = steady_nstat(ns.name, *names)
        records = tracer.wait_for(
            lambda rs: sum(r["type"] == "conn" and r["outcome"] == "timeout" for r in rs) == 3,
            timeout=30, what="three timeouts")
        fillers.communicate("done\n", timeout=30)
        server.communicate("done\n", timeout=30)
    assert errors == ["110"] * 3, errors  # ETIMEDOUT, as the application saw it
    timeouts = [r for r in records if r["type"] == "conn" and r["outcome"] == "timeout"]
    for r in timeouts:
        assert r["dport"] == port and r["states"] == ["SYN_SENT"], r
        assert r["full_listener"] == {"netns": ns.inode, "port": port, "queue": 2, "backlog": 1,
                                      "syns_dropped": r["syn_retrans"] + 1}, r
    overflows = after["TcpExtListenOverflows"] - before["TcpExtListenOverflows"]
    assert sum(r["full_listener"]["syns_dropped"] for r in timeouts) == overflows, \
        (timeouts, before, after)
    # The two in the queue had their handshakes: no listener to blame.
    others = [r for r in records if r["type"] == "conn" and r["role"] == "client"
              and r["outcome"] != "timeout"]
    assert all(r["full_listener"] is None for r in others), others


ACCEPTING = r"""
import socket, sys
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print(ls.getsockname()[1], flush=True)
for _ in range(int(sys.argv[1])):
    ls.accept()[0].close()
"""
CONNECTING = r"""
import socket, sys
for _ in range(int(sys.argv[2])):
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10).close()
"""


def test_syn_cookies_are_counted_as_the_namespace_counts_them():
    """net.ipv4.tcp_syncookies=2: every SYN is answered with a cookie, every handshake
    completed by one; the kernel counts them per namespace only (nstat), and so does synfin."""
    require_root()
    names = ("TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed")
    clients = 5
    with Netns() as ns:
        subprocess.run(["ip", "netns", "exec", ns.name, "sysctl", "-qw",
                        "net.ipv4.tcp_syncookies=2"], check=True)
        tracer = Synfin("--netns", str(ns.inode), "--summary", "--interval", "1")
        server = start(ns.name, ACCEPTING, str(clients))
        port = int(server.stdout.readline())

        def looked(rs):  # synfin has read the namespace's counters: it counts from here
            return any(n["netns"] == ns.inode for r in rs if r["type"] == "summary"
                       for n in r["syncookies"])
        tracer.wait_for(looked, timeout=30, what="a look at the namespace")
        before = steady_nstat(ns.name, *names)
        connecting = start(ns.name, CONNECTING, str(port), str(clients))
        assert connecting.wait(timeout=30) == 0
        server.wait(timeout=30)
        after = steady_nstat(ns.name, *names)
        want = {"sent": after[names[0]] - before[names[0]],
                "validated": after[names[1]] - before[names[1]],
                "failed": after[names[2]] - before[names[2]]}

        def counted(rs):
            return any(n["netns"] == ns.inode and all(n[k] >= want[k] for k in want)
                       for r in rs if r["type"] == "summary" for n in r["syncookies"])
        records = tracer.wait_for(counted, timeout=30, what="the cookies counted")
    # A SYN each, a cookie each; a slow guest (TCG) can validate a cookie twice (its ACK and
    # the data behind it both reach the listener): nstat's count is the witness, not ours.
    assert (want["sent"], want["failed"]) == (clients, 0) and want["validated"] >= clients, \
        (before, after)
    last = [n for r in records if r["type"] == "summary" for n in r["syncookies"]
            if n["netns"] == ns.inode][-1]
    assert {k: last[k] for k in want} == want, last
