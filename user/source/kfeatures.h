/*
 * What this kernel offers that not every kernel synfin runs on does, probed
 * once at start-up from its BTF (a type, a struct field, an enum value) or by
 * asking it (a two-instruction program), never from its version. `-v` lists
 * what was found.
 */
#ifndef SYNFIN_KFEATURES_H
#define SYNFIN_KFEATURES_H
#include <stdbool.h>
#include <stdio.h>

struct kernel_features {
	bool tp_btf_set_state; /* a tp_btf program loads on sock:inet_sock_set_state */
	bool tcx;              /* enum bpf_attach_type has BPF_TCX_EGRESS (tcx links, 6.6) */
	bool cgroup_ancestors; /* struct cgroup has ancestors[] (7f203bc89eb6), not ancestor_ids[] */
	/* tp_btf programs load on timer:timer_start/_expire_entry/_cancel and kallsyms
	 * gives tw_timer_handler: TIME_WAIT is followed through its timer, not sock_diag */
	bool tw_timer_hooks;
	/* a tp_btf program loads on skb:kfree_skb and enum skb_drop_reason has
	 * SKB_DROP_REASON_NOT_SPECIFIED: the FIN that ends a FIN_WAIT2 mini-socket is seen */
	bool tw_fin_hook;
	/* tcp:tcp_send_reset has its reason argument (enum sk_rst_reason, 6.10): resets
	 * carry the kernel's reason, and RSTs sent for no socket are seen */
	bool rst_reason;
	/* tracefs lists syscalls:sys_exit_accept4 and sys_exit_accept: a socket's
	 * holder is learnt when a process that did not listen() accepts it */
	bool accept_hook;
	/* a tp_btf program loads on sched:sched_process_exit: a holder's exit is seen */
	bool exit_hook;
	/* skb:kfree_skb has its reason argument (enum skb_drop_reason, 5.17): drops of
	 * the segments that open and close connections are seen with the kernel's reason */
	bool drop_reasons;
	/* a tp_btf program loads on tcp:tcp_retransmit_synack: SYN-ACK retransmissions per listener */
	bool synack_hook;
};

struct btf;

/* Fills f from the kernel's BTF (vmlinux, already parsed). */
void features_probe(struct kernel_features *f, const struct btf *vmlinux);
/* The features tracefs tells (after synfin has made sure it is mounted). */
void features_probe_tracefs(struct kernel_features *f);
/* The kernel's names for its reset and drop reasons (enum sk_rst_reason,
 * enum skb_drop_reason), into names.h. */
void features_name_reasons(const struct btf *vmlinux);
/* One line per feature: "synfin: kernel feature NAME: yes|no (what it means)". */
void features_print(const struct kernel_features *f, FILE *out);

#endif
