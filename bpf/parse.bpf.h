/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Bounds-checked header parsers for the packet layer, in the style of the
 * xdp-tutorial's parsing helpers: every parser takes a cursor and the end of
 * the packet and checks the bounds before each read. Loops are bounded so the
 * verifier can see their end.
 */
#ifndef SYNFIN_PARSE_BPF_H
#define SYNFIN_PARSE_BPF_H

#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_DSTOPTS 60
#define MAX_VLAN_TAGS 2
#define MAX_IPV6_EXT 6
#define MAX_TCP_OPT_BYTES 40

enum parse_result {
	PARSE_TCP = 0,   /* a TCP header was parsed */
	PARSE_OTHER,     /* not TCP, or a fragment without the TCP header */
	PARSE_MALFORMED, /* truncated or inconsistent */
};

struct cursor {
	void *pos;
	void *end;
};

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

static __always_inline int parse_eth(struct cursor *c, __u16 *proto)
{
	struct ethhdr *eth = c->pos;
	struct vlan_tag *tag;

	if ((void *)(eth + 1) > c->end)
		return PARSE_MALFORMED;
	c->pos = eth + 1;
	*proto = bpf_ntohs(eth->h_proto);
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (*proto != ETH_P_8021Q && *proto != ETH_P_8021AD)
			break;
		tag = c->pos;
		if ((void *)(tag + 1) > c->end)
			return PARSE_MALFORMED;
		c->pos = tag + 1;
		*proto = bpf_ntohs(tag->proto);
	}
	return PARSE_TCP;
}

/* On success *l4_len is what the IP header says follows it (TCP header + payload). */
static __always_inline int parse_ipv4(struct cursor *c, struct synfin_segment *s, __u32 *l4_len)
{
	struct iphdr *ip = c->pos;
	__u32 hlen, tot;

	if ((void *)(ip + 1) > c->end)
		return PARSE_MALFORMED;
	hlen = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || hlen < sizeof(*ip) || tot < hlen)
		return PARSE_MALFORMED;
	if (c->pos + hlen > c->end)
		return PARSE_MALFORMED;
	/* Only an unfragmented packet or a first fragment carries the TCP header. */
	if (bpf_ntohs(ip->frag_off) & 0x1fff)
		return PARSE_OTHER;
	if (ip->protocol != IPPROTO_TCP)
		return PARSE_OTHER;
	s->family = AF_INET;
	__builtin_memcpy(s->saddr, &ip->saddr, 4);
	__builtin_memcpy(s->daddr, &ip->daddr, 4);
	c->pos += hlen;
	*l4_len = tot - hlen;
	return PARSE_TCP;
}

struct ipv6_ext {
	__u8 next;
	__u8 hdrlen;
	__be16 frag_off; /* fragment header only */
};

/* Walks the usual extension headers; returns the next header after them. */
static __always_inline int skip_ipv6_ext(struct cursor *c, __u8 *next, __u32 *ext_len)
{
	for (int i = 0; i < MAX_IPV6_EXT; i++) {
		struct ipv6_ext *ext = c->pos;
		__u32 len;

		if (*next == IPPROTO_TCP)
			return PARSE_TCP;
		if (*next != IPPROTO_HOPOPTS && *next != IPPROTO_ROUTING && *next != IPPROTO_DSTOPTS &&
		    *next != IPPROTO_FRAGMENT && *next != IPPROTO_AH)
			return PARSE_OTHER;
		if ((void *)(ext + 1) > c->end)
			return PARSE_MALFORMED;
		if (*next == IPPROTO_FRAGMENT) {
			if (bpf_ntohs(ext->frag_off) & 0xfff8)
				return PARSE_OTHER; /* not the first fragment */
			len = 8;
		} else if (*next == IPPROTO_AH) {
			len = (ext->hdrlen + 2) * 4;
		} else {
			len = (ext->hdrlen + 1) * 8;
		}
		*next = ext->next;
		if (c->pos + len > c->end)
			return PARSE_MALFORMED;
		c->pos += len;
		*ext_len += len;
	}
	return *next == IPPROTO_TCP ? PARSE_TCP : PARSE_OTHER;
}

static __always_inline int parse_ipv6(struct cursor *c, struct synfin_segment *s, __u32 *l4_len)
{
	struct ipv6hdr *ip6 = c->pos;
	__u32 payload, ext_len = 0;
	__u8 next;
	int res;

	if ((void *)(ip6 + 1) > c->end)
		return PARSE_MALFORMED;
	if (ip6->version != 6)
		return PARSE_MALFORMED;
	payload = bpf_ntohs(ip6->payload_len);
	next = ip6->nexthdr;
	s->family = AF_INET6;
	__builtin_memcpy(s->saddr, &ip6->saddr, 16);
	__builtin_memcpy(s->daddr, &ip6->daddr, 16);
	c->pos = ip6 + 1;
	res = skip_ipv6_ext(c, &next, &ext_len);
	if (res != PARSE_TCP)
		return res;
	if (payload < ext_len)
		return PARSE_MALFORMED;
	*l4_len = payload - ext_len;
	return PARSE_TCP;
}

/*
 * TCP options are walked by bpf_loop() over a copy on the stack: a plain
 * loop makes the verifier follow every possible offset separately (a
 * million instructions for 40 bytes), the callback is verified once.
 */
struct opt_walk {
	__u8 buf[MAX_TCP_OPT_BYTES];
	__u32 off, len;
	struct synfin_segment *s;
};

static __always_inline __u32 be32_at(const __u8 *p)
{
	return ((__u32)p[0] << 24) | ((__u32)p[1] << 16) | ((__u32)p[2] << 8) | p[3];
}

/* One option at w->off; returns 1 to stop the walk. */
static long walk_option(__u32 index, void *ctx)
{
	struct opt_walk *w = ctx;
	__u32 off = w->off;
	__u8 kind, len;

	if (off >= MAX_TCP_OPT_BYTES - 1 || off >= w->len)
		return 1;
	kind = w->buf[off];
	if (kind == 0) /* end of options */
		return 1;
	if (kind == 1) { /* NOP */
		w->off = off + 1;
		return 0;
	}
	len = w->buf[off + 1];
	if (len < 2 || off + len > w->len || off + len > MAX_TCP_OPT_BYTES)
		return 1;
	if (kind == 2 && len == 4) {
		w->s->mss = ((__u16)w->buf[off + 2] << 8) | w->buf[off + 3];
		w->s->opts |= SF_OPT_MSS;
	} else if (kind == 3 && len == 3) {
		w->s->wscale = w->buf[off + 2];
		w->s->opts |= SF_OPT_WSCALE;
	} else if (kind == 4 && len == 2) {
		w->s->opts |= SF_OPT_SACK_OK;
	} else if (kind == 8 && len == 10 && off + 10 <= MAX_TCP_OPT_BYTES) {
		w->s->ts_val = be32_at(&w->buf[off + 2]);
		w->s->ts_ecr = be32_at(&w->buf[off + 6]);
		w->s->opts |= SF_OPT_TS;
	}
	w->off = off + len;
	return 0;
}

static __always_inline void parse_tcp_options(struct cursor *c, __u32 opt_len,
					      struct synfin_segment *s)
{
	struct opt_walk w = { .len = opt_len, .s = s };

	for (int i = 0; i < MAX_TCP_OPT_BYTES; i++) {
		__u8 *p = c->pos + i;

		if (i >= opt_len || (void *)(p + 1) > c->end)
			break;
		w.buf[i] = *p;
	}
	bpf_loop(MAX_TCP_OPT_BYTES, walk_option, &w, 0);
}

static __always_inline int parse_tcp(struct cursor *c, struct synfin_segment *s, __u32 l4_len)
{
	struct tcphdr *th = c->pos;
	__u32 doff, opt_len;

	if ((void *)(th + 1) > c->end)
		return PARSE_MALFORMED;
	doff = th->doff * 4;
	if (doff < sizeof(*th) || l4_len < doff)
		return PARSE_MALFORMED;
	s->sport = bpf_ntohs(th->source);
	s->dport = bpf_ntohs(th->dest);
	s->seq = bpf_ntohl(th->seq);
	s->ack = bpf_ntohl(th->ack_seq);
	s->win = bpf_ntohs(th->window);
	s->flags = ((__u8 *)th)[13];
	s->len = l4_len - doff;
	opt_len = doff - sizeof(*th);
	c->pos = th + 1;
	if (c->pos + opt_len > c->end)
		return PARSE_MALFORMED;
	if (opt_len)
		parse_tcp_options(c, opt_len, s);
	return PARSE_TCP;
}

#endif /* SYNFIN_PARSE_BPF_H */
