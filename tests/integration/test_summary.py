"""--summary: histograms and counts that add up to the connections really made."""
import time

from lib import Netns, Synfin, require_root, run_peer


def summaries(*synfin_args, peers=(), json_output=True, until=None):
    """synfin --summary while the peers run; with until, it is stopped only once the
    records written so far satisfy until(records)."""
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), "--summary", *synfin_args,
                        json_output=json_output)
        for args in peers:
            run_peer(*args, netns=ns.name)
        if until:
            tracer.wait_for(until)
        if json_output:
            return tracer.records()
        return tracer.stop()


def total(hist):
    return sum(b["count"] for b in hist)


def test_summary_counts_every_connection_once():
    records = summaries(peers=[("--count", "5"), ("--scenario", "server-first", "--count", "3"),
                               ("--scenario", "refused",)])
    assert [r["type"] for r in records] == ["summary"], records
    s = records[0]
    # 5 + 3 connections, two sockets each, and one refused connect.
    assert s["connections"] == 17, s
    assert s["outcome"]["closed"] == 16 and s["outcome"]["refused"] == 1, s["outcome"]
    assert s["closer"]["local"] == 8 and s["closer"]["remote"] == 8 and s["closer"]["none"] == 1
    hist = s["hist"]
    assert total(hist["handshake_us_client"]) == 8 and total(hist["handshake_us_server"]) == 8
    assert total(hist["lifetime_us"]) == 17
    assert total(hist["close_wait_us"]) == 8
    ports = {(p["role"], p["count"]) for p in s["top_ports"]}
    assert ("server", 5) in ports and ("server", 3) in ports, s["top_ports"]
    assert s["top_talkers"][0] == {"addr": "127.0.0.1", "count": 17}


def two_periodic_summaries_with_every_connection(records):
    summ = [r for r in records if r["type"] == "summary"]
    return len(summ) >= 2 and sum(r["connections"] for r in summ) >= 4


def test_interval_prints_periodic_summaries():
    # Stopped once two periodic summaries hold all 4 sockets (not after a fixed -d 3: on a
    # loaded machine the peer's connections came after the last summary).
    records = summaries("--interval", "1", peers=[("--count", "2",)],
                        until=two_periodic_summaries_with_every_connection)
    summ = [r for r in records if r["type"] == "summary"]
    assert len(summ) >= 3, summ  # one a second, and one at exit
    assert sum(r["connections"] for r in summ) == 4
    assert all(900_000_000 <= r["interval_ns"] <= 1_500_000_000 for r in summ[:-1]), summ


def test_each_periodic_summary_goes_out_when_its_interval_ends():
    """To a file or pipe synfin writes in blocks, at most a second apart; a summary goes out
    at once: its reader is waiting for it at the interval's end, not a second later."""
    require_root()
    seen = {}  # ts_ns of each summary -> when it was first in the file (CLOCK_MONOTONIC, as ts_ns)

    def three_summaries(records):
        now = time.monotonic_ns()
        for r in records:
            if r["type"] == "summary":
                seen.setdefault(r["ts_ns"], now)
        return len(seen) >= 3

    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), "--summary", "--interval", "1")
        tracer.wait_for(three_summaries, what="three periodic summaries")
        status, _, err = tracer.stop()
    assert status == 0, err
    late_ms = [(seen[ts] - ts) // 1_000_000 for ts in sorted(seen)]
    assert all(0 <= ms < 500 for ms in late_ms), late_ms


def test_text_summary_looks_like_bcc_histograms():
    status, out, err = summaries(peers=[("--count", "4",)], json_output=False)
    assert status == 0, err
    assert "connections: 8" in out
    assert "     usecs               : count     distribution" in out
    assert "|****************************************|" in out  # the fullest bucket
    assert "PORT   ROLE     CONNECTIONS" in out
