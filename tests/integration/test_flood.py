"""Bounded memory under a SYN flood: synfin keeps to --max-conns, says how many
it evicted, and still traces the real connections made during the flood."""
import json
import os
import subprocess
import sys

from lib import HERE, Netns, Synfin, conn_records, parse_records, require_root
from test_teardown import drop_syns_to


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_syn_flood_stays_within_max_conns_and_keeps_tracing():
    require_root()
    stalled_port = 41000 + os.getpid() % 1000
    with Netns() as ns:
        drop_syns_to(stalled_port)(ns)
        tracer = Synfin("--netns", str(ns.inode), "--max-conns", "256", "--life")
        done = subprocess.run(["ip", "netns", "exec", ns.name, sys.executable,
                               os.path.join(HERE, "synflood.py"), "--syns", "50000",
                               "--stalled", "2000", "--stalled-port", str(stalled_port)],
                              capture_output=True, text=True, timeout=110)
        assert done.returncode == 0, done.stderr
        load = json.loads(done.stdout)
        peak_kib = vm_hwm_kib(tracer.proc.pid)
        status, out, err = tracer.stop()
    assert status == 0, err
    records = parse_records(out)
    # 2,000 SYN_SENT sockets alive at once in a table of 256: the oldest were evicted, and said so.
    evicted = [line for line in err.splitlines() if "connections evicted" in line]
    assert evicted and int(evicted[0].split()[1]) >= 2000 - 256, err
    # The real connections made during the flood are all there, complete. A port may come
    # twice: loopback connections may reuse a TIME_WAIT tuple after a second
    # (net.ipv4.tcp_tw_reuse=2), and a slow run (the TCG VMs) spans seconds.
    for port in set(load["real_ports"]):
        matching = conn_records(records, sport=port, dport=load["listen_port"])
        assert len(matching) == load["real_ports"].count(port), (load["real_ports"], matching)
        assert len({rec["local_isn"] for rec in matching}) == len(matching), matching  # not one twice
        for rec in matching:
            assert rec["states"][:2] == ["SYN_SENT", "ESTABLISHED"] and not rec["partial"], rec
            assert rec["pid"] == load["pid"]
    # The 50,000 request sockets never become full sockets: they must not reach the tracker.
    assert len([r for r in records if r["type"] == "conn" and r["dport"] == load["listen_port"]
                and r["sport"] not in load["real_ports"]]) == 0
    # Peak RSS: the 8 MiB ring buffer, libbpf and a 256-entry table; nothing grows with the flood.
    assert peak_kib < 64 * 1024, peak_kib
