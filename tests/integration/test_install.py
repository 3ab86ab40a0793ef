"""make install / uninstall, and the man page: renders cleanly and documents every option."""
import os
import re
import subprocess
import tempfile

from lib import ROOT, SYNFIN

EXPECTED = {
    "usr/local/sbin/synfin",
    "usr/local/share/man/man8/synfin.8",
    "usr/local/share/bash-completion/completions/synfin",
} | {f"usr/local/share/synfin/schema/{name}.schema.json"
     for name in ("state", "conn", "lost", "stuck", "time_wait_end", "rst", "drop", "packet",
                  "summary")} | {
    "usr/local/share/synfin/grafana/synfin-dashboard.json"}


def installed_files(root):
    return {os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files}


def test_install_puts_exactly_the_listed_files_and_uninstall_removes_them():
    with tempfile.TemporaryDirectory() as dest:
        subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}"], check=True,
                       capture_output=True)
        assert installed_files(dest) == EXPECTED, installed_files(dest) ^ EXPECTED
        assert os.access(os.path.join(dest, "usr/local/sbin/synfin"), os.X_OK)
        subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={dest}"], check=True,
                       capture_output=True)
        assert installed_files(dest) == set()


def test_prefix_is_honoured():
    with tempfile.TemporaryDirectory() as dest:
        subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/opt/sf"],
                       check=True, capture_output=True)
        assert os.path.exists(os.path.join(dest, "opt/sf/sbin/synfin"))


def test_man_page_renders_without_warnings_and_documents_every_option():
    page = os.path.join(ROOT, "man", "synfin.8")
    done = subprocess.run(["groff", "-ww", "-man", "-z", page], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    done = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                          env={**os.environ, "MANWIDTH": "80"})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    help_text = subprocess.run([SYNFIN, "--help"], capture_output=True, text=True).stdout
    options = set(re.findall(r"--[a-z][a-z0-9-]+", help_text))
    with open(page) as f:
        source = f.read().replace("\\-", "-")
    missing = {opt for opt in options if opt not in source}
    assert not missing, missing
    # ... and no option that synfin does not have (the OPTIONS section's .B/.BR lines).
    options_section = source.split(".SH OPTIONS", 1)[1].split(".SH ", 1)[0]
    documented = set(re.findall(r"^\.BR? (--[a-z][a-z0-9-]+)", options_section, re.M))
    assert documented and not documented - options, documented - options


def test_completion_and_readme_offer_only_options_synfin_has():
    help_text = subprocess.run([SYNFIN, "--help"], capture_output=True, text=True).stdout
    options = set(re.findall(r"--[a-z][a-z0-9-]+", help_text))
    with open(os.path.join(ROOT, "completion", "synfin.bash")) as f:
        offered = set(re.findall(r"--[a-z][a-z0-9-]+", f.read()))
    assert offered and not offered - options, offered - options
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    usage = readme.split("## Options", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"--[a-z][a-z0-9-]+", usage))
    assert listed and not listed - options, listed - options
    # -4 and -6 stand for --ipv4 and --ipv6 there.
    assert not options - listed - {"--ipv4", "--ipv6"}, options - listed
