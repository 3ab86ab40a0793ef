// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor of every state tracer: a program on sock:inet_sock_set_state that
 * does nothing. What a storm loses under it is the hook's own price (the
 * tracepoint's static key on, the BPF trampoline, one call per transition),
 * which no tracer on this tracepoint, synfin included, can get under.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(nothing, const struct sock *sk, const int oldstate, const int newstate)
{
	return 0;
}
