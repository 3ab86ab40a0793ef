"""The overhead harness (make bench) in miniature: a few hundred loopback
connections, one round, no tracer and synfin only. synfin must lose nothing
and the harness must produce a well-formed table and JSON."""
import json
import os
import subprocess
import sys
import tempfile

from lib import ROOT, SYNFIN, require_root

BENCH = os.path.join(ROOT, "bench", "bench.py")
BINS = [os.path.join(".output", "bench", name) for name in ("loadgen", "micro")]


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


def test_bench_smoke_loses_nothing_and_reports_well_formed_results():
    require_root()
    assert os.access(SYNFIN, os.X_OK), f"{SYNFIN} not built (make check builds it)"
    build_bench_tools()
    with tempfile.TemporaryDirectory() as tmp:
        out_json = os.path.join(tmp, "smoke.json")
        done = subprocess.run([sys.executable, BENCH, "--smoke", "--synfin", SYNFIN,
                               "--out", out_json], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"bench --smoke failed: {done.stderr.strip()[-1500:]}"
        with open(out_json) as f:
            results = json.load(f)

    # The table: one row per tracer, numbers where numbers belong.
    rows = {r[0]: r for r in table_rows(done.stdout)}
    assert set(rows) >= {"no tracer", "synfin --json"}, done.stdout
    for label in ("no tracer", "synfin --json"):
        assert number(rows[label][1]) > 0, rows[label]  # conn/s
        assert number(rows[label][2]) > 0, rows[label]  # ratio
    synfin_row = rows["synfin --json"]
    assert number(synfin_row[3]) > 0, synfin_row  # CPU ms / 1k conns
    assert number(synfin_row[4]) > 0, synfin_row  # peak RSS
    assert synfin_row[5] == "0", synfin_row       # lost in the timed run

    # The JSON: the same facts, and the counting pass adds up.
    summary = results["summary"]
    assert summary["baseline"]["conn_per_s"]["median"] > 0
    assert summary["baseline"]["ratio"]["median"] == 1.0
    synfin = summary["synfin_json"]
    assert synfin["conn_per_s"]["median"] > 0 and synfin["ratio"]["median"] > 0
    assert synfin["cpu_ms_per_1k"]["median"] > 0
    assert synfin["peak_rss_kib"]["median"] > 0
    assert synfin["lost"]["max"] == 0, synfin["lost"]
    for rnd in results["rounds"]:
        for name, run in rnd.items():
            assert run["load"]["connections"] == results["config"]["conns"], (name, run["load"])
            assert run["load"]["errors"] == 0, (name, run["load"])
            if name != "baseline":
                assert run["exit"] == 0, (name, run)

    cal = results["calibration"]
    assert cal["lost"] == 0 and cal["connections"] > 0, cal
    # Client-first close on loopback: 5 transitions on each side, 2 lifecycle records.
    assert cal["state_per_conn"] == 10 and cal["conn_per_conn"] == 2, cal
    count = results["counting"]["synfin_json"]
    assert count["lost_reported"] == 0, count
    assert count["bad_lines"] == 0, count
    assert count["expected"] > 0 and count["captured"] == count["expected"], count

    micro = results["micro"]
    assert micro["bytes_per_tracked_conn"] > 0, micro
    for path in ("tracker_only", "json_full", "json_life", "text_full"):
        assert micro[path]["events"] > 0 and micro[path]["events_per_s"] > 0, (path, micro[path])
