/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * skb:kfree_skb, which fires for every packet of every protocol dropped on
 * the host, for two things, in one program (one attach, one cost):
 *
 * - Every segment a time-wait mini-socket takes is freed by tcp_v4_rcv() or
 *   tcp_v6_rcv() with SKB_DROP_REASON_NOT_SPECIFIED (their time-wait path
 *   names no reason), so the FIN that ends a FIN_WAIT2 substate shows here
 *   (SF_TW_FIN_IN; user space keeps those whose tuple it follows).
 * - Any other reason is a real drop: a segment that opens or closes a
 *   connection (SYN, SYN-ACK, the handshake's ACK, FIN, RST), with the
 *   kernel's reason (SF_EV_DROP).
 *
 * The reason is compared first, then only TCP segments with one of those
 * flags, read from their own headers, become records. Included by
 * state.bpf.c: the same rings and filters.
 */
#ifndef SYNFIN_DROP_BPF_H
#define SYNFIN_DROP_BPF_H

/* Set by user space: which of the two it wants (tw_fin needs the timer programs). */
const volatile bool want_tw_fin = false;
const volatile bool want_drops = false;

static __always_inline int tw_fin_in(struct synfin_event *rec)
{
	rec->type = SF_EV_TW;
	rec->oldstate = SF_TCP_FIN_WAIT2;
	rec->newstate = SF_TCP_TIME_WAIT;
	rec->tw_kind = SF_TW_FIN_IN;
	publish_copy(rec, SF_CNT_TW_LOST);
	return 0;
}

/* The filters apply to the segment's ports whichever end is local. */
static __always_inline int drop_seen(struct synfin_event *rec, __u8 flags, __u32 reason)
{
	wire_order(rec);
	rec->type = SF_EV_DROP;
	rec->close_flags = flags;
	rec->drop_reason = reason;
	publish_copy(rec, SF_CNT_DROP_LOST);
	return 0;
}

/*
 * Reasons that are a socket's own queues emptied as it goes (its unsent or
 * unacknowledged segments at close, a FIN among them), not the network's
 * drops: never reported. Each compared only where this kernel has it.
 */
static __always_inline bool own_queue_purged(__u32 reason)
{
	return (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE) &&
		reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE)) ||
	       (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_SOCKET_CLOSE) &&
		reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_SOCKET_CLOSE));
}

/* A pure ACK: the ACK flag alone (PSH aside) and no payload, wherever skb->data stands. */
static __always_inline bool pure_ack(const struct sk_buff *skb, __u8 flags, struct tcphdr *tcp)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 transport = BPF_CORE_READ(skb, transport_header);
	long end = BPF_CORE_READ(skb, data) - head + BPF_CORE_READ(skb, len);

	if ((flags & ~TCP_FLAG_PSH) != TCP_FLAG_ACK ||
	    bpf_probe_read_kernel(tcp, sizeof(*tcp), head + transport))
		return false;
	return end == transport + tcp->doff * 4;
}

/*
 * The handshake's final ACK has no flag of its own: the socket the kernel put
 * on the segment tells it. Coming in, early demux (every device but loopback,
 * whose segments keep their route) put the request socket there; going out,
 * its sender is a client that has neither sent nor received a byte, and the
 * ACK is at its next sequence number (a keepalive probe is one below).
 */
static __always_inline bool handshake_ack(const struct sk_buff *skb, __u8 flags)
{
	struct sock *sk = skb->sk;
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct tcphdr tcp;

	if (!sk || !pure_ack(skb, flags, &tcp))
		return false;
	if (sk->__sk_common.skc_state == SF_TCP_NEW_SYN_RECV)
		return true;
	return sk->__sk_common.skc_state == SF_TCP_ESTABLISHED &&
	       sk->__sk_common.skc_num == bpf_ntohs(tcp.source) &&
	       BPF_CORE_READ(tp, snd_nxt) == bpf_ntohl(tcp.seq) &&
	       !BPF_CORE_READ(tp, bytes_received) && !BPF_CORE_READ(tp, bytes_sent);
}

/* Unnamed: only a time-wait mini-socket's FIN; named: a segment that opens or closes one. */
static __always_inline bool reported(const struct sk_buff *skb, __u8 flags, bool unnamed)
{
	if (unnamed)
		return flags & TCP_FLAG_FIN;
	return (flags & (TCP_FLAG_FIN | TCP_FLAG_SYN | TCP_FLAG_RST)) || handshake_ack(skb, flags);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(skb_dropped, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	bool unnamed = reason == bpf_core_enum_value(enum skb_drop_reason,
						     SKB_DROP_REASON_NOT_SPECIFIED);
	struct synfin_event rec = {};
	__u8 flags;

	if (unnamed ? !want_tw_fin : !want_drops || own_queue_purged(reason))
		return 0;
	flags = read_segment_tuple(skb, &rec);
	if (!reported(skb, flags, unnamed))
		return 0;
	if (!(filter_family && rec.family != filter_family) &&
	    (!filter_netns || rec.netns == filter_netns) && (ports_match(rec.sport, rec.dport) ||
							     ports_match(rec.dport, rec.sport)))
		return unnamed ? tw_fin_in(&rec) : drop_seen(&rec, flags, reason);
	return 0;
}

#endif
