#include "kfeatures.h"
#include <ctype.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <string.h>
#include <unistd.h>
#include "names.h"

/* Does the kernel accept a tp_btf program on this tracepoint? Loading one tells. */
static bool tp_btf_loads(const struct btf *vmlinux, const char *tracepoint_typedef)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int id = btf__find_by_name_kind(vmlinux, tracepoint_typedef, BTF_KIND_TYPEDEF);
	int fd;

	if (id < 0)
		return false;
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_RAW_TP,
		    .attach_btf_id = (__u32)id);
	fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, NULL, "GPL", insns, 2, &opts);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Does the enum or struct called type have a value or member called name? */
static bool type_names(const struct btf *btf, const char *type, int kind, const char *name)
{
	int id = btf__find_by_name_kind(btf, type, kind);
	const struct btf_type *t = id < 0 ? NULL : btf__type_by_id(btf, (__u32)id);

	for (int i = 0; t && i < btf_vlen(t); i++) {
		__u32 off = kind == BTF_KIND_ENUM ? btf_enum(t)[i].name_off : btf_members(t)[i].name_off;

		if (!strcmp(btf__name_by_offset(btf, off), name))
			return true;
	}
	return false;
}

/* A kernel symbol's address from /proc/kallsyms: what libbpf resolves a __ksym from.
 * 0 when it is missing or hidden (kernel.kptr_restrict). */
static unsigned long long kallsyms_address(const char *name)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	unsigned long long addr = 0, a;
	char line[512], sym[256], type;

	if (!f)
		return 0;
	while (!addr && fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx %c %255s", &a, &type, sym) == 3 && !strcmp(sym, name))
			addr = a;
	fclose(f);
	return addr;
}

/* How many arguments a tracepoint passes (its btf_trace_ typedef, less the context). */
static int tracepoint_arity(const struct btf *vmlinux, const char *tracepoint_typedef)
{
	int id = btf__find_by_name_kind(vmlinux, tracepoint_typedef, BTF_KIND_TYPEDEF);
	const struct btf_type *t = id < 0 ? NULL : btf__type_by_id(vmlinux, (__u32)id);

	while (t && (btf_is_typedef(t) || btf_is_ptr(t)))
		t = btf__type_by_id(vmlinux, t->type);
	return t && btf_is_func_proto(t) ? btf_vlen(t) - 1 : -1;
}

/* Each value of enum `type` named as the kernel names it, lower case, without `prefix`. */
static void name_enum(const struct btf *vmlinux, const char *type, const char *prefix,
		      void (*set)(uint32_t value, const char *name))
{
	int id = btf__find_by_name_kind(vmlinux, type, BTF_KIND_ENUM);
	const struct btf_type *t = id < 0 ? NULL : btf__type_by_id(vmlinux, (__u32)id);
	char name[REASON_NAME_MAX];

	for (int i = 0; t && i < btf_vlen(t); i++) {
		const char *full = btf__name_by_offset(vmlinux, btf_enum(t)[i].name_off);
		size_t skip = strncmp(full, prefix, strlen(prefix)) ? 0 : strlen(prefix);
		size_t n = 0;

		for (; full[skip + n] && n < sizeof(name) - 1; n++)
			name[n] = (char)tolower((unsigned char)full[skip + n]);
		name[n] = 0;
		set((uint32_t)btf_enum(t)[i].val, name);
	}
}

void features_name_reasons(const struct btf *vmlinux)
{
	name_enum(vmlinux, "sk_rst_reason", "SK_RST_REASON_", rst_reason_set);
	name_enum(vmlinux, "skb_drop_reason", "SKB_DROP_REASON_", drop_reason_set);
}

/* A classic tracepoint exists where tracefs lists it (libbpf attaches through its id there). */
static bool tracefs_has_event(const char *event)
{
	static const char *const roots[] = { "/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events" };
	char path[256];

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s/id", roots[i], event);
		if (access(path, R_OK) == 0)
			return true;
	}
	return false;
}

void features_probe_tracefs(struct kernel_features *f)
{
	f->accept_hook = tracefs_has_event("syscalls/sys_exit_accept4") &&
			 tracefs_has_event("syscalls/sys_exit_accept") &&
			 tracefs_has_event("syscalls/sys_enter_close");
}

static bool tw_timer_hooks_work(const struct btf *vmlinux)
{
	return tp_btf_loads(vmlinux, "btf_trace_timer_start") &&
	       tp_btf_loads(vmlinux, "btf_trace_timer_expire_entry") &&
	       tp_btf_loads(vmlinux, "btf_trace_timer_cancel") &&
	       tp_btf_loads(vmlinux, "btf_trace_softirq_entry") &&
	       tp_btf_loads(vmlinux, "btf_trace_softirq_exit") &&
	       kallsyms_address("tw_timer_handler") != 0;
}

void features_probe(struct kernel_features *f, const struct btf *vmlinux)
{
	memset(f, 0, sizeof(*f));
	f->tp_btf_set_state = tp_btf_loads(vmlinux, "btf_trace_inet_sock_set_state");
	f->tcx = type_names(vmlinux, "bpf_attach_type", BTF_KIND_ENUM, "BPF_TCX_EGRESS");
	f->cgroup_ancestors = type_names(vmlinux, "cgroup", BTF_KIND_STRUCT, "ancestors");
	f->tw_timer_hooks = tw_timer_hooks_work(vmlinux);
	f->tw_fin_hook = tp_btf_loads(vmlinux, "btf_trace_kfree_skb") &&
			 type_names(vmlinux, "skb_drop_reason", BTF_KIND_ENUM,
				    "SKB_DROP_REASON_NOT_SPECIFIED");
	f->rst_reason = tracepoint_arity(vmlinux, "btf_trace_tcp_send_reset") == 3 &&
			tp_btf_loads(vmlinux, "btf_trace_tcp_send_reset");
	f->exit_hook = tp_btf_loads(vmlinux, "btf_trace_sched_process_exit");
	f->synack_hook = tp_btf_loads(vmlinux, "btf_trace_tcp_retransmit_synack");
	f->drop_reasons = tracepoint_arity(vmlinux, "btf_trace_kfree_skb") >= 3 &&
			  tp_btf_loads(vmlinux, "btf_trace_kfree_skb") &&
			  type_names(vmlinux, "skb_drop_reason", BTF_KIND_ENUM,
				     "SKB_DROP_REASON_NOT_SPECIFIED");
}

void features_print(const struct kernel_features *f, FILE *out)
{
	fprintf(out, "synfin: kernel feature tp_btf_set_state: %s (%s)\n",
		f->tp_btf_set_state ? "yes" : "no",
		f->tp_btf_set_state ? "the BTF-typed tracepoint program" :
				      "the classic tracepoint twin, through tracefs");
	fprintf(out, "synfin: kernel feature tcx: %s (%s)\n", f->tcx ? "yes" : "no",
		f->tcx ? "-i egress through a tcx link" : "-i egress through a clsact filter");
	fprintf(out, "synfin: kernel feature cgroup_ancestors: %s (%s)\n",
		f->cgroup_ancestors ? "yes" : "no",
		f->cgroup_ancestors ? "--cgroup walks cgroup->ancestors[]" :
				      "--cgroup reads cgroup->ancestor_ids[]");
	fprintf(out, "synfin: kernel feature tw_timer_hooks: %s (%s)\n",
		f->tw_timer_hooks ? "yes" : "no",
		f->tw_timer_hooks ? "TIME_WAIT followed through the mini-socket's timer" :
				    "TIME_WAIT followed through sock_diag lookups");
	fprintf(out, "synfin: kernel feature tw_fin_hook: %s (%s)\n", f->tw_fin_hook ? "yes" : "no",
		f->tw_fin_hook ? "a FIN_WAIT2 mini-socket's TIME_WAIT seen at the peer's FIN" :
				 "a FIN_WAIT2 mini-socket's TIME_WAIT not seen");
	fprintf(out, "synfin: kernel feature rst_reason: %s (%s)\n", f->rst_reason ? "yes" : "no",
		f->rst_reason ? "resets carry the kernel's reason; RSTs for no socket are seen" :
				"reset_reason is null");
	fprintf(out, "synfin: kernel feature accept_hook: %s (%s)\n", f->accept_hook ? "yes" : "no",
		f->accept_hook ? "an accepted socket is held by the process that accepted it, a "
				 "shared one by who keeps it when a holder closes its copy" :
				 "no syscalls:sys_exit_accept4 in tracefs (is it mounted?): an "
				 "accepted socket is owned by its listener's holder until closed");
	fprintf(out, "synfin: kernel feature drop_reasons: %s (%s)\n", f->drop_reasons ? "yes" : "no",
		f->drop_reasons ? "dropped SYN, SYN-ACK, FIN, RST and handshake-ACK segments, with "
				  "the kernel's reason" :
				  "drops are not seen: drops is null");
	fprintf(out, "synfin: kernel feature synack_hook: %s (%s)\n", f->synack_hook ? "yes" : "no",
		f->synack_hook ? "SYN-ACK retransmissions counted per listener" :
				 "listeners' synack_retrans is null");
	fprintf(out, "synfin: kernel feature exit_hook: %s (%s)\n", f->exit_hook ? "yes" : "no",
		f->exit_hook ? "a holder's exit hands its sockets to the processes that still hold them" :
			       "a holder's exit is not seen");
}
