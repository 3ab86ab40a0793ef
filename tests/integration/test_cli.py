"""The command line as a user meets it: errors, exits, signals, text output."""
import os
import re
import shutil
import signal
import subprocess
import time

from lib import (READY, SYNFIN, Netns, Skip, Synfin, program_ids_held_by, programs_loaded,
                 require_root, run_peer, synfin_programs_loaded)


def run_synfin(*args, timeout=20, **kw):
    return subprocess.run([SYNFIN, *args], capture_output=True, text=True, timeout=timeout, **kw)


def assert_one_line_error(done, *needles):
    assert done.returncode != 0, f"exit status 0 for bad input: {done.stderr}"
    first = done.stderr.splitlines()[0] if done.stderr else ""
    assert first.startswith("synfin: "), done.stderr
    for needle in needles:
        assert needle in first, f"{needle!r} not in {first!r}"
    assert READY not in done.stderr
    assert done.stdout == ""


def test_bad_options_fail_with_one_line_each():
    cases = [
        (["--no-such-option"], "unrecognized option"),
        (["-p", "abc"], "invalid pid 'abc'"),
        (["-P", "70000"], "invalid port '70000'"),
        (["--dport", "-1"], "invalid remote port"),
        (["-d", "0"], "invalid duration"),
        (["--ringbuf-size", "3000"], "power of two"),
        (["--max-conns", "1"], "invalid max-conns"),
        (["--hook", "kprobe"], "invalid --hook"),
        (["-4", "-6"], "exclude each other"),
        (["--cgroup", "/tmp"], "not a cgroup v2 directory"),
        (["--netns", "/nonexistent"], "cannot open netns"),
        (["stray"], "unexpected argument"),
    ]
    for args, needle in cases:
        done = run_synfin(*args)
        assert done.returncode == 2, (args, done.returncode)
        assert_one_line_error(done, needle)


def test_help_and_version():
    done = run_synfin("--help")
    assert done.returncode == 0
    for text in ("Usage:", "EXAMPLES", "Exit status", "--json", "--life", "--pid", "--cgroup", "--netns"):
        assert text in done.stdout, text
    done = run_synfin("--version")
    assert done.returncode == 0 and done.stdout.startswith("synfin ")


def test_not_root_is_told_to_use_sudo():
    require_root()
    done = run_synfin(preexec_fn=lambda: (os.setgroups([]), os.setgid(65534), os.setuid(65534)))
    assert done.returncode == 1
    assert_one_line_error(done, "not enough privileges", "sudo")


def run_with_hidden(dirs, *args):
    """synfin in a private mount namespace where tmpfs hides dirs (a kernel or a system
    without them, as far as synfin can tell)."""
    hide = " && ".join(f"mount -t tmpfs none {d}" for d in dirs)
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           f"{hide} && exec {SYNFIN} {' '.join(args)}"],
                          capture_output=True, text=True, timeout=20)
    if "mount" in done.stderr and "synfin" not in done.stderr:
        raise Skip(f"cannot hide {dirs} here: {done.stderr.strip()}")
    return done


def test_kernel_without_btf_is_named():
    require_root()
    done = run_with_hidden(["/sys/kernel/btf"])
    assert done.returncode == 1
    assert_one_line_error(done, "no BTF", "CONFIG_DEBUG_INFO_BTF")


def test_without_tracefs_synfin_mounts_its_own_and_the_classic_hooks_attach():
    """As under `ip netns exec`, which mounts a new /sys: libbpf finds classic tracepoints
    (the state twin, the accept hooks) through tracefs, so synfin mounts one for itself."""
    require_root()
    # tracefs can also appear under debugfs: hide both.
    done = run_with_hidden([d for d in ("/sys/kernel/tracing", "/sys/kernel/debug")
                            if os.path.isdir(d)], "--hook", "tracepoint", "-v", "-d", "1")
    assert done.returncode == 0, done.stderr
    assert "mounted at /sys/kernel/tracing for synfin alone" in done.stderr, done.stderr
    assert "kernel feature accept_hook: yes" in done.stderr, done.stderr
    assert re.search(r"attached to sock:inet_sock_set_state via tracepoint.*sys_exit_accept4",
                     done.stderr), done.stderr


def test_with_tracefs_mounted_synfin_stays_in_the_hosts_mount_namespace():
    require_root()
    if not os.path.isdir("/sys/kernel/tracing/events"):
        raise Skip("tracefs is not mounted at /sys/kernel/tracing")
    tracer = Synfin("-d", "30")
    try:
        assert os.readlink(f"/proc/{tracer.proc.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    finally:
        tracer.stop()


def test_duration_exits_on_time():
    """-d counts from the moment synfin is tracing (its ready line), not from its
    start: loading and attaching may take seconds in an emulated VM."""
    require_root()
    tracer = Synfin("-d", "1")  # returns once synfin said it is tracing
    ready = time.monotonic()
    tracer.proc.wait(timeout=30)
    elapsed = time.monotonic() - ready
    status, _, err = tracer.stop()  # it has exited: no signal is sent
    assert status == 0, err
    # the bound past 1 s is the detach and the drain at exit (slow under TCG)
    assert 0.9 <= elapsed < (6.0 if os.environ.get("VMTEST") else 3.0), elapsed


def test_sigterm_ends_cleanly_and_flushes():
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode))
        run_peer(netns=ns.name)
        status, out, err = tracer.stop(sig=signal.SIGTERM)
    assert status == 0, err
    assert out.count('"type":"conn"') == 2


def test_closed_stdout_pipe_ends_synfin():
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), stdout=subprocess.PIPE)
        tracer.proc.stdout.close()  # like `synfin | head` once head has had enough
        run_peer("--count", "3", netns=ns.name)
        try:
            status = tracer.proc.wait(timeout=10)
        finally:
            tracer.kill()
    assert status == 0, status


def test_text_columns_show_transitions_and_lifecycles():
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), json_output=False)
        peer = run_peer(netns=ns.name)
        status, out, _ = tracer.stop()
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["TIME", "PID", "COMM", "LOCAL", "REMOTE", "TRANSITION"]
    cport = peer["conns"][0]["client_port"]
    client_lines = [line for line in lines if f"127.0.0.1:{cport} " in line.split("  ")[0] + " "
                    or line.split()[3] == f"127.0.0.1:{cport}"]
    assert any("SYN_SENT -> ESTABLISHED" in line for line in client_lines), client_lines
    closed = [line for line in lines if "= client closed, local first, " in line]
    assert len(closed) == 1 and "SYN_SENT>ESTABLISHED>FIN_WAIT1>FIN_WAIT2" in closed[0], lines
    assert f" {peer['pid']} " in closed[0] and peer["comm"] in closed[0]
    assert not any("swapper" in line for line in lines)


def test_life_text_mode_has_one_line_per_connection():
    require_root()
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), "--life", json_output=False)
        run_peer("--count", "2", netns=ns.name)
        status, out, _ = tracer.stop()
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["TIME", "PID", "COMM", "ROLE", "LOCAL"]
    assert sorted(line.split()[3] for line in lines[1:]) == ["client", "client", "server", "server"]


def test_kill_9_leaves_no_program_attached():
    require_root()
    tracer = Synfin()
    assert synfin_programs_loaded(pid=tracer.proc.pid), "synfin's program should be loaded"
    # Its own programs by id: another synfin on this machine may hold programs of that name.
    ids = program_ids_held_by(tracer.proc.pid)
    assert ids and programs_loaded(ids) == ids, ids
    tracer.proc.kill()
    tracer.proc.wait()
    tracer.kill()
    deadline = time.monotonic() + 5
    while programs_loaded(ids) and time.monotonic() < deadline:
        time.sleep(0.1)  # the kernel frees programs once the last fd closes
    assert not programs_loaded(ids), programs_loaded(ids)


def test_valgrind_finds_no_errors_or_leaks():
    require_root()
    # tools/install-deps.sh test installs valgrind: its absence is a broken set-up.
    assert shutil.which("valgrind"), "valgrind not installed (Debian: valgrind; make test-deps)"
    if os.environ.get("VMTEST") or os.environ.get("SYNFIN_BIN"):
        raise Skip("valgrind runs once, on the host's plain build")
    supp = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "valgrind.supp")
    wrapper = ["valgrind", "--error-exitcode=99", "--leak-check=full", f"--suppressions={supp}",
               "--errors-for-leak-kinds=definite,indirect", "--track-fds=no", "-q"]
    with Netns() as ns:
        tracer = Synfin("--netns", str(ns.inode), "--stuck", "1", wrapper=wrapper)
        run_peer("--count", "3", netns=ns.name)
        run_peer("--scenario", "shutdown", netns=ns.name)
        status, out, err = tracer.stop()
    assert status == 0, f"valgrind exit {status}: {err}"
    assert out.count('"type":"conn"') == 8, out
    assert "Invalid" not in err and "definitely lost" not in err, err
