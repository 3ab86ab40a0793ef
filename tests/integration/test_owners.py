"""Owners are the processes that hold sockets, as `ss -tanp` names them (the witness):
a pre-forking nginx's workers, a python server whose parent exits, a socket passed over
SCM_RIGHTS, a child forked after accept(), and sockets that existed before synfin started."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from lib import (TWO_TRACERS_US, Netns, Synfin, finish_waiting_peer, require_root,
                 start_waiting_peer)

HERE = os.path.dirname(os.path.abspath(__file__))
HOLDER_PEER = os.path.join(HERE, "holder_peer.py")
SS_TIMEOUT = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ss_sockets(port):
    """{(local port, peer port): (state, [holder pids])} for every TCP socket on port."""
    out = subprocess.run(["ss", "-tanpH"], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        lport, rport = int(f[3].rsplit(":", 1)[1]), f[4].rsplit(":", 1)[1]
        rport = 0 if rport == "*" else int(rport)
        if port in (lport, rport):
            found[(lport, rport)] = (f[0], [int(p) for p in re.findall(r"pid=(\d+)", line)])
    return found


def wait_ss(port, predicate, what):
    deadline = time.monotonic() + SS_TIMEOUT
    while True:
        seen = ss_sockets(port)
        if predicate(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"ss never showed {what}: {seen}")
        time.sleep(0.02)


def server_sockets(seen, port, held=True):
    """ss's accepted sockets on port (not the listener): {peer port: holder pids}."""
    return {r: pids for (l, r), (state, pids) in seen.items()
            if l == port and r and (pids or not held)}


def by_sk(records, port):
    """The state records of each accepted socket on port (not the listener's); a child's
    first (SYN_RECV) may come before its peer's address is set, with dport 0 (6.1)."""
    states = [r for r in records if r["type"] == "state" and r["sport"] == port]
    listeners = {r["sk"] for r in states
                 if "LISTEN" in (r["new"], r["old"]) and r["new"] != "SYN_RECV"}
    socks = {}
    for r in states:
        if r["sk"] not in listeners:
            socks.setdefault(r["sk"], []).append(r)
    return socks


def peer_of(evs):
    return next(e["dport"] for e in evs if e["dport"])


def server_conns(records, port):
    return {r["dport"]: r for r in records if r["type"] == "conn" and r["role"] == "server"
            and r["sport"] == port}


def wait_server_conns(tracer, port, n):
    return tracer.wait_for(lambda rs: len(server_conns(rs, port)) >= n,
                           what=f"{n} server lifecycles on port {port}")


def connect_clients(port, n, hello=b""):
    clients = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        if hello:
            c.sendall(hello)
        clients.append(c)
    return clients


def close_all(clients):
    for c in clients:
        c.close()


class Files:
    """The --go and --stop files holder_peer.py waits for."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="synfin-own-")
        self.go = os.path.join(self.dir, "go")
        self.stop = os.path.join(self.dir, "stop")

    def touch(self, path):
        open(path, "w").close()

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def start_holder_peer(*args):
    proc = subprocess.Popen([sys.executable, HOLDER_PEER, *args], stdout=subprocess.PIPE,
                            text=True)
    return proc


def read_line(proc):
    line = proc.stdout.readline()
    assert line, f"holder_peer.py said nothing (exit {proc.poll()})"
    return json.loads(line)


TIME_FIELDS = {"ts_ns", "state_us", "teardown_us", "duration_us", "handshake_us", "reset_at_us",
               "accept_wait_us"}


def assert_life_and_json_agree(json_records, life_records, port):
    """--life and --json: the same lifecycle records, field for field. They are two
    tracers, each with its own programs stamping the clock: times differ by their runs."""
    a, b = server_conns(json_records, port), server_conns(life_records, port)
    assert set(a) == set(b), (a, b)
    differ = {peer: {k: (v, b[peer].get(k)) for k, v in a[peer].items()
                     if k not in TIME_FIELDS and b[peer].get(k) != v} for peer in a}
    assert not any(differ.values()), differ
    for peer in a:
        assert abs(a[peer]["ts_ns"] - b[peer]["ts_ns"]) < TWO_TRACERS_US * 1000, (a[peer], b[peer])


# --- nginx ---------------------------------------------------------------------------

NGINX_CONF = """
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    client_header_timeout 60s;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}
}}
"""


class Nginx:
    """Debian's nginx with its default daemon mode: the process that listen()s forks the
    master and exits; the master forks the workers."""

    def __init__(self, port, workers=2):
        if not shutil.which("nginx"):
            pytest.skip("nginx is not installed (apt install nginx-light)")
        self.dir = tempfile.mkdtemp(prefix="synfin-nginx-")
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(workers=workers, dir=self.dir, port=port))
        starter = subprocess.Popen(["nginx", "-e", os.path.join(self.dir, "error.log"),
                                    "-p", self.dir, "-c", self.conf])
        self.starter = starter.pid
        assert starter.wait(timeout=30) == 0, "nginx did not start"
        with open(os.path.join(self.dir, "nginx.pid")) as f:
            self.master = int(f.read())
        self.port = port

    def workers(self):
        seen = wait_ss(self.port, lambda s: len(s.get((self.port, 0), ("", []))[1]) >= 3,
                       "the listener held by the master and both workers")
        return sorted(set(seen[(self.port, 0)][1]) - {self.master})

    def stop(self):
        subprocess.run(["nginx", "-e", os.path.join(self.dir, "error.log"), "-p", self.dir,
                        "-c", self.conf, "-s", "stop"], check=False, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


NGINX_CLIENTS = 8
PARTIAL_REQUEST = b"GET / HTTP/1.1\r\nHost: synfin\r\n"  # nginx waits for the rest


def test_nginx_workers_hold_what_they_accept_in_every_mode():
    require_root()
    port = free_port()
    tracer = Synfin("-P", str(port))
    life = Synfin("-P", str(port), "--life")
    nginx = Nginx(port)
    try:
        workers = nginx.workers()
        # Started after nginx: they learn the listener's holders from /proc.
        only = {w: Synfin("-P", str(port), "-p", str(w)) for w in workers}
        listener_holders = set(ss_sockets(port)[(port, 0)][1])
        clients = connect_clients(port, NGINX_CLIENTS, PARTIAL_REQUEST)
        seen = wait_ss(port, lambda s: len(server_sockets(s, port)) == NGINX_CLIENTS,
                       f"{NGINX_CLIENTS} accepted connections")
        holder = {r: pids for r, pids in server_sockets(seen, port).items()}
        close_all(clients)
        records = wait_server_conns(tracer, port, NGINX_CLIENTS)
        wait_server_conns(life, port, NGINX_CLIENTS)
        for w in workers:
            mine = {r for r, pids in holder.items() if pids == [w]}
            only[w].wait_for(lambda rs: set(server_conns(rs, port)) >= mine,
                             what=f"-p {w}'s lifecycles")
    finally:
        nginx.stop()
    assert all(len(pids) == 1 and pids[0] in workers for pids in holder.values()), holder
    conns = server_conns(records, port)
    assert {r: [c["pid"]] for r, c in conns.items()} == holder, (conns, holder)
    for sk, evs in by_sk(records, port).items():
        peer = peer_of(evs)
        for e in evs:
            if e["new"] in ("SYN_RECV", "ESTABLISHED"):  # in the queue: the listener's holder
                assert e["pid"] in listener_holders and e["pid"] != nginx.starter, e
            else:
                assert [e["pid"]] == holder[peer], (e, holder[peer])
    listens = [r for r in records if r["type"] == "state" and r["new"] == "LISTEN"]
    assert [r["pid"] for r in listens] == [nginx.starter]  # it called listen(), then exited
    assert_life_and_json_agree(records, life.records(), port)
    for w, t in only.items():
        kept = t.records()
        mine = {r for r, pids in holder.items() if pids == [w]}
        assert set(server_conns(kept, port)) == mine, (w, server_conns(kept, port), mine)
        assert {r["pid"] for r in kept if "pid" in r} <= {w}, kept
    tracer.stop()


# --- python servers --------------------------------------------------------------------

def test_a_prefork_servers_children_hold_its_listener_once_the_parent_exits():
    require_root()
    port, files = free_port(), Files()
    tracer = Synfin("-P", str(port))
    server = start_holder_peer("prefork", "--port", str(port), "--go", files.go,
                               "--stop", files.stop)
    pids = {"children": []}
    try:
        pids = read_line(server)
        server.wait(timeout=10)  # the parent has exited
        children = set(pids["children"])
        wait_ss(port, lambda s: set(s.get((port, 0), ("", []))[1]) == children,
                "the listener held by the children only")
        clients = connect_clients(port, 3, b"x")
        queued = tracer.wait_for(
            lambda rs: sum(1 for evs in by_sk(rs, port).values()
                           if any(e["new"] == "ESTABLISHED" for e in evs)) == 3,
            what="3 children established in the accept queue")
        go_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)  # synfin's clock (ts_ns)
        files.touch(files.go)
        seen = wait_ss(port, lambda s: len(server_sockets(s, port)) == 3, "3 accepted")
        close_all(clients)
        records = wait_server_conns(tracer, port, 3)
    finally:
        files.touch(files.stop)
        for child in pids["children"]:  # not ours to wait for: the parent is gone
            try:
                os.kill(child, 9)
            except ProcessLookupError:
                pass
        files.remove()
    for evs in by_sk(queued, port).values():
        for e in evs:
            assert e["pid"] in children, (e, pids)  # a live holder, never the parent
    # They waited in the accept queue from their handshake until the children were let go.
    queued_at = {peer_of(evs): evs[0]["ts_ns"] for evs in by_sk(queued, port).values()}
    waited_ns = go_ns - max(queued_at.values())
    conns = server_conns(records, port)
    holder = server_sockets(seen, port)
    assert {r: [c["pid"]] for r, c in conns.items()} == holder, (conns, holder)
    assert all(c["owner_unknown"] is None for c in conns.values())
    for c in conns.values():
        assert c["accept_wait_us"] * 1000 >= waited_ns, (c, waited_ns)
    tracer.stop()


def run_pass_scenario(scenario, new_holder_key, client_first=False):
    """One connection accepted by the parent, then held by another process alone. The new
    holder closes first; or (client_first) the peer does, and the socket's CLOSE_WAIT comes
    in softirq, where only the first holder's close of its copy can have told who holds it."""
    require_root()
    port, files = free_port(), Files()
    tracer = Synfin("-P", str(port))
    server = start_holder_peer(scenario, "--port", str(port), "--go", files.go)
    try:
        read_line(server)  # listening
        client = connect_clients(port, 1)[0]
        pids = read_line(server)
        new_holder = pids[new_holder_key]
        seen = wait_ss(port, lambda s: list(server_sockets(s, port).values()) == [[new_holder]],
                       f"the connection held by {new_holder_key} alone")
        client.settimeout(10)
        if client_first:
            client.close()  # CLOSE_WAIT, then LAST_ACK from the new holder's close()
            wait_ss(port, lambda s: [st for (l, r), (st, _) in s.items() if l == port and r]
                    == ["CLOSE-WAIT"], "the server's socket in CLOSE-WAIT")
            files.touch(files.go)
        else:
            files.touch(files.go)  # it closes first: FIN_WAIT1 from its close()
            assert client.recv(1) == b""
            client.close()
        records = wait_server_conns(tracer, port, 1)
        server.wait(timeout=10)
    finally:
        files.remove()
    (conn,) = server_conns(records, port).values()
    assert [conn["pid"]] == list(server_sockets(seen, port).values())[0], (conn, pids)
    (evs,) = by_sk(records, port).values()
    after = [e for e in evs if e["new"] not in ("SYN_RECV", "ESTABLISHED")]
    want = ["CLOSE_WAIT", "LAST_ACK", "CLOSE"] if client_first else ["FIN_WAIT1", "FIN_WAIT2",
                                                                      "CLOSE"]
    assert [e["new"] for e in after] == want, evs
    assert all(e["pid"] == new_holder for e in after), evs
    tracer.stop()


def test_a_socket_passed_over_scm_rights_is_its_receivers():
    run_pass_scenario("fdpass", "receiver")


def test_a_socket_kept_by_a_child_forked_after_accept_is_the_childs():
    run_pass_scenario("forkafter", "child")


def test_a_passed_sockets_softirq_transitions_name_its_receiver():
    run_pass_scenario("fdpass", "receiver", client_first=True)


def test_a_forked_childs_socket_closed_by_the_peer_names_the_child():
    run_pass_scenario("forkafter", "child", client_first=True)


def test_sockets_from_before_the_start_name_their_holders():
    require_root()
    port = free_port()
    server = start_holder_peer("hold", "--port", str(port), "--children", "3")
    server_pid = read_line(server)["server"]
    clients = connect_clients(port, 3)
    assert read_line(server)["held"] == 3
    seen = wait_ss(port, lambda s: len(server_sockets(s, port)) == 3, "3 held")
    tracer = Synfin("-P", str(port))
    close_all(clients)
    records = wait_server_conns_any_role(tracer, port, 6)
    server.wait(timeout=10)
    for evs in by_sk(records, port).values():  # the server's side: its CLOSE_WAIT from softirq
        assert [e["pid"] for e in evs] == [server_pid] * len(evs), evs
    for c in (r for r in records if r["type"] == "conn"):
        assert c["partial"], c
        if c["sport"] == port:
            assert [c["pid"]] == seen[(port, c["dport"])][1] == [server_pid], c
        else:
            assert [c["pid"]] == seen[(c["sport"], port)][1] == [os.getpid()], c
    tracer.stop()


def wait_server_conns_any_role(tracer, port, n):
    return tracer.wait_for(lambda rs: sum(1 for r in rs if r["type"] == "conn") >= n,
                           what=f"{n} lifecycles on port {port}")


def test_children_never_accepted_name_the_listeners_holder_in_every_mode():
    """The listener closes with its children still queued: each child's records, per event
    and its lifecycle, name the process holding the listener (peer.py itself: its own pid)."""
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode))
        life = Synfin("--netns", str(ns.inode), "--life")
        peer, peer_pid = start_waiting_peer(ns.name, "--scenario", "queued", "--count", "3")
        done = finish_waiting_peer(peer)
        port = done["listen_port"]
        records = wait_server_conns(tracer, port, 3)
        wait_server_conns(life, port, 3)
    conns = server_conns(records, port)
    assert all(c["pid"] == peer_pid and c["outcome"] == "reset" for c in conns.values()), conns
    for evs in by_sk(records, port).values():
        assert all(e["pid"] == peer_pid for e in evs), evs
    assert_life_and_json_agree(records, life.records(), port)
    tracer.stop()
