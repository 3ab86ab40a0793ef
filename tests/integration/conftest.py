"""pytest glue for the integration suite (Debian's python3-pytest; no plugins).

The tests stay plain `def test_...():` functions using lib.py. This file adds what
the suite needs around them:
  - a 120 s limit per test (SIGALRM: no timeout plugin here); 240 s in a VM, where
    QEMU's TCG emulates every instruction (the storm and documented-commands tests
    ran past 120 s there on a slow day),
  - kill_leftovers() after every test, so a failed test leaves no tracer behind,
  - one result line at the end, 'LABEL: N passed, N failed, N skipped' (LABEL from
    SYNFIN_SUITE_LABEL, default 'integration'), which tests/run.sh adds up,
  - 'no tests collected' (pytest's exit status 5, e.g. a -k that matches nothing) is
    not a failure.
"""
import os
import signal

import pytest

pytest.register_assert_rewrite("lib")

from lib import Netns, Synfin, kill_leftovers, run_peer  # noqa: E402

TEST_TIMEOUT = 240 if os.environ.get("VMTEST") else 120


def _on_alarm(signum, frame):
    raise TimeoutError(f"test took longer than {TEST_TIMEOUT} s")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _no_tracer_left_behind():
    yield
    kill_leftovers()


def pytest_terminal_summary(terminalreporter):
    stats = terminalreporter.stats
    count = lambda *keys: sum(len(stats.get(k, [])) for k in keys)  # noqa: E731
    label = os.environ.get("SYNFIN_SUITE_LABEL", "integration")
    # Errors (in a fixture, at collection) are failures; xpass/xfail are not used here.
    terminalreporter.write_line(f"{label}: {count('passed')} passed, "
                                f"{count('failed', 'error')} failed, {count('skipped')} skipped")


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK


# ---- fixtures: the namespace, the peers and the synfin process of one test ----

@pytest.fixture
def netns():
    """A private network namespace with lo up, removed after the test."""
    with Netns() as ns:
        yield ns


@pytest.fixture
def tracer(netns):
    """tracer(*args) starts synfin --json watching only this test's namespace; whatever
    the test leaves running is killed after it (kill_leftovers)."""
    return lambda *args, **kw: Synfin("--netns", str(netns.inode), *args, **kw)


@pytest.fixture
def peer(netns):
    """peer(*args) runs peer.py in this test's namespace and returns its report."""
    return lambda *args, **kw: run_peer(*args, netns=netns.name, **kw)
