"""Bounded resources: a full ring buffer is reported, a full tracker evicts and says so."""
import signal

from lib import Netns, Synfin, require_root, run_peer


def overflow_the_ring(ns):
    """4 KiB holds ~40 records: stop the reader, make 20 connections (~200 records), resume."""
    tracer = Synfin("--netns", str(ns.inode), "--ringbuf-size", "4")
    tracer.proc.send_signal(signal.SIGSTOP)
    try:
        run_peer("--count", "20", netns=ns.name)
    finally:
        tracer.proc.send_signal(signal.SIGCONT)
    return tracer


def test_full_ring_buffer_is_reported_as_lost_events():
    require_root()
    with Netns() as ns:
        tracer = overflow_the_ring(ns)
        # The counter check (every 0.5 s) after the reader resumes reports the loss.
        tracer.wait_for(lambda recs: any(r["type"] == "lost" for r in recs), what="lost record")
        records = tracer.records()
    lost = [r for r in records if r["type"] == "lost"]
    states = [r for r in records if r["type"] == "state"]
    assert lost, "no lost record although the ring overflowed"
    assert lost[-1]["total"] == sum(r["count"] for r in lost)
    # Every state record is either delivered or counted as lost: 20 connections x 10 +
    # listener 2 (the TIME_WAIT timer records that share the rings are counted apart).
    assert len(states) + lost[-1]["total"] == 20 * 10 + 2, (len(states), lost[-1]["total"])


def test_lost_events_are_summarised_on_stderr():
    require_root()
    with Netns() as ns:
        status, _, err = overflow_the_ring(ns).stop()
    assert status == 0
    assert "events lost (ring buffer full): try a larger --ringbuf-size" in err, err


def test_more_connections_than_max_conns_evicts_the_oldest():
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), "--max-conns", "16")
        run_peer("--scenario", "hold", "--count", "20", netns=ns.name)
        status, out, err = tracer.stop()
    assert status == 0
    # 41 sockets alive at once (listener + 20 pairs) in a table of 16: at least 25 evicted.
    line = [x for x in err.splitlines() if "connections evicted" in x]
    assert line, err
    evicted = int(line[0].split()[1])
    assert evicted >= 25, evicted
    # Evicted sockets come back as partial lifecycles when they close.
    assert '"partial":true' in out
