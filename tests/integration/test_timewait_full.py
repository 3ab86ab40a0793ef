"""TIME_WAIT on a host as it is (issue 13): a namespace whose TIME_WAIT table is full.
Past net.ipv4.tcp_max_tw_buckets the kernel makes no time-wait socket for a close; the
lifecycle record must say so ("time_wait":"skipped", no TIME_WAIT among its states) exactly
as often as the kernel's own TcpExtTCPTimeWaitOverflow counter grew, and say "entered" for
exactly the sockets `ss state time-wait` lists. Every one entered is followed to its end:
deleting the namespace purges them, each with its time_wait_end."""
import subprocess

from lib import (Netns, Synfin, conn_records, nstat, require_root, run_peer,
                 time_wait_tuples)
from test_features import require_feature

BUCKETS = 5
CONNECTIONS = 12


def overflows(netns):
    return nstat(netns, "TcpExtTCPTimeWaitOverflow")["TcpExtTCPTimeWaitOverflow"]


def test_full_time_wait_table_is_reported_as_the_kernel_counts_it():
    require_root()
    require_feature("tw_timer_hooks")
    with Netns() as ns:
        subprocess.run(["ip", "netns", "exec", ns.name, "sysctl", "-qw",
                        f"net.ipv4.tcp_max_tw_buckets={BUCKETS}"], check=True)
        tracer = Synfin("--life", "--netns", str(ns.inode))
        before = overflows(ns.name)
        # shutdown: the client reads the server's FIN before close(), so each client
        # socket goes FIN_WAIT2 -> TIME_WAIT (or, table full, to nothing).
        peer = run_peer("--scenario", "shutdown", "--count", str(CONNECTIONS), netns=ns.name)
        port = peer["listen_port"]
        records = tracer.wait_for(
            lambda rs: len([r for r in conn_records(rs) if r["dport"] == port]) >= CONNECTIONS,
            what=f"{CONNECTIONS} client lifecycle records")
        skipped_by_kernel = overflows(ns.name) - before
        listed = {lport for _, lport in time_wait_tuples(ns.name, port)}
    # The namespace is gone: every TIME_WAIT synfin followed ends, early.
    records = tracer.wait_for(
        lambda rs: len([r for r in rs if r["type"] == "time_wait_end"]) >= len(listed),
        what="a time_wait_end for every TIME_WAIT socket")
    status, _, err = tracer.stop()
    assert status == 0, err

    clients = [r for r in conn_records(records) if r["dport"] == port]
    entered = {r["sport"] for r in clients if r["time_wait"] == "entered"}
    for r in clients:
        assert r["sport"] in entered or r["time_wait"] == "skipped", r
    skipped = [r for r in clients if r["time_wait"] == "skipped"]
    assert len(clients) == CONNECTIONS, clients
    assert len(listed) == BUCKETS and skipped_by_kernel == CONNECTIONS - BUCKETS, \
        (listed, skipped_by_kernel)  # the test's own premise: the table did fill
    assert entered == listed, (entered, listed)
    assert len(skipped) == skipped_by_kernel, skipped
    for r in skipped:
        assert r["states"][-1] == "FIN_WAIT2", r  # no TIME_WAIT: the kernel made none
        assert r["outcome"] == "closed" and r["closer"] == "local", r
    ends = [r for r in records if r["type"] == "time_wait_end" and r["dport"] == port]
    assert {r["sport"] for r in ends} == entered, ends
    for r in ends:  # the namespace deleted: its purge seen through the timers
        assert (r["end"], r["substate"]) == ("netns_gone", "TIME_WAIT"), r
    assert "connections got no TIME_WAIT" in err, err
