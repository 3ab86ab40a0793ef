"""The two twins of the state program, tp_btf and the classic tracepoint (which a kernel
without tp_btf on this tracepoint gets), must give the same records, filters included."""
from lib import (TWO_TRACERS_US, finish_waiting_peer, require_root, start_waiting_peer,
                 synfin_programs_loaded)

# Each program stamps its own time, so durations may differ by up to TWO_TRACERS_US.
TIME_FIELDS = {"ts_ns", "duration_us", "handshake_us", "state_us", "teardown_us", "reset_at_us",
               "accept_wait_us"}

SCENARIOS = [
    ("--scenario", "client-first", "--count", "3"),
    ("--scenario", "server-first"),
    ("--scenario", "reset"),
    ("--scenario", "refused"),
    ("--scenario", "client-first", "--family", "6"),
]


def lifecycles(records):
    conns = [r for r in records if r["type"] == "conn"]
    return {(r["role"], r["family"], r["sport"], r["dport"]): r for r in conns}


def assert_close_in_time(key, field, a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), (key, field, a, b)
        for k in a:
            assert_close_in_time(key, f"{field}.{k}", a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b), (key, field, a, b)
        for x, y in zip(a, b):
            assert_close_in_time(key, field, x, y)
    elif a is None or b is None:
        assert a == b, (key, field, a, b)
    elif field != "ts_ns":
        assert abs(a - b) <= TWO_TRACERS_US, (key, field, a, b)


def twins(tracer, *args):
    """synfin on each hook with the same options; checks each loaded the program it says."""
    btf = tracer(*args, "--hook", "tp_btf")
    classic = tracer(*args, "--hook", "tracepoint")
    assert synfin_programs_loaded(btf.proc.pid) == {"set_state_btf"}
    assert synfin_programs_loaded(classic.proc.pid) == {"set_state_tp"}
    return btf, classic


def states(records):
    """State records without their stamps (each program takes its own)."""
    return sorted((r["sk"], r["old"], r["new"], r["sport"], r["dport"], r["pid"], r["comm"])
                  for r in records if r["type"] == "state")


def test_classic_tracepoint_gives_the_tp_btf_records(tracer, peer):
    require_root()
    btf, classic = twins(tracer)
    for args in SCENARIOS:
        peer(*args)
    want, got = btf.records(), classic.records()
    assert states(got) == states(want)
    got, want = lifecycles(got), lifecycles(want)
    # 3 + 1 client/server pairs, one reset pair, one refused client, one IPv6 pair
    assert len(want) == 13, sorted(map(str, want))
    compare_lifecycles(got, want)


def compare_lifecycles(got, want):
    assert got.keys() == want.keys(), (sorted(map(str, got)), sorted(map(str, want)))
    for key, rec in want.items():
        other = got[key]
        assert rec.keys() == other.keys(), key
        for field in rec:
            if field in TIME_FIELDS:
                assert_close_in_time(key, field, other[field], rec[field])
            else:
                assert other[field] == rec[field], (key, field, other[field], rec[field])


def test_pid_filter_keeps_the_same_lifecycles_on_both_hooks(netns, tracer, peer):
    """With -p the kernel keeps every socket's owner (socket storage on tp_btf, a hash on
    the classic twin), so softirq transitions are kept too: both keep the same connections."""
    require_root()
    waiting, pid = start_waiting_peer(netns.name, "--count", "2")
    btf, classic = twins(tracer, "-p", str(pid), "--life")
    finish_waiting_peer(waiting)
    peer("--count", "2")  # another process: filtered out
    want, got = lifecycles(btf.records()), lifecycles(classic.records())
    assert len(want) == 4 and all(r["pid"] == pid for r in want.values()), want
    compare_lifecycles(got, want)
