/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * SYN-ACK retransmissions, per listener: tcp:tcp_retransmit_synack fires once
 * for each (a handshake whose final ACK has not come: a lossy path, a client
 * gone, a SYN flood). Counted in the kernel by (namespace, port), no record:
 * user space reads the counts when it looks at the listeners (listeners.c).
 * Included by state.bpf.c.
 */
#ifndef SYNFIN_SYNACK_BPF_H
#define SYNFIN_SYNACK_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct sf_listener_port);
	__type(value, __u64);
} synack_retrans SEC(".maps");

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(synack_retransmitted, const struct sock *sk, const struct request_sock *req)
{
	struct sf_listener_port key = {
		.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum),
		.port = BPF_CORE_READ(sk, __sk_common.skc_num),
	};
	__u64 one = 1, *count;

	if (filter_netns && key.netns != filter_netns)
		return 0;
	count = bpf_map_lookup_elem(&synack_retrans, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&synack_retrans, &key, &one, BPF_NOEXIST);
	return 0;
}

#endif
