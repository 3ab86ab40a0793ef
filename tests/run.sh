#!/usr/bin/env bash
# The whole suite: unit tests, integration tests against this kernel, both
# again under ASan + UBSan, the fuzz targets for a bounded time, then (when
# SYNFIN_SKIP_VM is unset) the integration tests inside VMs booting
# Debian's 6.1 and 6.12 kernels (tests/vm/each-kernel.sh).
# Every part prints 'LABEL: N passed, N failed[, N skipped]'; this script adds
# them up into the closing line.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0

# Runs one part, echoing its output, and adds the counts of every result
# line it printed ('LABEL: N passed, N failed[, N skipped]') to the totals.
run_part() {
	local log line p f s found=0 status
	log=$(mktemp)
	"$@" 2>&1 | tee "$log"
	status=${PIPESTATUS[0]}
	while IFS= read -r line; do
		found=1
		p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line")
		f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
		s=$(grep -oE '[0-9]+ skipped' <<<"$line" | cut -d' ' -f1)
		passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${s:-0}))
	done < <(grep -E '^[^ ].*: [0-9]+ passed, [0-9]+ failed' "$log")
	rm -f "$log"
	if [ "$found" -eq 0 ]; then
		echo "tests/run.sh: '$*' printed no result line (exit $status): counted as one failure"
		failed=$((failed + 1))
	fi
}

for t in .output/tests/test_*; do
	run_part "$t"
done

# The classic tracepoint twin (and bcc's tools) find tracepoints through
# tracefs, which a bare machine may not have mounted.
ensure_tracefs() {
	[ -d /sys/kernel/tracing/events ] || [ -d /sys/kernel/debug/tracing/events ] ||
		mount -t tracefs nodev /sys/kernel/tracing ||
		echo "tests/run.sh: could not mount tracefs; the classic tracepoint tests will fail"
}

if [ "$(id -u)" -eq 0 ]; then
	ensure_tracefs
	run_part .output/bpftests/test_parser
	SYNFIN_SUITE_LABEL="integration (host kernel $(uname -r))" run_part tests/integration/run.sh
else
	echo "integration: skipped, needs root (sudo make check)"
	skipped=$((skipped + 1))
fi

if [ -x .output/asan/synfin ]; then
	run_part bash tests/run-asan.sh
fi

if ls .output/fuzz/bin/fuzz_* >/dev/null 2>&1; then
	run_part bash tests/fuzz/run.sh "${FUZZ_SECONDS:-20}"
fi

if [ -z "${SYNFIN_SKIP_VM:-}" ] && [ "$(id -u)" -eq 0 ]; then
	run_part tests/vm/each-kernel.sh
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
