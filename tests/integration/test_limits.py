"""Bounded resources: a full ring buffer is reported, a full tracker evicts and says so."""
import os
import re
import signal

from lib import Netns, Synfin, require_root, run_peer


def overflow_the_ring(ns, on_ready=None):
    """4 KiB holds ~40 records: stop the reader, make 20 connections (~200 records), resume."""
    tracer = Synfin("--netns", str(ns.inode), "--ringbuf-size", "4")
    if on_ready:
        on_ready(tracer)
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


def reader_accounts(pid):
    """The reader thread's (synfin's main thread) CPU ms so far and its forced switches, as
    /proc tells them: the witness for what synfin says of itself."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ms = (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/task/{pid}/status") as f:
        forced = next(int(l.split()[1]) for l in f if l.startswith("nonvoluntary_ctxt_switches"))
    return ms, forced


def test_lost_events_come_with_the_readers_own_accounts():
    """With events lost, synfin says what its reader got of the CPU while tracing: user and
    kernel time and preemptions, within what /proc counted for that thread from its ready
    line on (its start, before tracing, left out)."""
    require_root()
    at_ready = {}
    with Netns() as ns:
        tracer = overflow_the_ring(ns, lambda t: at_ready.update(
            zip(("ms", "forced"), reader_accounts(t.proc.pid))))
        tracer.wait_for(lambda recs: any(r["type"] == "lost" for r in recs), what="lost record")
        before_ms, before_forced = reader_accounts(tracer.proc.pid)
        status, _, err = tracer.stop()
    before_ms -= at_ready["ms"]
    before_forced -= at_ready["forced"]
    assert status == 0, err
    match = re.search(r"while tracing, the reader ran (\d+) ms in user space and (\d+) ms in "
                      r"the kernel, and was preempted (\d+) times", err)
    assert match, err
    user_ms, kernel_ms, preempted = (int(x) for x in match.groups())
    # Draining and the exit summary come after the witness's look: a few ms more at most.
    assert user_ms + kernel_ms <= before_ms + 50, (user_ms, kernel_ms, before_ms)
    assert preempted <= before_forced + 5, (preempted, before_forced)


def test_no_accounts_without_a_loss():
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode))
        run_peer("--count", "3", netns=ns.name)
        status, _, err = tracer.stop()
    assert status == 0 and "the reader ran" not in err, err


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
