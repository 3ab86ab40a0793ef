"""Every transition of both sides of real connections, and the lifecycle
records synfin builds from them, checked against what the peer really did."""
from lib import (Netns, Synfin, by_socket, conn_records, find_socket, require_root, run_peer,
                 synfin_programs_loaded, transitions)

CLIENT_FIRST_CLIENT = [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED"),
                       ("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2"),
                       ("FIN_WAIT2", "CLOSE")]
CLIENT_FIRST_SERVER = [("LISTEN", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED"),
                       ("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"),
                       ("LAST_ACK", "CLOSE")]


def trace_in_netns(peer_args, synfin_args=(), expect_programs=None):
    """Runs peer.py inside a fresh namespace while synfin watches only that namespace."""
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), *synfin_args)
        try:
            if expect_programs is not None:
                loaded = synfin_programs_loaded(pid=tracer.proc.pid)
                assert loaded == expect_programs, f"attached {loaded}, want {expect_programs}"
            peer = run_peer(*peer_args, netns=ns.name)
        except BaseException:
            tracer.kill()
            raise
        return peer, tracer.records()


def assert_owner(record, peer):
    assert record["pid"] == peer["pid"], f"owner pid {record['pid']} != peer {peer['pid']}: {record}"
    assert record["comm"] == peer["comm"], f"owner comm {record['comm']!r} != {peer['comm']!r}"


def assert_active_close_states(rec, through_fin_wait2):
    """close() leaves an orphan: whether the peer's FIN beat the ACK of ours decides if the
    socket met TIME_WAIT itself or was handed to a time-wait mini-socket in FIN_WAIT2."""
    if rec["time_wait"] == "entered":
        assert rec["states"] == through_fin_wait2 + ["TIME_WAIT"], rec
    else:
        assert rec["time_wait"] == "fin_wait2" and rec["states"] == through_fin_wait2, rec
    assert rec["closer"] == "local" and rec["outcome"] == "closed", rec


def check_client_first(peer, records, family):
    lport, cport = peer["listen_port"], peer["conns"][0]["client_port"]
    client = find_socket(records, sport=cport, dport=lport)
    server = find_socket(records, sport=lport, dport=cport)
    assert transitions(client) == CLIENT_FIRST_CLIENT, transitions(client)
    assert transitions(server) == CLIENT_FIRST_SERVER, transitions(server)
    for event in client + server:
        assert_owner(event, peer)
        assert event["family"] == family
    [crec] = conn_records(records, sport=cport)
    [srec] = conn_records(records, sport=lport, dport=cport)
    assert crec["role"] == "client" and srec["role"] == "server"
    assert_active_close_states(crec, ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"])
    assert srec["states"] == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK"], srec
    assert crec["partial"] is False and srec["partial"] is False
    # The handshake latency is the time spent in SYN_SENT, as the transitions measured it.
    assert crec["handshake_us"] == client[1]["delta_us"] == crec["state_us"][0]
    # Server: the SYN-ACK RTT sample the kernel seeded the child with (see README).
    assert crec["handshake_us"] >= 0 and 0 < srec["handshake_us"] < 1_000_000, srec
    # The duration runs to TIME_WAIT: the last transition (CLOSE), or later, the peer's FIN
    # at the FIN_WAIT2 mini-socket the socket was handed to at that CLOSE. Either way it is
    # the time spent in the states before TIME_WAIT.
    span_us = (client[-1]["ts_ns"] - client[0]["ts_ns"]) // 1000
    in_states_us = sum(us for state, us in zip(crec["states"], crec["state_us"])
                       if state != "TIME_WAIT")
    assert crec["duration_us"] >= span_us - 1, (crec["duration_us"], span_us)
    assert abs(crec["duration_us"] - in_states_us) <= len(crec["states"]), crec
    assert set(crec["teardown_us"]) == {"FIN_WAIT1", "FIN_WAIT2"}
    assert set(srec["teardown_us"]) == {"CLOSE_WAIT", "LAST_ACK"}
    assert_owner(crec, peer)
    assert_owner(srec, peer)
    # A clean teardown: nothing of it dropped (where the kernel names drops; its own
    # queues emptied at close are not drops).
    assert crec["drops"] in ([], None) and srec["drops"] == crec["drops"], (crec, srec)
    return crec, srec


def test_ipv4_client_first_close_every_transition_of_both_sides():
    # This kernel takes tp_btf, so the probe must pick it.
    peer, records = trace_in_netns(["--family", "4"], expect_programs={"set_state_btf"})
    crec, _ = check_client_first(peer, records, "ipv4")
    assert crec["saddr"] == crec["daddr"] == "127.0.0.1"
    assert crec["sport"] == peer["conns"][0]["client_port"]
    assert crec["dport"] == peer["listen_port"]


def test_ipv6_client_first_close_on_loopback():
    peer, records = trace_in_netns(["--family", "6"])
    crec, srec = check_client_first(peer, records, "ipv6")
    assert crec["saddr"] == crec["daddr"] == "::1"
    assert srec["family"] == "ipv6"


def test_classic_tracepoint_twin_sees_the_same_transitions():
    peer, records = trace_in_netns(["--family", "4"], ["--hook", "tracepoint"],
                                   expect_programs={"set_state_tp"})
    check_client_first(peer, records, "ipv4")


def test_listener_lifecycle_is_reported_with_owner():
    peer, records = trace_in_netns(["--family", "4"])
    # The listening socket: the one that entered LISTEN. (On 6.1 an accepted child's first
    # event still shows the listener's tuple, so the tuple alone does not tell them apart.)
    [listener] = [evs for evs in by_socket(records).values()
                  if evs[0]["new"] == "LISTEN" and evs[0]["sport"] == peer["listen_port"]]
    assert transitions(listener) == [("CLOSE", "LISTEN"), ("LISTEN", "CLOSE")], transitions(listener)
    for event in listener:
        assert_owner(event, peer)
    assert not conn_records(records, sport=peer["listen_port"], dport=0), "listeners are not connections"


def test_server_first_close_mirrors_the_teardown():
    peer, records = trace_in_netns(["--scenario", "server-first"])
    lport, cport = peer["listen_port"], peer["conns"][0]["client_port"]
    client = find_socket(records, sport=cport, dport=lport)
    server = find_socket(records, sport=lport, dport=cport)
    assert transitions(server)[2:] == [("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2"),
                                       ("FIN_WAIT2", "CLOSE")], transitions(server)
    assert transitions(client)[2:] == [("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"),
                                       ("LAST_ACK", "CLOSE")], transitions(client)
    [srec] = conn_records(records, sport=lport, dport=cport)
    assert_active_close_states(srec, ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"])


def test_reset_close_skips_the_teardown_states():
    peer, records = trace_in_netns(["--scenario", "reset"])
    lport, cport = peer["listen_port"], peer["conns"][0]["client_port"]
    client = find_socket(records, sport=cport, dport=lport)
    server = find_socket(records, sport=lport, dport=cport)
    assert transitions(client) == [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED"),
                                   ("ESTABLISHED", "CLOSE")], transitions(client)
    assert transitions(server) == [("LISTEN", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED"),
                                   ("ESTABLISHED", "CLOSE")], transitions(server)
    [crec] = conn_records(records, sport=cport)
    assert crec["states"] == ["SYN_SENT", "ESTABLISHED"] and crec["teardown_us"] == {}


def test_refused_connect_is_a_lifecycle_of_one_state():
    peer, records = trace_in_netns(["--scenario", "refused"])
    port = peer["conns"][0]["refused_port"]
    client = find_socket(records, dport=port)
    assert transitions(client) == [("CLOSE", "SYN_SENT"), ("SYN_SENT", "CLOSE")], transitions(client)
    assert_owner(client[0], peer)
    [rec] = conn_records(records, dport=port)
    assert rec["role"] == "client" and rec["states"] == ["SYN_SENT"]
    assert rec["handshake_us"] is None
    assert_owner(rec, peer)


def test_softirq_transitions_never_report_swapper():
    peer, records = trace_in_netns(["--count", "20"])
    states = [r for r in records if r["type"] == "state"]
    assert len(states) == 20 * 10 + 2, len(states)
    for r in records:
        if "comm" in r:
            assert r["comm"] == peer["comm"] and r["pid"] == peer["pid"], r


def test_every_record_has_type_and_timestamp_in_order():
    _, records = trace_in_netns(["--count", "3"])
    assert records and all(isinstance(r["type"], str) and r["ts_ns"] > 0 for r in records)
    stamps = [r["ts_ns"] for r in records if r["type"] == "state"]
    assert stamps == sorted(stamps)


def test_life_mode_prints_only_lifecycle_records():
    peer, records = trace_in_netns(["--count", "2"], ["--life"])
    assert {r["type"] for r in records} == {"conn"}, {r["type"] for r in records}
    assert len(records) == 4
    assert sorted(r["role"] for r in records) == ["client", "client", "server", "server"]
