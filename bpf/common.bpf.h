/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What synfin's BPF programs share: constants vmlinux.h lacks (the kernel has
 * them as macros, which BTF does not carry), the per-CPU counter bump, and the
 * CO-RE flavours of kernel structs that changed shape, each with the kernel
 * change it answers (libbpf-tools' core_fixes.bpf.h is the model).
 */
#ifndef SYNFIN_COMMON_BPF_H
#define SYNFIN_COMMON_BPF_H

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* Adds one to entry idx of a per-CPU array of __u64 counters. */
static __always_inline void counter_add(void *counters, __u32 idx, __u64 n)
{
	__u64 *val = bpf_map_lookup_elem(counters, &idx);

	if (val)
		*val += n;
}

static __always_inline void counter_inc(void *counters, __u32 idx)
{
	counter_add(counters, idx, 1);
}

/*
 * Before commit 7f203bc89eb6 ("cgroup: Replace cgroup->ancestor_ids[]
 * with ->ancestors[]"), struct cgroup held its ancestors' ids, not pointers.
 */
struct cgroup___ancestor_ids {
	int level;
	__u64 ancestor_ids[];
} __attribute__((preserve_access_index));

/*
 * A namespace's reference count was struct ns_common's `count` until 6.18
 * renamed it `__ns_ref`.
 */
struct ns_common___count {
	refcount_t count;
} __attribute__((preserve_access_index));

struct net___count {
	struct ns_common___count ns;
} __attribute__((preserve_access_index));

#endif /* SYNFIN_COMMON_BPF_H */
