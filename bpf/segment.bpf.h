/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A received TCP segment's tuple and namespace, read from the skb's own
 * headers (included by state.bpf.c), for the programs that see a segment
 * but no socket: the one a time-wait mini-socket took (timewait.bpf.h), the
 * one answered by a RST when no socket wanted it (reset.bpf.h). The segment
 * came in: its destination is the local side.
 */
#ifndef SYNFIN_SEGMENT_BPF_H
#define SYNFIN_SEGMENT_BPF_H

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10

static __always_inline bool read_ip_tuple(const unsigned char *nh, __u16 proto,
					  struct synfin_event *rec)
{
	if (proto == ETH_P_IP) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), nh) || ip.protocol != IPPROTO_TCP)
			return false;
		rec->family = AF_INET;
		*(__u32 *)rec->saddr = ip.daddr;
		*(__u32 *)rec->daddr = ip.saddr;
		return true;
	}
	if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), nh) || ip6.nexthdr != IPPROTO_TCP)
			return false;
		rec->family = AF_INET6;
		__builtin_memcpy(rec->saddr, &ip6.daddr, 16);
		__builtin_memcpy(rec->daddr, &ip6.saddr, 16);
		return true;
	}
	return false;
}

/* Fills rec's tuple, family and netns; the TCP flags byte, or 0 when not a TCP segment. */
static __always_inline __u8 read_segment_tuple(const struct sk_buff *skb, struct synfin_event *rec)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	struct tcphdr tcp;

	if (!read_ip_tuple(head + BPF_CORE_READ(skb, network_header),
			   bpf_ntohs(BPF_CORE_READ(skb, protocol)), rec) ||
	    bpf_probe_read_kernel(&tcp, sizeof(tcp), head + BPF_CORE_READ(skb, transport_header)))
		return 0;
	rec->sport = bpf_ntohs(tcp.dest);
	rec->dport = bpf_ntohs(tcp.source);
	rec->netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	if (!rec->netns) /* no device yet (a drop on the way out): the sending socket's */
		rec->netns = BPF_CORE_READ(skb, sk, __sk_common.skc_net.net, ns.inum);
	return ((__u8 *)&tcp)[13];
}

/* The segment as on the wire, source first (read_segment_tuple() puts the destination first). */
static __always_inline void wire_order(struct synfin_event *rec)
{
	__u8 addr[16];
	__u16 port = rec->sport;

	__builtin_memcpy(addr, rec->saddr, 16);
	__builtin_memcpy(rec->saddr, rec->daddr, 16);
	__builtin_memcpy(rec->daddr, addr, 16);
	rec->sport = rec->dport;
	rec->dport = port;
}

#endif
