"""Why connections were reset, as the kernel says it: every reset lifecycle names the
reason the sending kernel gave (tcp:tcp_send_reset), on both ends when both are on this
host, and RSTs sent for no socket get records of their own. The witness is the kernel's
own trace of the same tracepoint through tracefs (a separate instance, its own buffer)
and, for the segments, an AF_PACKET capture."""
import os
import re

import pytest

from lib import Netns, Synfin, parse_records, require_root, run_peer
from test_features import require_feature
from test_teardown import both_records

TRACEFS = "/sys/kernel/tracing"
RST = 0x04
SENT = re.compile(r"tcp_send_reset: .*src=\S+:(\d+) dest=\S+:(\d+) state=\S+ reason=(\w+)")


class KernelResetTrace:
    """tcp:tcp_send_reset through a tracefs instance of our own: (src port, dest port,
    reason in lower case) for each RST the kernel sent while it was on."""

    def __init__(self):
        if not os.path.isdir(os.path.join(TRACEFS, "instances")):
            pytest.skip(f"no tracefs at {TRACEFS}")
        self.dir = os.path.join(TRACEFS, "instances", f"synfin-test-{os.getpid()}")
        os.mkdir(self.dir)
        self._enable("1")

    def _enable(self, value):
        with open(os.path.join(self.dir, "events/tcp/tcp_send_reset/enable"), "w") as f:
            f.write(value)

    def sent(self):
        self._enable("0")
        with open(os.path.join(self.dir, "trace")) as f:
            found = [(int(m[1]), int(m[2]), m[3].lower()) for m in map(SENT.search, f) if m]
        os.rmdir(self.dir)
        return found


def trace_resets(*peer_args):
    require_root()
    require_feature("rst_reason")
    with Netns() as ns:
        kernel = KernelResetTrace()
        tracer = Synfin("--netns", str(ns.inode))
        try:
            peer = run_peer(*peer_args, netns=ns.name)
        finally:
            status, out, err = tracer.stop()
            sent = kernel.sent()
    assert status == 0, err
    return peer, parse_records(out), sent


def test_linger_reset_names_the_kernels_reason_on_both_ends():
    peer, records, sent = trace_resets("--scenario", "reset")
    client, server = both_records(peer, records)
    [reason] = [r for src, dst, r in sent if (src, dst) == (client["sport"], client["dport"])]
    assert (client["outcome"], client["reset_by"], client["reset_reason"]) == \
        ("reset", "local", reason), client
    assert (server["outcome"], server["reset_by"], server["reset_reason"]) == \
        ("reset", "remote", reason), server
    assert 0 <= client["reset_at_us"] <= client["duration_us"], client


def test_data_after_our_close_is_reset_by_the_mini_socket():
    """close() first, then the peer sends data: the client's FIN_WAIT2 mini-socket answers
    with a RST. Both ends say reset, by the client, for the kernel's reason."""
    require_feature("tw_fin_hook")
    peer, records, sent = trace_resets("--scenario", "late-data", "--hold-seconds", "0.1",
                                       "--capture")
    client, server = both_records(peer, records)
    cport, lport = client["sport"], client["dport"]
    reasons = [r for src, dst, r in sent if (src, dst) == (cport, lport)]
    assert reasons, sent
    assert (client["outcome"], client["reset_by"], client["reset_reason"]) == \
        ("reset", "local", reasons[0]), client
    assert client["time_wait"] == "fin_wait2", client  # handed over before the data came
    assert (server["outcome"], server["reset_by"], server["reset_reason"]) == \
        ("reset", "remote", reasons[0]), server
    wire_rsts = [s for s in peer["segments"] if (s["sport"], s["dport"]) == (cport, lport)
                 and s["flags"] & RST]
    assert len(wire_rsts) == len(reasons), (wire_rsts, reasons)


def test_rst_for_no_socket_is_a_record_of_its_own():
    peer, records, sent = trace_resets("--scenario", "refused", "--count", "3")
    ports = [c["refused_port"] for c in peer["conns"]]
    rsts = [r for r in records if r["type"] == "rst"]
    assert sorted(r["sport"] for r in rsts) == sorted(ports), rsts
    for r in rsts:
        assert (r["sport"], r["dport"], r["reason"]) in sent, (r, sent)
        assert r["netns"] and r["family"] == "ipv4"
    refused = [r for r in records if r["type"] == "conn" and r["outcome"] == "refused"]
    assert len(refused) == 3, refused


def test_refusals_are_counted_per_port_in_the_summary():
    require_root()
    require_feature("rst_reason")
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), "--summary")
        peer = run_peer("--scenario", "refused", "--count", "3", netns=ns.name)
        status, out, err = tracer.stop()
    assert status == 0, err
    [summary] = [r for r in parse_records(out) if r["type"] == "summary"]
    refused = {(p["port"], p["count"]) for p in summary["top_ports"] if p["role"] == "refused"}
    assert refused == {(c["refused_port"], 1) for c in peer["conns"]}, summary["top_ports"]


def test_close_with_unread_data_is_said_in_words():
    """A close() with data still unread resets the connection (RFC 2525); the text line
    says so in the kernel's words, and the JSON of the same run carries the reason."""
    require_root()
    require_feature("rst_reason")
    with Netns() as ns:
        kernel = KernelResetTrace()
        text = Synfin("--netns", str(ns.inode), json_output=False)
        tracer = Synfin("--netns", str(ns.inode))
        peer = run_peer("--scenario", "unread", netns=ns.name)
        _, lines, _ = text.stop()
        status, out, err = tracer.stop()
        sent = kernel.sent()
    assert status == 0, err
    client, server = both_records(peer, parse_records(out))
    [reason] = [r for src, dst, r in sent if (src, dst) == (client["sport"], client["dport"])]
    assert client["reset_reason"] == server["reset_reason"] == reason, (client, server)
    words = reason.removeprefix("tcp_").replace("_", " ")
    said = [line for line in lines.splitlines() if "= client reset by local: " in line]
    assert len(said) == 1 and f"= client reset by local: {words}:" in said[0], lines


def test_listener_closed_with_queued_children_resets_each_as_both_ends_say():
    """A listener closed before accept(): the kernel resets each child waiting in its queue.
    Every child (server side, reset by local) and its client (reset by remote) carry the
    reason the kernel traced for that RST."""
    peer, records, sent = trace_resets("--scenario", "queued", "--count", "3")
    lport = peer["listen_port"]
    for conn in peer["conns"]:
        client, server = both_records({"listen_port": lport, "conns": [conn]}, records)
        [reason] = [r for src, dst, r in sent if (src, dst) == (lport, conn["client_port"])]
        assert (server["outcome"], server["reset_by"], server["reset_reason"]) == \
            ("reset", "local", reason), server
        assert (client["outcome"], client["reset_by"], client["reset_reason"]) == \
            ("reset", "remote", reason), client
