"""The overhead harness (make bench) in miniature: a few hundred loopback
connections, one round, no tracer and synfin (--json, --life --json) only, in a
fresh namespace and in one whose TIME_WAIT table is full (issue 13). synfin must
lose nothing in either, follow every TIME_WAIT the kernel made to its end, say
"skipped" exactly as often as the kernel's TCPTimeWaitOverflow counter grew, and
the harness must produce well-formed tables and JSON."""
import json
import os
import subprocess
import sys
import tempfile

from lib import ROOT, SYNFIN, Skip, require_root

BENCH = os.path.join(ROOT, "bench", "bench.py")
BINS = [os.path.join(".output", "bench", name) for name in ("loadgen", "synstorm", "micro")]


def build_bench_tools():
    """loadgen and micro are built by mk/bench.mk; synfin itself is whatever SYNFIN names."""
    done = subprocess.run(["make", "--no-print-directory", "-C", ROOT, *BINS],
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise AssertionError(f"building the bench tools failed: {done.stderr.strip()[-800:]}")


def table_rows(markdown):
    """Rows of the first Markdown table, as lists of cells (header and rule excluded)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [r for r in rows[2:] if r and not set(r[0]) <= {"-"}]


def number(cell):
    """The leading number of a cell like '23,074 (22,000–24,000)'."""
    return float(cell.split()[0].replace(",", ""))


def markdown_tables(markdown, last_is_micro=True):
    """Each Markdown table's rows (header and rule excluded), in order."""
    tables, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            rows = [[c.strip() for c in l.strip("|").split("|")] for l in current]
            tables.append([r for r in rows[2:] if r and not set(r[0]) <= {"-"}])
            current = []
    return tables[:-1] if last_is_micro else tables  # the micro-benchmark's comes last


def check_condition(name, cond, conns):
    summary = cond["summary"]
    assert summary["baseline"]["conn_per_s"]["median"] > 0
    assert summary["baseline"]["ratio"]["median"] == 1.0
    for tracer in ("synfin_json", "synfin_life"):
        s = summary[tracer]
        assert s["conn_per_s"]["median"] > 0 and s["ratio"]["median"] > 0, (name, tracer)
        assert s["cpu_ms_per_1k"]["median"] > 0 and s["peak_rss_kib"]["median"] > 0
        assert s["lost"]["max"] == 0, (name, tracer, s["lost"])
    for rnd in cond["rounds"]:
        for tracer, run in rnd.items():
            assert run["load"]["connections"] == conns, (name, tracer, run["load"])
            assert run["load"]["errors"] == 0, (name, tracer, run["load"])
            if tracer != "baseline":
                assert run["exit"] == 0, (name, tracer, run)
    for tracer, count in cond["counting"].items():
        # Zero loss, and every record that is missing counted: written + lost = expected.
        assert count["lost_reported"] == 0 and count["bad_lines"] == 0, (name, tracer, count)
        assert count["expected"] > 0 and count["captured"] == count["expected"], (name, count)
    life = cond["counting"]["synfin_life"]
    tw = life["time_wait"]
    # Client-first closes: each connection's client closes into TIME_WAIT once. Every one
    # is either followed to its end (the namespace's deletion ends them all) or skipped,
    # exactly as often as the kernel's own counter says it made no mini-socket.
    assert tw["tw_entered"] + tw["tw_skipped"] == life["load"]["connections"], (name, tw)
    assert tw["tw_ended"] == tw["tw_entered"], (name, tw)
    assert tw["tw_skipped"] == life["kernel_tw_skipped"], (name, tw, life["kernel_tw_skipped"])
    assert life["tw_not_followed"] == 0, (name, life)


def require_host():
    """In a VM under QEMU's TCG (no KVM) every run is many times slower: the smoke's storms
    outlast their time bound. They run on the host (make check), not in make vmtest."""
    if os.environ.get("VMTEST"):
        raise Skip("a VM without KVM (QEMU TCG): the bench smoke's time bound is for the host")


def run_bench(*args):
    require_host()
    build_bench_tools()
    with tempfile.TemporaryDirectory() as tmp:
        out_json = os.path.join(tmp, "smoke.json")
        done = subprocess.run([sys.executable, BENCH, "--smoke", "--synfin", SYNFIN,
                               "--out", out_json, *args], capture_output=True, text=True,
                              timeout=110)
        assert done.returncode == 0, f"bench --smoke failed: {done.stderr.strip()[-1500:]}"
        with open(out_json) as f:
            return done.stdout, json.load(f)


def test_bench_drop_storm_smoke_writes_or_counts_every_drop():
    """make bench's drop storm in miniature (10,000 SYNs; its own test: a VM without KVM
    needs most of the time bound for the other smoke's runs)."""
    require_root()
    assert os.access(SYNFIN, os.X_OK), f"{SYNFIN} not built (make check builds it)"
    markdown, results = run_bench("--storm-only", "--storm-syns", "10000", "--no-micro")
    head = markdown.index("### Drop storm")
    [table] = markdown_tables(markdown[head:], last_is_micro=False)
    check_drop_storm(results["drop_storm"], {r[0]: r for r in table})
    assert results["conditions"] == [], results["conditions"]  # --storm-only


def check_drop_storm(storm, rows):
    """A SYN flood nftables drops: synfin writes a drop record for every SYN the rule's own
    counter dropped or counts it lost (drop records are secondary: they never take the last
    half of a ring), and beside it every state record of a connection storm gets through."""
    assert set(rows) == {"no tracer", "synfin --json", "synfin --life --json"}, rows
    for label, row in rows.items():
        assert number(row[1]) > 0 and number(row[2]) > 0, row
    for rnd in storm["rounds"]:
        assert rnd["baseline"]["dropped"] == storm["syns"], rnd["baseline"]
        for name in ("synfin_json", "synfin_life"):
            run = rnd[name]
            assert run["exit"] == 0 and run["lost"] == 0, run
            assert run["dropped"] == storm["syns"] and run["cpu_ms_per_1k"] > 0, run
        json_run = rnd["synfin_json"]
        assert json_run["drops_written"] + json_run["drop_lost"] == storm["syns"], json_run
        assert json_run["drops_written"] > 0, json_run
        assert rnd["synfin_life"]["drops_written"] == 0, rnd["synfin_life"]
    for run in storm["with_load"]:
        assert run["load"]["connections"] == storm["conns"] and run["load"]["errors"] == 0
        assert run["lost"] == 0 and run["state_written"] == run["state_expected"] > 0, run
        assert run["drops_written"] + run["drop_lost"] == run["dropped"] > 0, run


def test_bench_smoke_loses_nothing_and_reports_well_formed_results():
    require_root()
    assert os.access(SYNFIN, os.X_OK), f"{SYNFIN} not built (make check builds it)"
    markdown, results = run_bench()

    # The tables: one per condition, one row per tracer, numbers where numbers belong.
    tables = markdown_tables(markdown)
    assert len(tables) == 2, markdown  # fresh and full-table namespaces
    for table in tables:
        rows = {r[0]: r for r in table}
        assert set(rows) >= {"no tracer", "synfin --json", "synfin --life --json"}, markdown
        for label in rows:
            assert number(rows[label][1]) > 0, rows[label]  # conn/s
            assert number(rows[label][2]) > 0, rows[label]  # ratio
        for label in ("synfin --json", "synfin --life --json"):
            assert number(rows[label][3]) > 0, rows[label]  # CPU ms / 1k conns
            assert number(rows[label][4]) > 0, rows[label]  # peak RSS
            assert rows[label][5] == "0", rows[label]       # lost in the timed run

    # The JSON: the same facts, and the counting passes add up in every condition.
    conds = {c["name"]: c for c in results["conditions"]}
    assert set(conds) == {"fresh", "full"}, list(conds)
    for name, cond in conds.items():
        check_condition(name, cond, results["config"]["conns"])
    # A fresh namespace gives every close its mini-socket; a full table gives none.
    fresh_tw = conds["fresh"]["counting"]["synfin_life"]["time_wait"]
    full_tw = conds["full"]["counting"]["synfin_life"]["time_wait"]
    assert fresh_tw["tw_skipped"] == 0 and fresh_tw["tw_entered"] > 0, fresh_tw
    assert full_tw["tw_entered"] == 0 and full_tw["tw_skipped"] > 0, full_tw

    assert "drop_storm" not in results, results.keys()  # its own test, below

    cal = results["calibration"]
    assert cal["lost"] == 0 and cal["connections"] > 0, cal
    # Client-first close on loopback: 5 transitions on each side, 2 lifecycle records.
    assert cal["state_per_conn"] == 10 and cal["conn_per_conn"] == 2, cal

    micro = results["micro"]
    assert micro["bytes_per_tracked_conn"] > 0, micro
    for path in ("tracker_only", "json_full", "json_life", "text_full"):
        assert micro[path]["events"] > 0 and micro[path]["events_per_s"] > 0, (path, micro[path])
