#include "holders.h"
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void holders_clear(struct holders *h)
{
	h->n = 0;
}

void holders_free(struct holders *h)
{
	free(h->v);
	memset(h, 0, sizeof(*h));
}

int holders_add(struct holders *h, const struct held_socket *s)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct held_socket *v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n++] = *s;
	h->sorted = false;
	return 0;
}

/* The search key: a server port's listener sorts before its thousands of children. */
struct holder_key {
	uint32_t netns;
	uint16_t sport;
	uint8_t not_listener;
	uint16_t dport;
};

static struct holder_key key_of(const struct held_socket *s)
{
	struct holder_key k = { s->netns, s->sport, s->state != SF_TCP_LISTEN, s->dport };

	return k;
}

static int compare_keys(const struct holder_key *a, const struct holder_key *b)
{
	if (a->netns != b->netns)
		return a->netns < b->netns ? -1 : 1;
	if (a->sport != b->sport)
		return a->sport < b->sport ? -1 : 1;
	if (a->not_listener != b->not_listener)
		return a->not_listener < b->not_listener ? -1 : 1;
	return a->dport < b->dport ? -1 : a->dport > b->dport;
}

static int compare_held(const void *a, const void *b)
{
	struct holder_key x = key_of(a), y = key_of(b);

	return compare_keys(&x, &y);
}

void holders_sort(struct holders *h)
{
	if (h->n) /* qsort() takes no NULL array, even empty */
		qsort(h->v, h->n, sizeof(*h->v), compare_held);
	h->sorted = true;
}

/* The first entry not below k (h sorted). */
static size_t lower_bound(const struct holders *h, const struct holder_key *k)
{
	size_t lo = 0, hi = h->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct holder_key m = key_of(&h->v[mid]);

		if (compare_keys(&m, k) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Calls match on the entries with key k, in order, until it says yes. */
static const struct held_socket *find_key(const struct holders *h, struct holder_key k,
					  bool (*match)(const struct held_socket *s, const void *arg),
					  const void *arg)
{
	for (size_t i = h->sorted ? lower_bound(h, &k) : 0; i < h->n; i++) {
		struct holder_key m = key_of(&h->v[i]);
		int order = compare_keys(&m, &k);

		if (order > 0 && h->sorted)
			break;
		if (!order && match(&h->v[i], arg))
			return &h->v[i];
	}
	return NULL;
}

struct conn_match {
	const uint8_t *saddr, *daddr;
	uint32_t skip_pid;
	uint8_t family;
};

static bool same_conn(const struct held_socket *s, const void *arg)
{
	const struct conn_match *m = arg;
	size_t alen = m->family == AF_INET6 ? 16 : 4;

	return s->family == m->family && s->pid != m->skip_pid && !memcmp(s->saddr, m->saddr, alen) &&
	       !memcmp(s->daddr, m->daddr, alen);
}

static bool other_pid(const struct held_socket *s, const void *arg)
{
	return s->pid != *(const uint32_t *)arg;
}

const struct held_socket *holders_find_conn(const struct holders *h, uint32_t netns, uint8_t family,
					    const uint8_t *saddr, uint16_t sport,
					    const uint8_t *daddr, uint16_t dport, uint32_t skip_pid)
{
	struct holder_key k = { netns, sport, 1, dport };
	struct conn_match m = { saddr, daddr, skip_pid, family };

	return find_key(h, k, same_conn, &m);
}

const struct held_socket *holders_find_listener(const struct holders *h, uint32_t netns,
						uint16_t port, uint32_t skip_pid)
{
	struct holder_key k = { netns, port, 0, 0 };

	return find_key(h, k, other_pid, &skip_pid);
}
