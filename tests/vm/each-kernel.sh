#!/usr/bin/env bash
# The VM suite once per kernel: KERNEL=/path/bzImage alone if set, else each
# Debian meta-package of VM_KERNELS (default: the 6.1 and 6.12 series). Every
# part prints its own result lines, naming the kernel it ran on; a guest that
# gave no result at all counts as one failure for that kernel.
set -uo pipefail
cd "$(dirname "$0")/../.."
status=0

run_one() {
	local label=$1 rc
	shift
	env "$@" tests/vm/run-vm.sh bash tests/vm/suite.sh
	rc=$?
	if [ "$rc" -eq 125 ] || [ "$rc" -eq 2 ]; then
		echo "vm ($label): 0 passed, 1 failed"
	fi
	[ "$rc" -eq 0 ] || status=1
}

if [ -n "${KERNEL:-}" ]; then
	run_one "$KERNEL" KERNEL="$KERNEL"
else
	for pkg in ${VM_KERNELS:-linux-image-amd64 linux-image-6.12-amd64}; do
		run_one "$pkg" KERNEL_PACKAGE="$pkg"
	done
fi
exit $status
