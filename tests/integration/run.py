#!/usr/bin/env python3
"""Runs every test_* function of tests/integration/test_*.py (or those named
on the command line) and ends with 'integration: N passed, N failed, N skipped'."""
import importlib
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import Skip, kill_leftovers  # noqa: E402

TEST_TIMEOUT = 120


def on_alarm(signum, frame):
    raise TimeoutError(f"test took longer than {TEST_TIMEOUT} s")


def discover(selected):
    here = os.path.dirname(os.path.abspath(__file__))
    for fname in sorted(os.listdir(here)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        module = importlib.import_module(fname[:-3])
        for name in sorted(vars(module)):
            if name.startswith("test_") and (not selected or name in selected):
                yield f"{fname[:-3]}.{name}", getattr(module, name)


def main():
    label = os.environ.get("SYNFIN_SUITE_LABEL", "integration")
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    signal.signal(signal.SIGALRM, on_alarm)
    for name, fn in discover(set(sys.argv[1:])):
        start = time.monotonic()
        signal.alarm(TEST_TIMEOUT)
        try:
            fn()
            counts["passed"] += 1
            print(f"ok   {name} ({time.monotonic() - start:.1f}s)", flush=True)
        except Skip as why:
            counts["skipped"] += 1
            print(f"skip {name}: {why}", flush=True)
        except Exception as err:  # noqa: BLE001 - any failure is a failed test
            counts["failed"] += 1
            print(f"FAIL {name}: {err}", flush=True)
            traceback.print_exc(limit=-2, file=sys.stdout)
        finally:
            signal.alarm(0)
            kill_leftovers()
    print(f"{label}: {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['skipped']} skipped", flush=True)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
