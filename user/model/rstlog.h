/*
 * The RSTs this host sent lately (SF_EV_RST records), so that the other end
 * of a connection whose both ends are on this host (loopback, namespaces) can
 * say why it was reset: the receiver's kernel has no reason, the sender's has.
 */
#ifndef SYNFIN_RSTLOG_H
#define SYNFIN_RSTLOG_H
#include "synfin.h"
#include "tracker.h"

#define RST_LOG_LEN 256
/* A RST counts for a close up to this long after it was sent. */
#define RST_LOG_WINDOW_NS 1000000000ull

struct rst_log {
	struct synfin_event recent[RST_LOG_LEN];
	uint32_t next;
};

void rst_log_add(struct rst_log *l, const struct synfin_event *e);
/* The latest RST sent to c from c's peer (tuple mirrored) shortly before c closed; NULL if none. */
const struct synfin_event *rst_log_sent_to(const struct rst_log *l, const struct conn *c);

/*
 * Reset lifecycles whose RST record may still come: the kernel closes the
 * socket (its CLOSE transition) before tcp_send_active_reset() traces the
 * RST (SO_LINGER {1, 0}, a close with unread data), and traces it after
 * sending it, so the peer on this host has closed by then too. Each waits up
 * to RST_WAIT_NS (a peer elsewhere: no record comes), oldest first out; a
 * full queue lets its oldest go.
 */
#define RST_AWAIT_LEN 1024
#define RST_WAIT_NS 100000000ull

typedef void (*rst_conn_fn)(void *ctx, const struct conn *c);

struct rst_await {
	struct conn c[RST_AWAIT_LEN];
	uint64_t until_ns[RST_AWAIT_LEN];
	uint32_t first, count;
};

void rst_await_add(struct rst_await *w, const struct conn *c, uint64_t now_ns, rst_conn_fn fn,
		   void *ctx);
/* The waiting lifecycle e was sent by or to (both ends here) goes out with e's reason;
 * false if none waits. */
bool rst_await_take(struct rst_await *w, const struct synfin_event *e, rst_conn_fn fn, void *ctx);
/* Those whose wait is over by now_ns (UINT64_MAX: all) go out as they are. */
void rst_await_flush(struct rst_await *w, uint64_t now_ns, rst_conn_fn fn, void *ctx);

#endif
