"""The packet layer on real interfaces: segments against an independent
AF_PACKET capture, the wire view inside lifecycle records, the ladder, and
attaching without disturbing anyone."""
import json
import os
import signal
import subprocess
import sys
import time

from lib import (PEER, SYNFIN, Netns, Skip, Synfin, conn_records, parse_records,
                 program_ids_held_by, require_root, run_peer)

SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


def letters(flags):
    out = "".join(ch for bit, ch in ((FIN, "F"), (SYN, "S"), (RST, "R"), (0x08, "P")) if flags & bit)
    return (out + "." if flags & ACK else out) or "none"


def lifecycle_segments(capture, lport):
    """From a full capture, the segments the default mode must emit: SYN, SYN-ACK,
    FIN, RST, the handshake-completing ACK and the ACK of each FIN."""
    wanted, handshake_ack, fin_acks = [], {}, {}
    for s in capture:
        if s["sport"] != lport and s["dport"] != lport:
            continue
        pure_ack = s["flags"] == ACK
        if s["flags"] & (SYN | FIN | RST):
            wanted.append(s)
            if s["flags"] & SYN and s["flags"] & ACK:
                handshake_ack[(s["dport"], s["sport"])] = (s["seq"] + 1) % 2**32
            if s["flags"] & FIN:
                fin_acks.setdefault((s["dport"], s["sport"]), set()).add((s["seq"] + 1) % 2**32)
        elif pure_ack and (handshake_ack.get((s["sport"], s["dport"])) == s["ack"] or
                           s["ack"] in fin_acks.get((s["sport"], s["dport"]), ())):
            wanted.append(s)
    return [(s["sport"], s["dport"], letters(s["flags"]), s["seq"], s["ack"]) for s in wanted]


def trace_lo(peer_args, synfin_args=()):
    """synfin with the packet layer on a namespace's lo, while peer.py works there."""
    require_root()
    with Netns() as ns:
        tracer = Synfin("-i", "lo", *synfin_args, netns_exec=ns.name)
        peer = run_peer("--capture", *peer_args, netns=ns.name)
        records = tracer.records()
    return peer, records


def test_packet_records_match_the_capture_segment_for_segment():
    for scenario in ("shutdown", "server-first", "reset"):
        peer, records = trace_lo(["--scenario", scenario])
        lport = peer["listen_port"]
        got = [(r["sport"], r["dport"], r["flags"], r["seq"], r["ack"])
               for r in records if r["type"] == "packet" and r["dir"] == "in"]
        want = lifecycle_segments(peer["segments"], lport)
        assert got == want, (scenario, got, want)
        # lo: every segment passes egress (TC) then ingress (XDP), and both are reported.
        outs = [r for r in records if r["type"] == "packet" and r["dir"] == "out"]
        assert len(outs) == len(got), scenario
        assert all(r["iface"] == "lo" for r in records if r["type"] == "packet")


def test_syn_options_are_parsed():
    peer, records = trace_lo(["--scenario", "shutdown"])
    [syn] = [r for r in records if r["type"] == "packet" and r["flags"] == "S" and r["dir"] == "in"]
    opts = syn["options"]
    # Linux's SYN: MSS (lo: 65495), SACK-permitted, timestamps, window scale.
    assert opts["mss"] == 65495 and opts["sack_ok"] is True and opts["wscale"] >= 0, opts
    assert opts["ts_val"] > 0 and opts["ts_ecr"] == 0, opts


def test_lifecycle_records_carry_the_wire_view():
    peer, records = trace_lo(["--scenario", "shutdown"])
    cport, lport = peer["conns"][0]["client_port"], peer["listen_port"]
    [client] = conn_records(records, sport=cport, dport=lport)
    [server] = conn_records(records, sport=lport, dport=cport)
    for rec in (client, server):
        wire = rec["wire"]
        assert wire["syns"] == 1 and wire["synacks"] == 1, wire
        assert wire["syn_ts_ns"] <= wire["synack_ts_ns"] <= wire["ack_ts_ns"], wire
        assert wire["syn_options"]["mss"] == 65495
        assert rec["anomalies"] == [], rec["anomalies"]
        flags = [s["flags"] for s in rec["segments"]]
        assert flags == ["S", "S.", ".", "F.", "F.", "."], flags
    # The ISNs the state layer read agree with the segments.
    syn = client["segments"][0]
    assert syn["from"] == "local" and syn["seq"] == client["local_isn"]
    assert server["segments"][1]["from"] == "local" and server["segments"][1]["seq"] == server["local_isn"]


def test_refused_connect_is_flagged_from_the_wire():
    peer, records = trace_lo(["--scenario", "refused"])
    port = peer["conns"][0]["refused_port"]
    [rec] = conn_records(records, dport=port)
    assert "syn_to_closed_port" in rec["anomalies"], rec
    assert [s["flags"] for s in rec["segments"]] == ["S", "R."], rec["segments"]


def test_ladder_draws_arrows_and_states_in_order():
    require_root()
    with Netns() as ns:
        tracer = Synfin("-i", "lo", "--ladder", "--life", json_output=False, netns_exec=ns.name)
        run_peer("--scenario", "shutdown", netns=ns.name)
        status, out, err = tracer.stop()
    assert status == 0, err
    lines = out.splitlines()
    arrows = [line for line in lines if "|-- " in line or "|<- " in line]
    assert [a.split("|")[1].split()[1] for a in arrows] == ["S", "S.", ".", "F.", "F.", "."], arrows
    assert "|-- S " in arrows[0] and "|<- S. " in arrows[1], arrows
    # States sit beside the segment nearest in time: two may share a row ("FIN_WAIT2,TIME_WAIT").
    order = ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    left = [state for a in arrows for word in a.split("|")[0].split()[1:] for state in word.split(",")]
    assert left == order, left
    right = ",".join(a.split("|")[2].split()[-1] for a in arrows if a.split("|")[2].split())
    for state in ("SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"):
        assert state in right, (state, right)


def test_ladder_of_a_close_before_the_peers_fin():
    """close() before the peer's FIN: the socket is handed to a FIN_WAIT2 mini-socket at
    the ACK of our FIN, and enters TIME_WAIT at the peer's FIN 300 ms later. The ladder
    never says CLOSED for the hand-off, puts TIME_WAIT on the row of that FIN, and every
    arrow starts in the same column whatever the labels beside it."""
    require_root()
    from test_features import require_feature
    require_feature("tw_timer_hooks")
    require_feature("tw_fin_hook")
    with Netns() as ns:
        tracer = Synfin("-i", "lo", "--ladder", "--life", json_output=False, netns_exec=ns.name)
        run_peer("--scenario", "late-fin", "--hold-seconds", "0.3", netns=ns.name)
        status, out, err = tracer.stop()
    assert status == 0, err
    arrows = [line for line in out.splitlines() if "|-- " in line or "|<- " in line]
    assert len({a.index("|") for a in arrows}) == 1, "\n".join(arrows)
    left = [(a.split("|")[0].split()[1:], a) for a in arrows]
    states = [state for words, _ in left for word in words for state in word.split(",")]
    assert states == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"], \
        "\n".join(arrows)
    [(_, fin_row)] = [(w, a) for w, a in left if any("TIME_WAIT" in word for word in w)]
    assert "|<- F." in fin_row, "\n".join(arrows)


def test_busy_xdp_slot_is_refused_and_left_alone():
    require_root()
    with Netns() as ns:
        first = Synfin("-i", "lo", netns_exec=ns.name)
        done = subprocess.run(["ip", "netns", "exec", ns.name, SYNFIN, "-i", "lo"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 1, done
        assert "lo already has an XDP program" in done.stderr.splitlines()[0], done.stderr
        # The first one is untouched and still sees traffic.
        run_peer(netns=ns.name)
        records = first.records()
    assert any(r["type"] == "packet" for r in records)


def xdp_attached(netns, dev="lo"):
    out = subprocess.run(["ip", "-n", netns, "-d", "link", "show", dev], capture_output=True, text=True)
    return "xdp" in out.stdout


def wire_programs_loaded(ids=None):
    """synfin's packet programs still in the kernel: an attachment (XDP link, tcx link or
    clsact filter) keeps its program loaded after the process is gone. With ids, only
    those programs (another synfin on this machine may have its own of the same names)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    return {p.get("name") for p in json.loads(out.stdout or "[]")
            if ids is None or p.get("id") in ids} & {"wire_in", "wire_out"}


def synfin_pid(tracer):
    """`ip netns exec` execs synfin in place: the child is synfin itself."""
    with open(f"/proc/{tracer.proc.pid}/comm") as f:
        assert f.read().strip() == "synfin"
    return tracer.proc.pid


def test_kill_9_leaves_nothing_on_the_interface():
    require_root()
    with Netns() as ns:
        tracer = Synfin("-i", "lo", netns_exec=ns.name)
        ids = program_ids_held_by(synfin_pid(tracer))
        assert xdp_attached(ns.name) and wire_programs_loaded(ids) == {"wire_in", "wire_out"}
        os.kill(synfin_pid(tracer), signal.SIGKILL)
        tracer.proc.wait()
        deadline = time.monotonic() + 5
        while wire_programs_loaded(ids) and time.monotonic() < deadline:
            time.sleep(0.1)  # the kernel frees them once the last reference goes
        assert not xdp_attached(ns.name)
        if wire_programs_loaded(ids) == {"wire_out"}:
            raise Skip("this kernel has no tcx links: the clsact filter outlives kill -9 (see README)")
        assert not wire_programs_loaded(ids)


def test_clean_exit_detaches_what_it_attached():
    require_root()
    with Netns() as ns:
        tracer = Synfin("-i", "lo", netns_exec=ns.name)
        ids = program_ids_held_by(synfin_pid(tracer))
        assert wire_programs_loaded(ids) == {"wire_in", "wire_out"}
        tracer.stop(sig=signal.SIGTERM)
        assert not xdp_attached(ns.name) and not wire_programs_loaded(ids)


def test_unknown_interface_is_one_line():
    require_root()
    done = subprocess.run([SYNFIN, "-i", "nosuchif0"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stderr.startswith("synfin: no such interface 'nosuchif0'")
    assert len(done.stderr.splitlines()) == 1, done.stderr


class VethPair:
    """Two namespaces joined by a veth pair: A (10.77.0.1, the client's) and B (10.77.0.2)."""

    def __enter__(self):
        self.a, self.b = Netns().__enter__(), Netns().__enter__()
        cmds = [["ip", "link", "add", "sfa0", "netns", self.a.name, "type", "veth", "peer",
                 "name", "sfb0", "netns", self.b.name],
                ["ip", "-n", self.a.name, "addr", "add", "10.77.0.1/24", "dev", "sfa0"],
                ["ip", "-n", self.b.name, "addr", "add", "10.77.0.2/24", "dev", "sfb0"],
                ["ip", "-n", self.a.name, "link", "set", "sfa0", "up"],
                ["ip", "-n", self.b.name, "link", "set", "sfb0", "up"]]
        for cmd in cmds:
            subprocess.run(cmd, check=True)
        return self

    def __exit__(self, *exc):
        self.a.__exit__(*exc)
        self.b.__exit__(*exc)


def veth_connection(synfin_args, json_output=True):
    """One shutdown-first connection from A to B while synfin watches sfa0 inside A."""
    require_root()
    port = 42000 + os.getpid() % 1000
    with VethPair() as pair:
        server = subprocess.Popen(["ip", "netns", "exec", pair.b.name, sys.executable, PEER,
                                   "--scenario", "serve", "--bind", "10.77.0.2", "--port", str(port)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert "listening" in server.stdout.readline()
            tracer = Synfin("-i", "sfa0", *synfin_args, json_output=json_output,
                            netns_exec=pair.a.name)
            client = run_peer("--scenario", "connect", "--bind", "10.77.0.2", "--port", str(port),
                              "--capture", "--capture-iface", "sfa0", netns=pair.a.name)
            server.wait(timeout=20)
            status, out, err = tracer.stop()
        finally:
            server.kill()
    assert status == 0, err
    return port, client, out


def test_veth_packet_records_match_the_capture():
    port, client, out = veth_connection(())
    records = parse_records(out)
    got = [(r["sport"], r["dport"], r["flags"], r["seq"], r["ack"], r["dir"])
           for r in records if r["type"] == "packet"]
    want = lifecycle_segments(client["segments"], port)
    # On a veth end our own segments leave through TC ("out"), the peer's arrive through XDP ("in").
    assert [g[:5] for g in got] == want, (got, want)
    assert [g[5] for g in got] == ["out" if w[1] == port else "in" for w in want]
    [rec] = conn_records(records, sport=client["conns"][0]["client_port"])
    assert rec["states"][-1] == "TIME_WAIT" and rec["anomalies"] == [], rec
    assert [s["flags"] for s in rec["segments"]] == ["S", "S.", ".", "F.", "F.", "."]


def test_veth_ladder():
    _, _, out = veth_connection(("--ladder", "--life"), json_output=False)
    arrows = [line for line in out.splitlines() if "|-- " in line or "|<- " in line]
    assert [a.split("|")[1].split()[1] for a in arrows] == ["S", "S.", ".", "F.", "F.", "."], out
    # synfin traces every namespace: the server in B is one of ours too.
    assert "client 10.77.0.1:" in out and "server 10.77.0.2:" in out, out
    # The server's listener predates synfin; its close alone is not a connection.
    assert "(partial)" not in out, out
