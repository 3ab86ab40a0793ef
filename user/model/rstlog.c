#include "rstlog.h"
#include <string.h>
#include <sys/socket.h>

void rst_log_add(struct rst_log *l, const struct synfin_event *e)
{
	l->recent[l->next++ % RST_LOG_LEN] = *e;
}

static bool sent_by_peer(const struct synfin_event *e, const struct conn *c)
{
	size_t n = c->family == AF_INET ? 4 : 16;

	uint64_t apart = e->ts_ns > c->state_ns ? e->ts_ns - c->state_ns : c->state_ns - e->ts_ns;

	return e->ts_ns && e->family == c->family && e->sport == c->dport && e->dport == c->sport &&
	       !memcmp(e->saddr, c->daddr, n) && !memcmp(e->daddr, c->saddr, n) &&
	       apart <= RST_LOG_WINDOW_NS;
}

/* The RST e was sent by c (its socket) or, both ends here, to c by its peer. */
static bool rst_is_for(const struct conn *c, const struct synfin_event *e)
{
	return c->key && (c->key == e->skaddr || (conn_reset_by_remote(c) && sent_by_peer(e, c)));
}

const struct synfin_event *rst_log_sent_to(const struct rst_log *l, const struct conn *c)
{
	const struct synfin_event *best = NULL;

	for (uint32_t i = 0; i < RST_LOG_LEN; i++)
		if (sent_by_peer(&l->recent[i], c) && (!best || l->recent[i].ts_ns > best->ts_ns))
			best = &l->recent[i];
	return best;
}

static struct conn *oldest(struct rst_await *w)
{
	return &w->c[w->first % RST_AWAIT_LEN];
}

static void pop_oldest(struct rst_await *w, rst_conn_fn fn, void *ctx)
{
	struct conn *c = oldest(w);

	if (c->key) /* 0: taken by its RST already */
		fn(ctx, c);
	w->first++;
	w->count--;
}

void rst_await_add(struct rst_await *w, const struct conn *c, uint64_t now_ns, rst_conn_fn fn,
		   void *ctx)
{
	uint32_t at;

	if (w->count == RST_AWAIT_LEN)
		pop_oldest(w, fn, ctx);
	at = (w->first + w->count++) % RST_AWAIT_LEN;
	w->c[at] = *c;
	w->until_ns[at] = now_ns + RST_WAIT_NS;
}

bool rst_await_take(struct rst_await *w, const struct synfin_event *e, rst_conn_fn fn, void *ctx)
{
	bool taken = false;

	for (uint32_t i = 0; i < w->count; i++) {
		struct conn *c = &w->c[(w->first + i) % RST_AWAIT_LEN];

		if (rst_is_for(c, e)) {
			bool ours = c->key == e->skaddr;

			conn_note_reset_sent(c, e);
			if (!ours) /* received: not ours to count as sent */
				c->flags &= (uint8_t)~CONN_RESET_SENT;
			c->rst_ns = c->state_ns; /* sent or received at its CLOSE, traced after it */
			fn(ctx, c);
			c->key = 0;
			taken = true; /* and on: its peer may wait for the same RST */
		}
	}
	return taken;
}

void rst_await_flush(struct rst_await *w, uint64_t now_ns, rst_conn_fn fn, void *ctx)
{
	while (w->count && w->until_ns[w->first % RST_AWAIT_LEN] <= now_ns)
		pop_oldest(w, fn, ctx);
}
