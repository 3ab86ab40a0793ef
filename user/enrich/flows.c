#include "flows.h"
#include <stdlib.h>
#include <string.h>
#include "index.h"

/*
 * Two copies of one segment (egress then ingress on lo, or both veth ends)
 * are closer than this; a retransmission comes an RTO later, 200 ms at the
 * least. (Under qemu's TCG, lo takes milliseconds between the two hooks.)
 */
#define SAME_SEGMENT_NS 100000000ull

struct flow_table {
	uint32_t cap, cursor;
	uint64_t evicted;
	struct index by_key;
	struct flow *pool;
	flow_done_fn done;
	void *ctx;
};

static uint64_t flow_key_of(const void *entry)
{
	return ((const struct flow *)entry)->key;
}

static size_t addr_len(uint8_t family)
{
	return family == 2 ? 4 : 16;
}

/* FNV-1a over the two endpoints in a canonical order: one key for both directions. */
static uint64_t tuple_key(uint8_t family, const uint8_t *a, uint16_t ap, const uint8_t *b,
			  uint16_t bp)
{
	size_t n = addr_len(family);
	int order = memcmp(a, b, n);
	const uint8_t *lo = a, *hi = b;
	uint16_t lop = ap, hip = bp;
	uint64_t h = 1469598103934665603ull;
	uint8_t buf[1 + 2 * 16 + 4];
	size_t len = 0;

	if (order > 0 || (order == 0 && ap > bp)) {
		lo = b, hi = a, lop = bp, hip = ap;
	}
	buf[len++] = family;
	memcpy(buf + len, lo, n), len += n;
	memcpy(buf + len, &lop, 2), len += 2;
	memcpy(buf + len, hi, n), len += n;
	memcpy(buf + len, &hip, 2), len += 2;
	for (size_t i = 0; i < len; i++)
		h = (h ^ buf[i]) * 1099511628211ull;
	return h;
}

struct flow_table *flows_new(uint32_t cap, flow_done_fn done, void *ctx)
{
	struct flow_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cap = cap;
	t->done = done;
	t->ctx = ctx;
	t->pool = calloc(cap, sizeof(*t->pool));
	if (!t->pool || index_init(&t->by_key, 2 * cap, t->pool, sizeof(*t->pool), flow_key_of)) {
		flows_free(t);
		return NULL;
	}
	return t;
}

void flows_free(struct flow_table *t)
{
	if (!t)
		return;
	index_free(&t->by_key);
	free(t->pool);
	free(t);
}

uint64_t flows_evicted(const struct flow_table *t)
{
	return t->evicted;
}

static void finish(struct flow_table *t, struct flow *f)
{
	t->done(t->ctx, f);
	index_clear(&t->by_key, index_slot_of(&t->by_key, (uint32_t)(f - t->pool)));
	f->in_use = 0;
}

/* Side of (addr, port) in f, or -1. */
static int side_of(const struct flow *f, const uint8_t *addr, uint16_t port)
{
	for (int s = 0; s < 2; s++)
		if (f->port[s] == port && !memcmp(f->addr[s], addr, addr_len(f->family)))
			return s;
	return -1;
}

static struct flow *lookup(struct flow_table *t, uint8_t family, const uint8_t *a, uint16_t ap,
			   const uint8_t *b, uint16_t bp)
{
	int64_t at = index_at(&t->by_key, index_find(&t->by_key, tuple_key(family, a, ap, b, bp)));
	struct flow *f = at < 0 ? NULL : &t->pool[at];

	/* A 64-bit key collision would merge two flows: check the tuple itself. */
	if (f && (f->family != family || side_of(f, a, ap) < 0 || side_of(f, b, bp) < 0))
		return NULL;
	return f;
}

/* A new flow in the ring's next cell; the flow there (the oldest) is finished early. */
static struct flow *create(struct flow_table *t, uint8_t family, const uint8_t *a, uint16_t ap,
			   const uint8_t *b, uint16_t bp)
{
	struct flow *f = &t->pool[t->cursor];
	uint64_t key = tuple_key(family, a, ap, b, bp);

	if (f->in_use) {
		t->evicted++;
		finish(t, f);
	}
	t->cursor = (t->cursor + 1) % t->cap;
	memset(f, 0, offsetof(struct flow, seg));
	f->in_use = 1;
	f->key = key;
	f->family = family;
	memcpy(f->addr[0], a, 16);
	memcpy(f->addr[1], b, 16);
	f->port[0] = ap;
	f->port[1] = bp;
	index_add(&t->by_key, index_find(&t->by_key, key), (uint32_t)(f - t->pool));
	return f;
}

void flows_add_segment(struct flow_table *t, const struct synfin_segment *s)
{
	struct flow *f = lookup(t, s->family, s->saddr, s->sport, s->daddr, s->dport);

	if (!f)
		f = create(t, s->family, s->saddr, s->sport, s->daddr, s->dport);
	f->last_ns = s->ts_ns;
	if (f->nseg == FLOW_MAX_SEGMENTS) {
		f->truncated = 1;
		return;
	}
	f->seg[f->nseg++] = *s;
}

void flows_note_state(struct flow_table *t, const struct synfin_event *e)
{
	struct flow *f;
	int side;

	if (!e->sport || !e->dport) /* no tuple yet (SYN_SENT) or a listener */
		return;
	f = lookup(t, e->family, e->saddr, e->sport, e->daddr, e->dport);
	if (!f)
		f = create(t, e->family, e->saddr, e->sport, e->daddr, e->dport);
	side = side_of(f, e->saddr, e->sport);
	f->seen_sides |= (uint8_t)(1 << side);
	f->last_ns = e->ts_ns;
}

int flow_side_of(const struct flow *f, const struct conn *c)
{
	return side_of(f, c->saddr, c->sport);
}

bool flows_hold_conn(struct flow_table *t, const struct conn *c, uint64_t now_ns)
{
	struct flow *f = c->sport && c->dport ?
		lookup(t, c->family, c->saddr, c->sport, c->daddr, c->dport) : NULL;
	int side;

	if (!f)
		return false;
	side = side_of(f, c->saddr, c->sport);
	f->conns[side] = *c;
	f->held_sides |= (uint8_t)(1 << side);
	f->seen_sides |= (uint8_t)(1 << side);
	if (f->held_sides == f->seen_sides)
		f->complete_ns = now_ns;
	return true;
}

void flows_flush(struct flow_table *t, uint64_t now_ns, uint64_t grace_ns, uint64_t idle_ns)
{
	for (uint32_t i = 0; i < t->cap; i++) {
		struct flow *f = &t->pool[i];

		if (!f->in_use)
			continue;
		if (!grace_ns || (f->complete_ns && now_ns - f->complete_ns >= grace_ns) ||
		    (!f->held_sides && now_ns - f->last_ns >= idle_ns))
			finish(t, f);
	}
}

bool flow_is_duplicate(const struct flow *f, int i)
{
	const struct synfin_segment *s = &f->seg[i];

	for (int j = 0; j < i; j++) {
		const struct synfin_segment *o = &f->seg[j];

		if (o->dir != s->dir && o->sport == s->sport && o->seq == s->seq &&
		    o->ack == s->ack && o->flags == s->flags && o->len == s->len &&
		    s->ts_ns - o->ts_ns < SAME_SEGMENT_NS)
			return true;
	}
	return false;
}

int flow_segment_side(const struct flow *f, int i)
{
	int side = side_of(f, f->seg[i].saddr, f->seg[i].sport);

	return side < 0 ? 0 : side;
}

const char *anomaly_name(int bit)
{
	static const char *const names[ANOM_COUNT] = {
		"synack_ack_mismatch", "handshake_ack_mismatch", "fin_not_acked",
		"rst_in_handshake",    "syn_to_closed_port",     "duplicate_syn",
	};

	return bit >= 0 && bit < ANOM_COUNT ? names[bit] : "unknown";
}

/* seq-space "a >= b", modulo 2^32 (RFC 1982 style). */
static bool seq_geq(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) >= 0;
}

static void handshake_facts(const struct flow *f, struct wire_facts *w)
{
	for (int i = 0; i < f->nseg; i++) {
		const struct synfin_segment *s = &f->seg[i];
		uint8_t syn_ack = s->flags & (SF_TCPF_SYN | SF_TCPF_ACK);

		if (flow_is_duplicate(f, i))
			continue;
		if (syn_ack == SF_TCPF_SYN) {
			if (w->syn_idx < 0)
				w->syn_idx = i, w->syn_ns = (int64_t)s->ts_ns;
			w->syns++;
		} else if (syn_ack == (SF_TCPF_SYN | SF_TCPF_ACK)) {
			if (w->synack_idx < 0)
				w->synack_idx = i, w->synack_ns = (int64_t)s->ts_ns;
			w->synacks++;
		} else if (w->synack_idx >= 0 && w->ack_ns < 0 && (s->flags & SF_TCPF_ACK) &&
			   !(s->flags & SF_TCPF_RST) && flow_segment_side(f, i) != flow_segment_side(f, w->synack_idx)) {
			w->ack_ns = (int64_t)s->ts_ns;
			if (s->ack != f->seg[w->synack_idx].seq + 1)
				w->anomalies |= ANOM_HANDSHAKE_ACK;
		}
	}
}

static void rst_facts(const struct flow *f, struct wire_facts *w)
{
	for (int i = 0; i < f->nseg; i++) {
		const struct synfin_segment *s = &f->seg[i];

		if (!(s->flags & SF_TCPF_RST) || flow_is_duplicate(f, i))
			continue;
		if (w->synack_idx < 0 && w->syn_idx >= 0)
			w->anomalies |= ANOM_SYN_NO_LISTENER;
		else if (w->synack_idx >= 0 && (w->ack_ns < 0 || (int64_t)s->ts_ns < w->ack_ns))
			w->anomalies |= ANOM_RST_IN_HANDSHAKE;
	}
}

/* Every FIN must be acknowledged by the other side with seq + len + 1 (unless an RST ended it all). */
static void fin_facts(const struct flow *f, struct wire_facts *w)
{
	for (int i = 0; i < f->nseg; i++) {
		const struct synfin_segment *fin = &f->seg[i];
		bool acked = false;

		if (!(fin->flags & SF_TCPF_FIN) || flow_is_duplicate(f, i))
			continue;
		for (int j = i + 1; j < f->nseg && !acked; j++)
			acked = (f->seg[j].flags & SF_TCPF_RST) ||
				(flow_segment_side(f, j) != flow_segment_side(f, i) &&
				 (f->seg[j].flags & SF_TCPF_ACK) &&
				 seq_geq(f->seg[j].ack, fin->seq + fin->len + 1));
		if (!acked && !f->truncated)
			w->anomalies |= ANOM_FIN_ACK;
	}
}

void flow_wire_facts(const struct flow *f, struct wire_facts *w)
{
	memset(w, 0, sizeof(*w));
	w->syn_ns = w->synack_ns = w->ack_ns = -1;
	w->syn_idx = w->synack_idx = -1;
	handshake_facts(f, w);
	if (w->syn_idx >= 0 && w->synack_idx >= 0 &&
	    f->seg[w->synack_idx].ack != f->seg[w->syn_idx].seq + 1)
		w->anomalies |= ANOM_SYNACK_ACK;
	if (w->syns > 1)
		w->anomalies |= ANOM_DUPLICATE_SYN;
	rst_facts(f, w);
	fin_facts(f, w);
}
