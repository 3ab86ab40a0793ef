"""Two endings that need the network's help to happen on loopback: a simultaneous close
(both FINs in flight at once: held back by an nftables rule until both ends have closed)
and a keepalive timeout (the peer's answers dropped). Witnesses: the kernel's own trace of
tcp:tcp_send_reset, and the states `ss` reports."""
import json
import subprocess
import sys

from lib import Netns, Synfin, parse_records, require_root
from test_features import witnessed
from test_resets import KernelResetTrace

SIMULTANEOUS = r"""
import json, socket, subprocess, sys, time
# The FINs cross only if both retransmission timers fire in one run of the timer softirq.
# With a minimum RTO of seconds they sit in a timer-wheel level whose buckets are 64 jiffies
# wide, so two shutdowns a few ms apart (a slow VM) still share one; at the usual 200 ms
# (1-jiffy buckets) a VM under TCG split them now and then.
subprocess.run(["ip", "route", "replace", "local", "127.0.0.1", "dev", "lo", "table", "local",
                "scope", "host", "src", "127.0.0.1", "rto_min", "2100ms"], check=True)
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
port = ls.getsockname()[1]
c = socket.create_connection(("127.0.0.1", port)); s, _ = ls.accept()
nft = lambda rules: subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
nft("table inet synfin_fins { chain output { type filter hook output priority 0;\n"
    f" tcp sport {port} tcp flags & fin == fin drop\n"
    f" tcp dport {port} tcp flags & fin == fin drop\n }}\n}}\n")
c.shutdown(socket.SHUT_WR); s.shutdown(socket.SHUT_WR)   # both FIN_WAIT1, FINs held back
time.sleep(0.1)
nft("delete table inet synfin_fins\n")                    # the retransmitted FINs cross
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    out = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True, text=True).stdout
    if out.count(f":{port}") >= 2:
        break
    time.sleep(0.05)
print(json.dumps({"port": port, "client_port": c.getsockname()[1], "ss_time_wait": out}), flush=True)
c.close(); s.close()
"""

KEEPALIVE = r"""
import json, socket, subprocess, time
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
port = ls.getsockname()[1]
c = socket.create_connection(("127.0.0.1", port)); s, _ = ls.accept()
cport = c.getsockname()[1]
c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 1)
# The server's answers to the probes never reach the client; its RST still may.
subprocess.run(["nft", "-f", "-"], check=True, text=True, input=(
    "table inet synfin_ka { chain input { type filter hook input priority 0;\n"
    f" tcp dport {cport} tcp flags & rst == 0 drop\n }}\n}}\n"))
c.settimeout(15)
try:
    c.recv(1)
    error = None
except OSError as e:
    error = e.errno
print(json.dumps({"port": port, "client_port": cport, "errno": error}), flush=True)
s.close()
"""


def run_in(ns, script):
    done = subprocess.run(["ip", "netns", "exec", ns.name, sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def conn_of(records, sport, dport):
    [rec] = [r for r in records if r["type"] == "conn" and r["sport"] == sport
             and r["dport"] == dport]
    return rec


def test_simultaneous_close_goes_through_closing_on_both_ends_into_time_wait():
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode))
        done = run_in(ns, SIMULTANEOUS)
        port, cport = done["port"], done["client_port"]
        records = tracer.wait_for(
            lambda rs: sum(r["type"] == "conn" and port in (r["sport"], r["dport"])
                           for r in rs) >= 2, what="both lifecycles")
        tracer.stop()
    assert done["ss_time_wait"].count(f":{port}") >= 2, done  # ss: both in TIME-WAIT
    for rec in (conn_of(records, cport, port), conn_of(records, port, cport)):
        assert rec["states"][-3:] == ["FIN_WAIT1", "CLOSING", "TIME_WAIT"], rec
        assert (rec["closer"], rec["outcome"], rec["time_wait"]) == ("both", "closed", "entered")


def test_keepalive_timeout_resets_with_the_kernels_reason_on_both_ends():
    require_root()
    with Netns() as ns:
        kernel = KernelResetTrace()
        tracer = Synfin("--netns", str(ns.inode))
        try:
            done = run_in(ns, KEEPALIVE)
            port, cport = done["port"], done["client_port"]
            records = tracer.wait_for(
                lambda rs: sum(r["type"] == "conn" and port in (r["sport"], r["dport"])
                               for r in rs) >= 2, what="both lifecycles")
        finally:
            tracer.stop()
            sent = kernel.sent()
    assert done["errno"] == 110, done  # ETIMEDOUT, as the application sees it
    client, server = conn_of(records, cport, port), conn_of(records, port, cport)
    assert (client["outcome"], client["sk_err"]) == ("timeout", 110), client
    if witnessed()["rst_reason"]:
        assert (cport, port, "tcp_keepalive_timeout") in sent, sent
        assert (client["reset_by"], client["reset_reason"]) == ("local", "tcp_keepalive_timeout")
        assert (server["reset_by"], server["reset_reason"]) == ("remote", "tcp_keepalive_timeout")
    else:
        assert client["reset_reason"] is None and server["outcome"] == "reset", (client, server)
