#include "droplog.h"
#include <string.h>
#include <sys/socket.h>

/* The ends of a tuple in a fixed order, so that a segment and its reply meet. */
struct ends {
	const uint8_t *lo_addr, *hi_addr;
	uint16_t lo_port, hi_port;
};

/* IPv4 addresses are the first 4 bytes; the rest of a record's 16 need not be zero. */
static size_t addr_len(uint8_t family)
{
	return family == AF_INET6 ? 16 : 4;
}

static struct ends order_ends(uint8_t family, const uint8_t *a, uint16_t aport, const uint8_t *b,
			      uint16_t bport)
{
	int c = memcmp(a, b, addr_len(family));
	struct ends x = { a, b, aport, bport }, y = { b, a, bport, aport };

	return c < 0 || (c == 0 && aport <= bport) ? x : y;
}

static uint64_t hash_tuple(uint32_t netns, uint8_t family, const struct ends *t)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	const uint8_t *parts[] = { t->lo_addr, t->hi_addr };

	for (int p = 0; p < 2; p++)
		for (size_t i = 0; i < addr_len(family); i++)
			h = (h ^ parts[p][i]) * 1099511628211ull;
	h = (h ^ ((uint64_t)t->lo_port << 16 | t->hi_port)) * 1099511628211ull;
	h = (h ^ ((uint64_t)netns << 8 | family)) * 1099511628211ull;
	return h ? h : 1;
}

static uint64_t entry_key(const void *entry)
{
	return ((const struct drop_entry *)entry)->key;
}

int drop_log_init(struct drop_log *l)
{
	memset(l, 0, sizeof(*l));
	return index_init(&l->by_tuple, 2 * DROP_LOG_LEN, l->e, sizeof(l->e[0]), entry_key);
}

void drop_log_free(struct drop_log *l)
{
	index_free(&l->by_tuple);
}

enum drop_segment drop_segment_of(uint8_t tcp_flags)
{
	if (tcp_flags & SF_TCPF_RST)
		return SEG_RST;
	if (tcp_flags & SF_TCPF_SYN)
		return tcp_flags & SF_TCPF_ACK ? SEG_SYNACK : SEG_SYN;
	return tcp_flags & SF_TCPF_FIN ? SEG_FIN : SEG_ACK;
}

const char *drop_segment_name(uint8_t segment)
{
	static const char *const names[SEG_KINDS] = { "SYN", "SYN-ACK", "FIN", "RST", "ACK" };

	return segment < SEG_KINDS ? names[segment] : "?";
}

static bool same_tuple(const struct drop_entry *d, uint32_t netns, uint8_t family,
		       const struct ends *t)
{
	return d->in_use && d->netns == netns && d->family == family && d->lo_port == t->lo_port &&
	       d->hi_port == t->hi_port && !memcmp(d->lo_addr, t->lo_addr, addr_len(family)) &&
	       !memcmp(d->hi_addr, t->hi_addr, addr_len(family));
}

/* The slot of the entry for this tuple, or -1; *slot is where it is or would go. */
static int64_t find(const struct drop_log *l, uint32_t netns, uint8_t family, const struct ends *t,
		    uint64_t key, uint32_t *slot)
{
	*slot = index_find(&l->by_tuple, key);
	int64_t at = index_at(&l->by_tuple, *slot);

	return at >= 0 && same_tuple(&l->e[at], netns, family, t) ? at : -1;
}

static void forget(struct drop_log *l, uint32_t idx)
{
	index_clear(&l->by_tuple, index_slot_of(&l->by_tuple, idx));
	l->e[idx].in_use = 0;
	l->used--;
}

static struct drop_entry *new_entry(struct drop_log *l, uint32_t netns, uint8_t family,
				    const struct ends *t, uint64_t key)
{
	uint32_t idx = l->next, slot;
	struct drop_entry *d = &l->e[idx];

	if (d->in_use) { /* the oldest makes room */
		forget(l, idx);
		l->evicted++;
	}
	slot = index_find(&l->by_tuple, key);
	if (index_at(&l->by_tuple, slot) >= 0) /* a hash twin: keep the older, count this one */
		return NULL;
	memset(d, 0, sizeof(*d));
	memcpy(d->lo_addr, t->lo_addr, addr_len(family));
	memcpy(d->hi_addr, t->hi_addr, addr_len(family));
	d->lo_port = t->lo_port;
	d->hi_port = t->hi_port;
	d->netns = netns;
	d->family = family;
	d->key = key;
	d->in_use = 1;
	index_add(&l->by_tuple, slot, idx);
	l->next = (idx + 1) % DROP_LOG_LEN;
	l->used++;
	return d;
}

/* Counts one drop; `sent` is relative to the tuple's lo end (fixed up when a lifecycle takes it). */
static void count_drop(struct drop_entry *d, uint16_t reason, uint8_t segment, uint8_t from_lo)
{
	for (uint8_t i = 0; i < d->n; i++) {
		struct conn_drop *x = &d->d[i];

		if (x->reason == reason && x->segment == segment && x->sent == from_lo) {
			x->count++;
			return;
		}
	}
	if (d->n == DROPS_PER_CONN) {
		d->d[DROPS_PER_CONN - 1].count++; /* past the slots: counted with the last kind */
		return;
	}
	d->d[d->n++] = (struct conn_drop){ 1, reason, segment, from_lo };
}

void drop_log_add(struct drop_log *l, const struct synfin_event *e)
{
	struct ends t = order_ends(e->family, e->saddr, e->sport, e->daddr, e->dport);
	uint64_t key = hash_tuple(e->netns, e->family, &t);
	uint32_t slot;
	int64_t at = find(l, e->netns, e->family, &t, key, &slot);
	struct drop_entry *d = at >= 0 ? &l->e[at] : new_entry(l, e->netns, e->family, &t, key);

	if (d)
		count_drop(d, (uint16_t)e->drop_reason, (uint8_t)drop_segment_of(e->close_flags),
			   t.lo_addr == e->saddr);
}

uint8_t drop_log_take(struct drop_log *l, const struct conn *c, struct conn_drop *out)
{
	struct ends t;
	uint64_t key;
	uint32_t slot;
	int64_t at;
	uint8_t n;
	bool local_is_lo;

	if (!l->used)
		return 0;
	t = order_ends(c->family, c->saddr, c->sport, c->daddr, c->dport);
	key = hash_tuple(c->netns, c->family, &t);
	at = find(l, c->netns, c->family, &t, key, &slot);
	if (at < 0)
		return 0;
	local_is_lo = t.lo_addr == c->saddr;
	n = l->e[at].n;
	for (uint8_t i = 0; i < n; i++) {
		out[i] = l->e[at].d[i];
		out[i].sent = out[i].sent == local_is_lo;
	}
	forget(l, (uint32_t)at);
	return n;
}
