#!/usr/bin/env bash
# What runs inside the VM: the parser tests and the integration suite, each
# result line naming the guest's kernel.
set -o pipefail # a failing parser test must not hide behind sed's exit status
kernel=$(uname -r)
status=0

# Two no-op probes held on each timer and softirq tracepoint synfin uses and both syscall tracepoints
# (synfin's accept and close hooks) for the whole run: under QEMU's TCG, synfin's
# attach and detach there could otherwise panic or hang the guest (see the helper).
.output/bpftests/hold-tracepoints timer_start timer_expire_entry timer_cancel softirq_entry softirq_exit sys_enter sys_exit ||
	echo "vm: could not hold the timer and syscall tracepoints (QEMU TCG int3 workaround)" >&2

# The parser's lines are printed last: a guest that stops midway (run-vm.sh then
# runs the suite once more) must leave no result line behind to be counted twice.
parser=$(.output/bpftests/test_parser 2>&1 | sed "s|^bpf/parser:|bpf/parser (vm kernel $kernel):|") ||
	status=1
SYNFIN_SUITE_LABEL="integration (vm kernel $kernel)" tests/integration/run.sh || status=1
printf '%s\n' "$parser"
exit $status
