"""The handshake's final ACK dropped by a firewall rule: the client is ESTABLISHED, the
server's request socket retransmits its SYN-ACK and the client answers each with an ACK the
rule drops again, until the client's first data completes the handshake. The lifecycle
names the dropped ACKs, as many as the rule's own counter says, and nothing else's."""
import re
import subprocess
import sys

import pytest

from lib import Netns, Synfin, conn_records, require_root
from test_features import witnessed
from test_wire import VethPair

SERVER = r"""
import socket, sys
ls = socket.socket()
ls.bind((sys.argv[1], 0))
ls.listen(8)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()  # once the client's data has completed the handshake
assert c.recv(1) == b"x"
c.recv(1)  # until the client's RST
c.close()
"""
CLIENT = r"""
import socket, struct, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))  # ESTABLISHED at the SYN-ACK
print(c.getsockname()[1], flush=True)
time.sleep(1.6)  # the server's first SYN-ACK retransmission (1 s) is ACKed, and dropped
c.sendall(b"x")  # data, not a bare ACK: it passes the rule and completes the handshake
time.sleep(0.3)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()  # RST: the client ends first, with no ACK of anything the server sends
"""


def drop_bare_acks(ns, hook, port):
    rules = (f"table inet synfin_hs {{\n chain c {{\n  type filter hook {hook} priority 0;\n"
             f"  tcp dport {port} tcp flags == ack counter drop\n }}\n}}\n")
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True,
                   check=True)


def rule_drops(ns):
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "synfin_hs"],
                         capture_output=True, text=True, check=True).stdout
    return int(re.search(r"counter packets (\d+)", out).group(1))


def one_connection(server_ns, client_ns, addr, hook):
    """Runs it with the rule in `hook` of the server's namespace (input) or the client's
    (output); the lifecycles and the rule's count."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", SERVER,
                               addr], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        rule_ns = server_ns if hook == "input" else client_ns
        drop_bare_acks(rule_ns, hook, port)
        tracer = Synfin("--life", "-P", str(port))
        client = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", CLIENT,
                                 addr, str(port)], capture_output=True, text=True, timeout=30)
        assert client.returncode == 0, client.stderr
        server.wait(timeout=20)
        records = tracer.wait_for(lambda rs: len(conn_records(rs, dport=port)) == 1 and
                                  len(conn_records(rs, sport=port)) == 1,
                                  what="both lifecycles")
        status, _, err = tracer.stop()
        assert status == 0, err
        return records, port, int(client.stdout), rule_drops(rule_ns)
    finally:
        server.kill()


def require_drop_reasons():
    require_root()
    if not witnessed()["drop_reasons"]:
        pytest.skip("this kernel's kfree_skb has no drop reason (kernel feature drop_reasons)")


def test_handshake_acks_dropped_going_out_are_the_clients():
    """Loopback, the rule on output: the client's own ACKs, dropped as it sends them."""
    require_drop_reasons()
    with Netns() as ns:
        records, port, cport, dropped = one_connection(ns.name, ns.name, "127.0.0.1", "output")
    [client] = conn_records(records, sport=cport, dport=port)
    [server] = conn_records(records, sport=port, dport=cport)
    assert dropped >= 2, dropped  # the first ACK and the answer to the retransmitted SYN-ACK
    assert client["drops"] == [{"reason": "netfilter_drop", "segment": "ACK", "direction": "sent",
                                "count": dropped}], client
    assert server["drops"] == [], server  # the client's lifecycle ended first and took them
    assert server["synack_retrans"] >= 1 and server["handshake_us"] >= 1_000_000, server


def test_handshake_acks_dropped_coming_in_are_the_servers():
    """Across a veth pair, the rule on the server's input: early demux put the request
    socket on each ACK, and the server's lifecycle (in its own namespace) has them."""
    require_drop_reasons()
    with VethPair() as pair:
        records, port, cport, dropped = one_connection(pair.b.name, pair.a.name, "10.77.0.2",
                                                       "input")
    [client] = conn_records(records, sport=cport, dport=port)
    [server] = conn_records(records, sport=port, dport=cport)
    assert dropped >= 2, dropped
    assert server["drops"] == [{"reason": "netfilter_drop", "segment": "ACK",
                                "direction": "received", "count": dropped}], server
    assert client["drops"] == [], client  # its namespace dropped nothing
    assert server["synack_retrans"] >= 1 and server["handshake_us"] >= 1_000_000, server
