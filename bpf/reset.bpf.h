/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The RSTs the kernel sends, with its reason: tcp:tcp_send_reset, whose
 * third argument (enum sk_rst_reason) came with 6.10; loaded only where BTF
 * shows it (kfeatures.c, rst_reason). sk is the socket the RST is for (a full
 * socket, a request, a time-wait mini-socket: all begin with sock_common) or
 * NULL, when no socket wanted the segment (a SYN to a closed port, a segment
 * for a connection already gone); skb is the segment answered, NULL for an
 * active reset (a close with unread data, SO_LINGER {1, 0}, an abort).
 * Included by state.bpf.c: the same rings and filters.
 */
#ifndef SYNFIN_RESET_BPF_H
#define SYNFIN_RESET_BPF_H

static __always_inline void read_sock_tuple(const struct sock *sk, struct synfin_event *rec)
{
	rec->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	rec->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	/* A full socket past CLOSE has left its bind bucket (skc_num 0): its inet_sport stays. */
	if (!rec->sport && BPF_CORE_READ(sk, __sk_common.skc_state) == SF_TCP_CLOSE)
		rec->sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	rec->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	rec->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	rec->oldstate = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (rec->family == AF_INET) {
		*(__u32 *)rec->saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		*(__u32 *)rec->daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	} else {
		bpf_core_read(rec->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(rec->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(rst_sent, const struct sock *sk, const struct sk_buff *skb, enum sk_rst_reason reason)
{
	struct synfin_event rec = {};

	if (sk)
		read_sock_tuple(sk, &rec);
	else if (!skb || !read_segment_tuple(skb, &rec))
		return 0;
	if (tuple_filtered_out(&rec))
		return 0;
	rec.type = SF_EV_RST;
	rec.skaddr = (__u64)sk;
	rec.rst_reason = reason;
	publish_copy(&rec, SF_CNT_RST_LOST);
	return 0;
}

#endif
