"""Filters applied in the kernel really filter: only the matching sockets'
events come out, and all of their events do."""
import os
import uuid

from lib import (Netns, Skip, Synfin, by_socket, finish_waiting_peer, require_root, run_peer,
                 start_waiting_peer)


def sockets_seen(records):
    return {(e["sport"], e["dport"]) for evs in by_socket(records).values() for e in evs
            if e["sport"] and e["dport"]}


def peer_ports(peer):
    lport = peer["listen_port"]
    ports = set()
    for c in peer["conns"]:
        ports |= {(c["client_port"], lport), (lport, c["client_port"])}
    return ports


def test_port_filter_keeps_only_that_listener():
    require_root()
    with Netns() as ns:
        wanted_port = 20000 + os.getpid() % 10000
        tracer = Synfin("--netns", str(ns.inode), "-P", str(wanted_port))
        other = run_peer("--count", "2", netns=ns.name)
        wanted = run_peer("--count", "2", "--port", str(wanted_port), netns=ns.name)
        records = tracer.records()
    seen = sockets_seen(records)
    assert seen == peer_ports(wanted), (seen, peer_ports(wanted))
    assert not seen & peer_ports(other)
    assert len([r for r in records if r["type"] == "conn"]) == 4


def test_dport_filter_keeps_only_the_client_side():
    require_root()
    with Netns() as ns:
        port = 30000 + os.getpid() % 10000
        tracer = Synfin("--netns", str(ns.inode), "--dport", str(port))
        run_peer("--port", str(port), netns=ns.name)
        records = tracer.records()
    conns = [r for r in records if r["type"] == "conn"]
    assert [c["role"] for c in conns] == ["client"], conns
    assert all(r["dport"] == port for r in records if r["type"] == "state" and r["new"] != "SYN_SENT" or r["type"] == "conn")


def test_family_filter_ipv6_only():
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), "-6")
        run_peer("--family", "4", netns=ns.name)
        v6 = run_peer("--family", "6", netns=ns.name)
        records = tracer.records()
    assert records and {r["family"] for r in records} == {"ipv6"}
    assert sockets_seen(records) == peer_ports(v6)


def test_netns_filter_ignores_other_namespaces():
    require_root()
    with Netns() as watched, Netns() as other:
        tracer = Synfin("--netns", f"/run/netns/{watched.name}")
        run_peer(netns=other.name)
        peer = run_peer(netns=watched.name)
        records = tracer.records()
    assert {r["netns"] for r in records} == {watched.inode}
    assert sockets_seen(records) == peer_ports(peer)


def test_pid_filter_follows_the_owner_through_softirq_transitions():
    require_root()
    with Netns() as ns:
        mine, mine_pid = start_waiting_peer(ns.name, "--count", "3")
        tracer = Synfin("--netns", str(ns.inode), "-p", str(mine_pid))
        run_peer("--count", "3", netns=ns.name)  # someone else's connections
        peer = finish_waiting_peer(mine)
        records = tracer.records()
    assert peer["pid"] == mine_pid
    assert {r["pid"] for r in records} == {mine_pid}
    # All ten transitions of each connection, softirq ones included, plus the listener's two.
    assert len([r for r in records if r["type"] == "state"]) == 3 * 10 + 2
    assert sockets_seen(records) == peer_ports(peer)


def cgroup2_root():
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return mnt
    raise Skip("no cgroup v2 hierarchy mounted")


def test_cgroup_filter_keeps_that_subtree():
    require_root()
    root = cgroup2_root()
    parent = os.path.join(root, "synfin-test-" + uuid.uuid4().hex[:8])
    child = os.path.join(parent, "inner")
    os.makedirs(child)
    try:
        with Netns() as ns:
            tracer = Synfin("--netns", str(ns.inode), "--cgroup", parent)
            run_peer(netns=ns.name)  # outside the cgroup
            # `ip netns exec` remounts /sys, so the test (not the peer) moves it into the cgroup.
            proc, pid = start_waiting_peer(ns.name)
            with open(os.path.join(child, "cgroup.procs"), "w") as f:
                f.write(str(pid))
            inside = finish_waiting_peer(proc)  # below it
            records = tracer.records()
        cg_id = os.stat(child).st_ino
    finally:
        os.rmdir(child)
        os.rmdir(parent)
    assert records, "nothing traced from inside the cgroup"
    assert {r["cgroup_id"] for r in records} == {cg_id}
    assert sockets_seen(records) == peer_ports(inside)
