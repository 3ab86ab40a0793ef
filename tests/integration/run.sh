#!/usr/bin/env bash
# The integration suite under pytest, as tests/run.sh, tests/run-asan.sh and
# tests/vm/suite.sh run it:   tests/integration/run.sh [PYTEST ARGS...]
# It ends with 'LABEL: N passed, N failed, N skipped' (conftest.py; LABEL from
# SYNFIN_SUITE_LABEL); arguments go to pytest (-k NAME, a test file). Or run
# pytest directly:
#   sudo python3 -m pytest tests/integration -k NAME
# Debian's python3-pytest and python3-jsonschema are for /usr/bin/python3: a
# python3 first in PATH (pyenv, a venv) that lacks them is passed over.
cd "$(dirname "$0")/../.."
py=${PYTHON:-python3}
if ! "$py" -c 'import pytest, jsonschema' 2>/dev/null; then
	py=/usr/bin/python3
	if ! "$py" -c 'import pytest, jsonschema' 2>/dev/null; then
		echo "tests/integration: no python3 with pytest and jsonschema (make test-deps installs python3-pytest python3-jsonschema)"
		echo "${SYNFIN_SUITE_LABEL:-integration}: 0 passed, 1 failed, 0 skipped"
		exit 1
	fi
fi
# The whole directory unless the arguments name files or tests themselves.
where=tests/integration
for arg in "$@"; do
	case $arg in *.py | *.py::*) where= ;; esac
done
# The VM's console is a terminal: no colour codes in its log.
[ -n "${VMTEST:-}" ] && set -- --color=no "$@"
exec "$py" -m pytest $where -v --durations=12 "$@"
