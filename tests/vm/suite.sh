#!/usr/bin/env bash
# What runs inside the VM: the parser tests and the integration suite, each
# result line naming the guest's kernel.
set -o pipefail # a failing parser test must not hide behind sed's exit status
kernel=$(uname -r)
status=0

# Two no-op probes held on each timer tracepoint for the whole run: under QEMU's
# TCG, synfin's detach from them could otherwise panic the guest (see the helper).
.output/bpftests/hold-tracepoints timer_start timer_expire_entry timer_cancel ||
	echo "vm: could not hold the timer tracepoints (QEMU TCG int3 workaround)" >&2

.output/bpftests/test_parser | sed "s|^bpf/parser:|bpf/parser (vm kernel $kernel):|" || status=1
SYNFIN_SUITE_LABEL="integration (vm kernel $kernel)" tests/integration/run.sh || status=1
exit $status
