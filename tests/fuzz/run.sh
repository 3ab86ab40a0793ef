#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 20) from its seed corpus and
# ends with 'fuzz: N passed, N failed' (a target fails when it finds a crash).
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-20}
passed=0 failed=0
for target in .output/fuzz/bin/fuzz_*; do
	name=$(basename "$target")
	corpus=.output/fuzz/corpus-$name
	mkdir -p "$corpus"
	[ -d "tests/fuzz/seeds/$name" ] && cp -n tests/fuzz/seeds/"$name"/* "$corpus"/ 2>/dev/null
	log=.output/fuzz/$name.log
	if "$target" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 \
		-artifact_prefix=.output/fuzz/"$name"- "$corpus" >"$log" 2>&1; then
		runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo '?')
		echo "ok   $name: $runs executions in ${seconds}s, no finding"
		passed=$((passed + 1))
	else
		echo "FAIL $name: finding, see $log"
		tail -n 30 "$log"
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
