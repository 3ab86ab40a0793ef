/*
 * tests/vm/hold-tracepoints NAME...: holds two no-op raw tracepoint programs on
 * each named tracepoint for as long as the VM runs (it forks; the child keeps
 * them), so that synfin's own attach and detach there never patch the
 * tracepoint's jump label or static call: with two probes or more the kernel
 * already calls the iterator. Exit status 0 once everything is held.
 *
 * Why: QEMU's TCG can go on running an int3 that the kernel's text patching has
 * already replaced (Red Hat bz 2216496: "int3: 0000 [#1]" at __mod_timer, code
 * "66 <90>"). On 6.12, unregistering a tracepoint probe arms an SRCU timer on
 * the same CPU at once, so the detach of synfin's timer:timer_start program
 * patched that site and ran it within microseconds: the guest panicked in
 * enqueue_timer. The syscall tracepoints (sys_enter: synfin's close hook;
 * sys_exit: its accept hooks) are patched in the path every system call takes,
 * and are held together: holding one keeps every task on the slow syscall path
 * (TIF_SYSCALL_TRACEPOINT), where the other's site then runs all the time (with
 * only sys_enter held, two 6.12 guests in a row died of "int3" at
 * syscall_exit_to_user_mode_prepare). Real hardware and KVM patch correctly;
 * this is for the emulator.
 */
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <unistd.h>

#define PROBES_HELD 2

static int hold_one(const char *tracepoint)
{
	const struct bpf_insn return_zero[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int prog = bpf_prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL, "GPL", return_zero, 2, NULL);

	if (prog < 0 || bpf_raw_tracepoint_open(tracepoint, prog) < 0) {
		perror(tracepoint);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: hold-tracepoints TRACEPOINT...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++)
		for (int k = 0; k < PROBES_HELD; k++)
			if (hold_one(argv[i]))
				return 1;
	if (fork() != 0)
		return 0;
	for (;;)
		pause();
}
