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
	return 0;
}

/*
 * A linear search: the table holds the sockets processes hold (hundreds on a
 * busy server), and it is searched only for sockets no event named, never
 * per transition of a socket whose holder is known.
 */
const struct held_socket *holders_find_conn(const struct holders *h, uint32_t netns, uint8_t family,
					    const uint8_t *saddr, uint16_t sport,
					    const uint8_t *daddr, uint16_t dport, uint32_t skip_pid)
{
	size_t alen = family == AF_INET6 ? 16 : 4;

	for (size_t i = 0; i < h->n; i++) {
		const struct held_socket *s = &h->v[i];

		if (s->netns == netns && s->family == family && s->sport == sport &&
		    s->dport == dport && s->pid != skip_pid && s->state != SF_TCP_LISTEN &&
		    !memcmp(s->saddr, saddr, alen) && !memcmp(s->daddr, daddr, alen))
			return s;
	}
	return NULL;
}

const struct held_socket *holders_find_listener(const struct holders *h, uint32_t netns,
						uint16_t port, uint32_t skip_pid)
{
	for (size_t i = 0; i < h->n; i++) {
		const struct held_socket *s = &h->v[i];

		if (s->netns == netns && s->sport == port && s->state == SF_TCP_LISTEN &&
		    s->pid != skip_pid)
			return s;
	}
	return NULL;
}
