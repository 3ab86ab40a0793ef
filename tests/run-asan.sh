#!/usr/bin/env bash
# The unit tests and the integration suite once more, with synfin and the
# tests built under AddressSanitizer + UndefinedBehaviorSanitizer (make asan-build).
# Any sanitizer report makes the binary exit non-zero, which fails the test.
set -uo pipefail
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
passed=0 failed=0
for t in .output/asan/tests/test_*; do
	if "$t" >/dev/null 2>.output/asan/"$(basename "$t")".log; then
		passed=$((passed + 1))
	else
		echo "FAIL $t under ASan/UBSan:"; cat .output/asan/"$(basename "$t")".log
		failed=$((failed + 1))
	fi
done
echo "unit (asan+ubsan): $passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
if [ "$(id -u)" -eq 0 ]; then
	SYNFIN_BIN=.output/asan/synfin SYNFIN_SKIP_SLOW=1 SYNFIN_SUITE_LABEL="integration (asan+ubsan)" \
		tests/integration/run.sh || status=1
fi
exit $status
