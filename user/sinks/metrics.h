/*
 * --metrics [ADDR:]PORT: a Prometheus endpoint (text exposition 0.0.4) served
 * by libmicrohttpd on its own thread.
 *
 * The tracing thread owns a struct metrics_snapshot, adds to it as records
 * arrive, and every ~100 ms publishes a copy under a mutex; the HTTP thread
 * only formats the last copy. A scrape therefore never touches the tracker,
 * and the tracer never waits for a slow scraper longer than one memcpy.
 *
 * metrics_parse_addr(), metrics_format() and metrics_snapshot_add_conn() are
 * pure and unit-tested; metrics_start/publish/stop are the HTTP side.
 */
#ifndef SYNFIN_METRICS_H
#define SYNFIN_METRICS_H
#include <stddef.h>
#include <stdint.h>
#include "lifecycle.h"
#include "listeners.h"
#include "sink.h"
#include "synfin.h"
#include "tracker.h"

/* Upper bounds of the handshake histogram, in microseconds (exported in seconds):
 * loopback handshakes take tens of us, WAN ones tens of ms, and a lost SYN
 * costs 1 s, 3 s, 7 s: the buckets cover all three. */
#define METRICS_HS_BOUNDS 17
/* Listener ports with their own series; more go to port="other" (bounded cardinality). */
#define METRICS_PORTS 20
/* Distinct (segment, reason) drop series; later kinds are counted under "other". */
#define METRICS_DROP_KINDS 16
/* Longest exposition metrics_format() can produce for any snapshot (a few KiB in practice). */
#define METRICS_TEXT_MAX 32768

extern const uint32_t metrics_hs_bounds_us[METRICS_HS_BOUNDS];

enum metrics_role { METRICS_CLIENT, METRICS_SERVER, METRICS_ROLES };

struct metrics_hist {
	uint64_t bucket[METRICS_HS_BOUNDS]; /* per bound, not cumulative: value <= bound[i], > bound[i-1] */
	uint64_t count;                     /* every observation: the +Inf bucket */
	uint64_t sum_us;
};

struct metrics_port {
	uint16_t port;
	uint64_t count;
};

struct metrics_drop {
	uint16_t reason; /* enum skb_drop_reason */
	uint8_t segment; /* enum drop_segment */
	uint64_t count;
};

/* A listening port's health (every listening socket on it, all namespaces together). */
struct metrics_listener {
	uint16_t port;
	uint32_t queue, peak, backlog;
	uint64_t drops, synack_retrans;
};

struct metrics_snapshot {
	/* Counters: only ever grow while synfin runs. */
	struct metrics_hist handshake[METRICS_ROLES];
	uint64_t outcome[OUTCOME_COUNT];
	uint64_t closer[CLOSER_COUNT];
	uint64_t lost, evicted, events;
	struct metrics_port ports[METRICS_PORTS]; /* the first METRICS_PORTS listener ports seen */
	uint32_t nports;
	uint64_t other_port_conns;
	/* RSTs this host sent for no socket (a closed port), by local port, the same way */
	struct metrics_port rst_ports[METRICS_PORTS];
	uint32_t nrst_ports;
	uint64_t other_port_rsts;
	/* SYN, SYN-ACK, FIN and RST segments dropped, by segment and the kernel's reason */
	struct metrics_drop drops[METRICS_DROP_KINDS];
	uint32_t ndrops;
	uint64_t other_drops;
	/* Gauges: set by the caller before each publish. */
	struct metrics_listener listeners[METRICS_PORTS]; /* the first METRICS_PORTS ports */
	uint32_t nlisteners;
	/* SYN cookies in the namespaces whose listeners are looked at, summed (per namespace
	 * only, as the kernel counts them): sent, validated, failed since synfin first looked */
	uint64_t syncookies[COOKIE_COUNTERS];
	uint32_t state_count[SF_TCP_MAX_STATES]; /* tracked sockets per kernel TCP state */
	uint32_t time_wait;                      /* connections held in TIME_WAIT now */
};

struct metrics_server;

/*
 * "[ADDR:]PORT" -> numeric host and port. PORT alone binds 127.0.0.1: a
 * tracer's endpoint shows every connection of the host, so it is never
 * exposed beyond loopback unless an address is written out ("0.0.0.0:9102",
 * "[::]:9102"). ":PORT" is refused rather than guessed at (Go programs read
 * it as "every interface"). Returns 0, or -1 with a sentence in err.
 */
int metrics_parse_addr(const char *arg, char *host, size_t hostlen, uint16_t *port, char *err,
		       size_t errlen);

/* Counts one finished lifecycle (outcome, closer, handshake by role, listener port). */
void metrics_snapshot_add_conn(struct metrics_snapshot *s, const struct lifecycle *l);

/* Counts one RST sent for no socket, by the local port it refused. */
void metrics_snapshot_add_rst(struct metrics_snapshot *s, uint16_t port);

/* The listeners' gauges from the last look (sock_diag), by port. */
void metrics_snapshot_set_listeners(struct metrics_snapshot *s, const struct listener_table *t);
/* Counts one dropped segment (SF_EV_DROP). */
void metrics_snapshot_add_drop(struct metrics_snapshot *s, uint16_t reason, uint8_t segment);

/* The text exposition of snap into buf (NUL-terminated); returns its length,
 * or 0 if len was too small (METRICS_TEXT_MAX always suffices). */
size_t metrics_format(const struct metrics_snapshot *snap, char *buf, size_t len);

/* Binds host:port and serves GET /metrics on libmicrohttpd's own thread, with
 * as many connections as the fds free now allow (up to 1024), less a reserve
 * for what synfin opens later. NULL with a sentence in err when the address
 * cannot be used or fewer than 4 connections would fit under RLIMIT_NOFILE. */
struct metrics_server *metrics_start(const char *host, uint16_t port, char *err, size_t errlen);
/* Makes snap what the next scrape sees. */
void metrics_publish(struct metrics_server *m, const struct metrics_snapshot *snap);
/* Stops serving and frees m (NULL is fine). */
void metrics_stop(struct metrics_server *m);

/* Formats an error into err (for metrics.c and metrics_text.c); returns -1. */
__attribute__((format(printf, 3, 4))) int metrics_fail(char *err, size_t errlen, const char *fmt, ...);

/* --metrics as a sink: counts records into a snapshot, publishes it to the
 * server every tick with the tracer's gauges. */
struct metrics_sink {
	struct sink sink;
	struct metrics_server *server;
	struct metrics_snapshot snap;
};

void metrics_sink_init(struct metrics_sink *ms, struct metrics_server *server);

#endif
