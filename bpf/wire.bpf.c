// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * synfin packet layer: TCP segments as they cross the wire, XDP on ingress
 * and TC on egress, parsed by one bounded parser. Both programs always pass
 * the packet: synfin observes, it never changes traffic.
 *
 * By default only the segments that open and close connections are emitted:
 * SYN, SYN-ACK, FIN, RST, the ACK that completes a handshake and the ACK of a
 * FIN. For the last two a bounded LRU map remembers, per direction of a flow,
 * which acknowledgement number would complete what.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "synfin.h"
#include "common.bpf.h"

#define XDP_PASS 2
#define TC_ACT_OK 0

#include "parse.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile bool all_segments = false;
const volatile __u16 filter_port = 0;
const volatile __u8 filter_family = 0;
const volatile __u64 wakeup_bytes = 1 << 20;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by user space */
} segments SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SF_SEG_MAX);
	__type(key, __u32);
	__type(value, __u64);
} seg_counters SEC(".maps");

/* One direction of a flow: the sender of the acknowledgement we wait for. */
struct expect_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 family;
};

struct expect {
	__u32 handshake_ack; /* the SYN-ACK's seq + 1; 0 = none */
	__u32 fin_ack;       /* the peer's FIN's seq + len + 1; 0 = none */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct expect_key);
	__type(value, struct expect);
} expects SEC(".maps");

static __always_inline void count(__u32 idx)
{
	counter_inc(&seg_counters, idx);
}

static __always_inline void count_flags(__u8 flags)
{
	count(SF_SEG_SEEN);
	if ((flags & (SF_TCPF_SYN | SF_TCPF_ACK)) == SF_TCPF_SYN)
		count(SF_SEG_SYN);
	else if (flags & SF_TCPF_SYN)
		count(SF_SEG_SYNACK);
	if (flags & SF_TCPF_RST)
		count(SF_SEG_RST);
	if (flags & SF_TCPF_FIN)
		count(SF_SEG_FIN);
}

/* The key of the reverse direction: who must acknowledge this segment. */
static __always_inline void reply_key(const struct synfin_segment *s, struct expect_key *k)
{
	__builtin_memcpy(k->saddr, s->daddr, 16);
	__builtin_memcpy(k->daddr, s->saddr, 16);
	k->sport = s->dport;
	k->dport = s->sport;
	k->family = s->family;
}

static __always_inline void own_key(const struct synfin_segment *s, struct expect_key *k)
{
	__builtin_memcpy(k->saddr, s->saddr, 16);
	__builtin_memcpy(k->daddr, s->daddr, 16);
	k->sport = s->sport;
	k->dport = s->dport;
	k->family = s->family;
}

/* A SYN-ACK or a FIN: remember what acknowledgement would complete it. */
static __always_inline void expect_reply(const struct synfin_segment *s)
{
	struct expect_key k = {};
	struct expect *e, fresh = {};

	reply_key(s, &k);
	e = bpf_map_lookup_elem(&expects, &k);
	if (!e) {
		bpf_map_update_elem(&expects, &k, &fresh, BPF_ANY);
		e = bpf_map_lookup_elem(&expects, &k);
		if (!e)
			return;
	}
	if ((s->flags & (SF_TCPF_SYN | SF_TCPF_ACK)) == (SF_TCPF_SYN | SF_TCPF_ACK))
		e->handshake_ack = s->seq + 1;
	if (s->flags & SF_TCPF_FIN)
		e->fin_ack = s->seq + s->len + 1;
}

/*
 * Is this pure ACK the one that completes a handshake or acknowledges a FIN?
 * Kept, not deleted, on a match: on lo the same ACK passes egress and ingress.
 */
static __always_inline bool is_awaited_ack(const struct synfin_segment *s)
{
	struct expect_key k = {};
	struct expect *e;

	/* ECE and CWR (ECN) may ride on any ACK: only the six classic flags decide. */
	if ((s->flags & 0x3f) != SF_TCPF_ACK || s->len)
		return false;
	own_key(s, &k);
	e = bpf_map_lookup_elem(&expects, &k);
	return e && ((e->handshake_ack && s->ack == e->handshake_ack) ||
		     (e->fin_ack && s->ack == e->fin_ack));
}

static __always_inline bool wanted(const struct synfin_segment *s)
{
	bool lifecycle = s->flags & (SF_TCPF_SYN | SF_TCPF_FIN | SF_TCPF_RST);

	if (filter_family && s->family != filter_family)
		return false;
	if (filter_port && s->sport != filter_port && s->dport != filter_port)
		return false;
	if (s->flags & (SF_TCPF_SYN | SF_TCPF_FIN))
		expect_reply(s);
	return all_segments || lifecycle || is_awaited_ack(s);
}

static __always_inline void emit(const struct synfin_segment *s)
{
	struct synfin_segment *out = bpf_ringbuf_reserve(&segments, sizeof(*out), 0);
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (!out) {
		count(SF_SEG_LOST);
		return;
	}
	__builtin_memcpy(out, s, sizeof(*out));
	if (bpf_ringbuf_query(&segments, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(out, flags);
	count(SF_SEG_EMITTED);
}

static __always_inline void handle(void *data, void *data_end, __u32 ifindex, __u8 dir)
{
	struct cursor c = { .pos = data, .end = data_end };
	struct synfin_segment s = {};
	__u32 l4_len = 0;
	__u16 proto;
	int res;

	res = parse_eth(&c, &proto);
	if (res == PARSE_TCP) {
		if (proto == ETH_P_IP)
			res = parse_ipv4(&c, &s, &l4_len);
		else if (proto == ETH_P_IPV6)
			res = parse_ipv6(&c, &s, &l4_len);
		else
			res = PARSE_OTHER;
	}
	if (res == PARSE_TCP)
		res = parse_tcp(&c, &s, l4_len);
	if (res == PARSE_MALFORMED)
		count(SF_SEG_MALFORMED);
	if (res != PARSE_TCP)
		return;
	count_flags(s.flags);
	if (!wanted(&s))
		return;
	s.ts_ns = bpf_ktime_get_ns();
	s.ifindex = ifindex;
	s.dir = dir;
	s.type = SF_EV_SEGMENT;
	emit(&s);
}

SEC("xdp")
int wire_in(struct xdp_md *ctx)
{
	handle((void *)(long)ctx->data, (void *)(long)ctx->data_end, ctx->ingress_ifindex, 0);
	return XDP_PASS;
}

SEC("tc")
int wire_out(struct __sk_buff *skb)
{
	handle((void *)(long)skb->data, (void *)(long)skb->data_end, skb->ifindex, 1);
	return TC_ACT_OK;
}
