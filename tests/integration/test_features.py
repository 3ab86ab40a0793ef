"""Kernel features synfin probes at start-up (BTF, never the version): what `-v` says it
found must be what the kernel's BTF shows (bpftool as the witness), and each feature's
path is tested on the kernels that have it, with a skip naming it on those that do not."""
import json
import os
import re
import subprocess

import pytest

from lib import SYNFIN, Netns, Synfin, program_ids_held_by, require_root, run_peer

BPF_LINK_TYPE_TCX = 11  # bpftool 7.1 prints the number: it predates tcx

VMLINUX = "/sys/kernel/btf/vmlinux"


def btf_dump(fmt):
    return subprocess.run(["bpftool", "btf", "dump", "file", VMLINUX, "format", fmt],
                          capture_output=True, text=True, check=True).stdout


def probed():
    """synfin's own report: {feature: True|False} from `synfin -v`."""
    done = subprocess.run([SYNFIN, "-v", "-d", "1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = dict(re.findall(r"^synfin: kernel feature (\w+): (yes|no) ", done.stderr, re.M))
    return {name: answer == "yes" for name, answer in found.items()}


def kallsyms_has(name):
    """The symbol is listed with a real address (kernel.kptr_restrict may zero them)."""
    with open("/proc/kallsyms") as f:
        return any(len(p) >= 3 and p[2] == name and int(p[0], 16) != 0
                   for p in (line.split() for line in f))


def tracefs_has(*events):
    """Whether tracefs lists these events. Where it is not mounted, synfin mounts one for
    itself in a mount namespace of its own: so does this look, with unshare(1)."""
    paths = [f"/sys/kernel/tracing/events/{e}/id" for e in events]
    if os.path.isdir("/sys/kernel/tracing/events"):
        return all(os.path.exists(p) for p in paths)
    look = ("mount -t tracefs tracefs /sys/kernel/tracing && "
            + " && ".join(f"test -e {p}" for p in paths))
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", look],
                          capture_output=True).returncode == 0


def witnessed():
    """The same facts read from the kernel's BTF with bpftool (and kallsyms)."""
    raw, c = btf_dump("raw"), btf_dump("c")
    cgroup = re.search(r"^struct cgroup \{\n(.*?)^\};", c, re.M | re.S).group(1)
    return {
        "tp_btf_set_state": "TYPEDEF 'btf_trace_inet_sock_set_state'" in raw,
        "tcx": "'BPF_TCX_EGRESS'" in raw,
        "cgroup_ancestors": re.search(r"\*ancestors\[", cgroup) is not None,
        "tw_timer_hooks": all(f"TYPEDEF 'btf_trace_timer_{tp}'" in raw
                              for tp in ("start", "expire_entry", "cancel"))
        and all(f"TYPEDEF 'btf_trace_softirq_{tp}'" in raw for tp in ("entry", "exit"))
        and kallsyms_has("tw_timer_handler"),
        "tw_fin_hook": "TYPEDEF 'btf_trace_kfree_skb'" in raw
        and "'SKB_DROP_REASON_NOT_SPECIFIED'" in raw,
        "rst_reason": re.search(r"^typedef void \(\*btf_trace_tcp_send_reset\)\(void \*, "
                                r"[^;]*enum sk_rst_reason\);", c, re.M) is not None,
        # tracefs lists the accept syscalls' exits and close's entry (as libbpf attaches them)
        "accept_hook": tracefs_has("syscalls/sys_exit_accept4", "syscalls/sys_exit_accept",
                                   "syscalls/sys_enter_close"),
        "exit_hook": "TYPEDEF 'btf_trace_sched_process_exit'" in raw,
        "synack_hook": "TYPEDEF 'btf_trace_tcp_retransmit_synack'" in raw,
        "drop_reasons": re.search(r"^typedef void \(\*btf_trace_kfree_skb\)\(void \*, "
                                  r"[^;]*enum skb_drop_reason[^;]*\);", c, re.M) is not None
        and "'SKB_DROP_REASON_NOT_SPECIFIED'" in raw,
    }


def test_verbose_names_every_probed_feature_as_the_btf_shows_it():
    require_root()
    assert probed() == witnessed()


def require_feature(name):
    if not witnessed()[name]:
        pytest.skip(f"this kernel lacks {name}")


def test_tp_btf_is_chosen_where_the_kernel_has_it():
    require_root()
    require_feature("tp_btf_set_state")
    done = subprocess.run([SYNFIN, "-v", "-d", "1"], capture_output=True, text=True, timeout=60)
    assert "attached to sock:inet_sock_set_state via tp_btf" in done.stderr, done.stderr


def program_names_held_by(pid):
    ids = program_ids_held_by(pid)
    progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                                      text=True).stdout or "[]")
    return {p.get("name") for p in progs if p.get("id") in ids}


def test_time_wait_is_followed_through_its_timer_where_the_kernel_allows():
    """With the timer hooks: synfin holds the three timer programs and no sock_diag socket;
    with --hook tracepoint it holds neither program and follows TIME_WAIT as before."""
    require_root()
    require_feature("tw_timer_hooks")
    timers = {"tw_timer_start", "tw_timer_expire", "tw_timer_cancel"}
    tracer = Synfin()
    try:
        # bpftool 7.1 truncates names to 15 characters
        held = {n[:15] for n in program_names_held_by(tracer.proc.pid)}
        assert {t[:15] for t in timers} <= held, held
    finally:
        tracer.stop()
    tracer = Synfin("--hook", "tracepoint")
    try:
        held = {n[:15] for n in program_names_held_by(tracer.proc.pid)}
        assert not ({t[:15] for t in timers} & held), held
    finally:
        tracer.stop()


def test_packet_layer_uses_a_tcx_link_where_the_kernel_has_one():
    require_root()
    require_feature("tcx")
    with Netns() as ns:
        tracer = Synfin("-i", "lo", netns_exec=ns.name)
        ours = program_ids_held_by(tracer.proc.pid)
        links = [link for link in json.loads(subprocess.run(
            ["bpftool", "-j", "link", "show"], capture_output=True, text=True).stdout or "[]")
            if link.get("prog_id") in ours]
        filters = subprocess.run(["ip", "netns", "exec", ns.name, "tc", "filter", "show", "dev",
                                  "lo", "egress"], capture_output=True, text=True).stdout
        run_peer(netns=ns.name)
        records = tracer.records()
    assert any(link["type"] in (BPF_LINK_TYPE_TCX, "tcx") for link in links), links
    assert "wire_out" not in filters, filters  # no clsact filter besides
    assert any(r["type"] == "packet" and r["dir"] == "out" for r in records)


def test_packet_layer_falls_back_to_clsact_without_tcx():
    require_root()
    if witnessed()["tcx"]:
        pytest.skip("this kernel has tcx: the clsact path is for kernels without it")
    with Netns() as ns:
        tracer = Synfin("-i", "lo", netns_exec=ns.name)
        filters = subprocess.run(["ip", "netns", "exec", ns.name, "tc", "filter", "show", "dev",
                                  "lo", "egress"], capture_output=True, text=True).stdout
        run_peer(netns=ns.name)
        records = tracer.records()
    assert "wire_out" in filters, filters
    assert any(r["type"] == "packet" and r["dir"] == "out" for r in records)
