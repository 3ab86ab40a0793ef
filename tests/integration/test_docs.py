"""Every command line the README, docs/metrics.md, the man page and --help show is run
as written (with a short --duration and local stand-ins for eth0, pid 1234, a namespace
called blue, port 9102), so the documentation cannot drift from what synfin accepts."""
import os
import re
import socket
import subprocess
import tempfile

import pytest

from lib import READY, ROOT, SYNFIN, Netns, require_root
from test_filters import cgroup2_root

DOCS = ["README.md", os.path.join("docs", "metrics.md")]


def markdown_commands(path):
    """Shell lines of a markdown file's code (indented or fenced) that run synfin or curl."""
    lines, fenced = [], False
    with open(os.path.join(ROOT, path)) as f:
        for line in f:
            if line.startswith("```"):
                fenced = not fenced
                continue
            if fenced or line.startswith("    "):
                lines.append(line.strip())
    return [c for c in map(strip_prompt, lines) if c]


def man_commands():
    with open(os.path.join(ROOT, "man", "synfin.8")) as f:
        text = f.read()
    block = text.split(".SH EXAMPLES", 1)[1].split(".fi", 1)[0].split(".nf", 1)[1]
    return [c for c in (strip_prompt(line.replace("\\-", "-")) for line in block.splitlines()) if c]


def help_commands():
    out = subprocess.run([SYNFIN, "--help"], capture_output=True, text=True).stdout
    block = out.split("EXAMPLES:", 1)[1].split("OPTIONS:", 1)[0]
    return [c for c in map(strip_prompt, block.splitlines()) if c]


def strip_prompt(line):
    """The command on a documentation line, without '$ ' or 'sudo ' or a trailing '# ...';
    None unless it runs synfin (or curl, which goes with a synfin --metrics line)."""
    line = line.strip()
    if line.startswith("$ "):
        line = line[2:]
    if line.startswith("sudo "):
        line = line[5:]
    first = line.split(" ", 1)[0]
    if first not in ("synfin", "./synfin", "curl"):
        return None
    return re.sub(r"\s+#[^'\"]*$", "", line).strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def localise(cmd, netns_path, port, tmp):
    """The documented command with stand-ins this machine has, and one second of tracing."""
    words = cmd.split(" ")
    words[0] = {"synfin": SYNFIN, "./synfin": SYNFIN}.get(words[0], words[0])
    cmd = " ".join(words)
    cmd = cmd.replace("/run/netns/blue", netns_path).replace("eth0", "lo")
    cmd = cmd.replace("-p 1234", f"-p {os.getpid()}").replace("9102", str(port))
    cmd = cmd.replace("/var/log/synfin.ndjson", os.path.join(tmp, "synfin.ndjson"))
    if not os.path.isdir("/sys/fs/cgroup/system.slice"):
        cmd = cmd.replace("/sys/fs/cgroup/system.slice", cgroup2_root())
    if cmd.startswith(SYNFIN):
        cmd = re.sub(r"(^| )-d \d+", " ", cmd)
        cmd = cmd.replace(SYNFIN, f"{SYNFIN} -d 1", 1)
    return cmd


def run_one(cmd):
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (cmd, done.returncode, done.stderr)
    assert READY in done.stderr, (cmd, done.stderr)


def run_with_server(server_cmd, curl_cmd):
    """A documented synfin --metrics line, kept running while its curl line scrapes it."""
    server = subprocess.Popen(["bash", "-c", server_cmd.replace("-d 1", "-d 20", 1)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while READY not in (line := server.stderr.readline()):
            assert line, f"{server_cmd} exited before tracing"
        done = subprocess.run(["bash", "-o", "pipefail", "-c", curl_cmd], capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, (curl_cmd, done.stdout, done.stderr)
        if "|" not in curl_cmd:  # the scrape itself; piped, the pipeline's status says it
            assert "synfin_events_total" in done.stdout, (curl_cmd, done.stdout)
    finally:
        server.terminate()
        server.wait(timeout=20)


def run_documented(commands, netns_path, tmp):
    port = free_port()
    cmds = [localise(c, netns_path, port, tmp) for c in commands]
    ran = 0
    for i, cmd in enumerate(cmds):
        if cmd.startswith("curl"):
            server = next(c for c in reversed(cmds[:i]) if "--metrics" in c)
            run_with_server(server, cmd)
        else:
            run_one(cmd)
        ran += 1
    return ran


def test_every_documented_command_line_runs():
    require_root()
    with Netns() as ns, tempfile.TemporaryDirectory() as tmp:
        path = f"/run/netns/{ns.name}"
        counts = {}
        for doc in DOCS:
            counts[doc] = run_documented(markdown_commands(doc), path, tmp)
        counts["man"] = run_documented(man_commands(), path, tmp)
        counts["--help"] = run_documented(help_commands(), path, tmp)
    # The documents show this many command lines today; fewer means the parser broke.
    assert counts["README.md"] >= 4 and counts["docs/metrics.md"] >= 3, counts
    assert counts["man"] >= 8 and counts["--help"] >= 10, counts


def test_make_run_passes_its_arguments_through():
    """README: `make run ARGS="--life -P 443"` passes options through."""
    require_root()
    if os.environ.get("VMTEST"):
        pytest.skip("make builds on the host: the VM shares the checkout, not the toolchain's state")
    done = subprocess.run(["make", "--no-print-directory", "-C", ROOT, "run",
                           "ARGS=--life -P 443 -d 1"], capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert READY in done.stderr
    assert any(line.split()[:4] == ["TIME", "PID", "COMM", "ROLE"]
               for line in done.stdout.splitlines()), done.stdout
