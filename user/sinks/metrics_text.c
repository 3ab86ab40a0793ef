/* The metrics that need no HTTP server: address parsing, the snapshot, the
 * text exposition format. Kept apart from metrics.c (libmicrohttpd) so the
 * unit tests and fuzz targets link them without that library. */
#include "metrics.h"
#include "droplog.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "names.h"

#ifndef SYNFIN_VERSION
#define SYNFIN_VERSION "unknown"
#endif

const uint32_t metrics_hs_bounds_us[METRICS_HS_BOUNDS] = {
	50,    100,    250,    500,    1000,    2500,    5000,    10000,    25000,
	50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

/* ---- "[ADDR:]PORT" ---------------------------------------------------- */

__attribute__((format(printf, 3, 4))) int metrics_fail(char *err, size_t errlen,
							    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;

	if (!*s || strlen(s) > 5)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* Splits "ADDR:PORT" / "[V6]:PORT" / "PORT" into the address text and the port text. */
static int split_addr(const char *arg, char *addr, size_t addrlen, const char **port_text)
{
	const char *colon;
	size_t n;

	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');

		if (!close || close[1] != ':')
			return -1;
		n = (size_t)(close - arg - 1);
		arg++;
		colon = close + 1;
	} else {
		colon = strchr(arg, ':');
		/* "::1:9102" could be an address or an address and a port: brackets say which. */
		if (colon && strchr(colon + 1, ':'))
			return -1;
		if (!colon) {
			snprintf(addr, addrlen, "127.0.0.1");
			*port_text = arg;
			return 0;
		}
		n = (size_t)(colon - arg);
	}
	if (n == 0 || n >= addrlen)
		return -1;
	memcpy(addr, arg, n);
	addr[n] = '\0';
	*port_text = colon + 1;
	return 0;
}

int metrics_parse_addr(const char *arg, char *host, size_t hostlen, uint16_t *port, char *err,
		       size_t errlen)
{
	char addr[INET6_ADDRSTRLEN];
	const char *port_text;
	struct in6_addr a6;
	struct in_addr a4;

	if (!arg || split_addr(arg, addr, sizeof(addr), &port_text))
		return metrics_fail(err, errlen,
				  "invalid metrics address '%s': expected PORT (binds 127.0.0.1), "
				  "ADDR:PORT or [IPV6]:PORT", arg ? arg : "");
	if (parse_port(port_text, port))
		return metrics_fail(err, errlen, "invalid metrics port '%s': expected 1 to 65535",
				  port_text);
	/* Numeric only: a name could resolve to a public address behind the user's back. */
	if (inet_pton(AF_INET, addr, &a4) != 1 && inet_pton(AF_INET6, addr, &a6) != 1)
		return metrics_fail(err, errlen,
				  "invalid metrics address '%s': expected an IPv4 or [IPv6] address",
				  addr);
	if (strlen(addr) >= hostlen)
		return metrics_fail(err, errlen, "metrics address '%s' too long", addr);
	memcpy(host, addr, strlen(addr) + 1);
	return 0;
}

/* ---- the snapshot ----------------------------------------------------- */

static void hist_observe(struct metrics_hist *h, uint64_t us)
{
	for (int i = 0; i < METRICS_HS_BOUNDS; i++) {
		if (us <= metrics_hs_bounds_us[i]) {
			h->bucket[i]++;
			break;
		}
	}
	h->count++;
	h->sum_us += us;
}

/*
 * Sticky: the first METRICS_PORTS listener ports keep their series for the
 * whole run, later ones count under "other". A ranking that could move a
 * port in and out of its own series would make its counter go backwards.
 */
static void count_port(struct metrics_port *ports, uint32_t *nports, uint64_t *other,
		       uint16_t port)
{
	for (uint32_t i = 0; i < *nports; i++) {
		if (ports[i].port == port) {
			ports[i].count++;
			return;
		}
	}
	if (*nports < METRICS_PORTS) {
		ports[(*nports)++] = (struct metrics_port){ .port = port, .count = 1 };
		return;
	}
	(*other)++;
}

void metrics_snapshot_add_rst(struct metrics_snapshot *s, uint16_t port)
{
	count_port(s->rst_ports, &s->nrst_ports, &s->other_port_rsts, port);
}

static struct metrics_listener *listener_port(struct metrics_snapshot *s, uint16_t port)
{
	for (uint32_t i = 0; i < s->nlisteners; i++)
		if (s->listeners[i].port == port)
			return &s->listeners[i];
	if (s->nlisteners == METRICS_PORTS)
		return NULL;
	s->listeners[s->nlisteners] = (struct metrics_listener){ .port = port };
	return &s->listeners[s->nlisteners++];
}

void metrics_snapshot_set_listeners(struct metrics_snapshot *s, const struct listener_table *t)
{
	s->nlisteners = 0;
	for (uint32_t i = 0; t && i < t->n; i++) {
		const struct listener_health *l = &t->l[i];
		struct metrics_listener *m = l->gone ? NULL : listener_port(s, l->port);

		if (!m)
			continue;
		m->queue += l->queue;
		m->peak = l->peak > m->peak ? l->peak : m->peak;
		m->backlog += l->backlog;
		m->drops += listener_drops(l);
		m->synack_retrans += l->synack_retrans > 0 ? (uint64_t)l->synack_retrans : 0;
	}
	memset(s->syncookies, 0, sizeof(s->syncookies));
	for (uint32_t i = 0; t && i < t->nnetns; i++)
		for (int c = 0; c < COOKIE_COUNTERS; c++)
			s->syncookies[c] += listener_netns_cookies(&t->ns[i], (enum syncookie_counter)c);
}

void metrics_snapshot_add_drop(struct metrics_snapshot *s, uint16_t reason, uint8_t segment)
{
	for (uint32_t i = 0; i < s->ndrops; i++)
		if (s->drops[i].reason == reason && s->drops[i].segment == segment) {
			s->drops[i].count++;
			return;
		}
	if (s->ndrops == METRICS_DROP_KINDS) {
		s->other_drops++;
		return;
	}
	s->drops[s->ndrops++] = (struct metrics_drop){ reason, segment, 1 };
}

void metrics_snapshot_add_conn(struct metrics_snapshot *s, const struct lifecycle *l)
{
	const struct conn *c = l->c;

	s->outcome[l->outcome]++;
	s->closer[l->closer]++;
	if (l->handshake_us >= 0 && (c->role == ROLE_CLIENT || c->role == ROLE_SERVER))
		hist_observe(&s->handshake[c->role == ROLE_SERVER ? METRICS_SERVER : METRICS_CLIENT],
			     (uint64_t)l->handshake_us);
	if (c->role == ROLE_SERVER)
		count_port(s->ports, &s->nports, &s->other_port_conns, c->sport);
}

/* ---- the exposition ---------------------------------------------------- */

struct text {
	char *buf;
	size_t len, cap;
	bool full;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= t->cap - t->len) {
		t->full = true;
		return;
	}
	t->len += (size_t)n;
}

static void header(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Microseconds as seconds, shortest exact decimal: 50 -> "0.00005", 2500000 -> "2.5". */
static void put_seconds(struct text *t, uint64_t us)
{
	char frac[8];
	int n;

	n = snprintf(frac, sizeof(frac), "%06llu", (unsigned long long)(us % 1000000));
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	put(t, "%llu%s%s", (unsigned long long)(us / 1000000), n ? "." : "", frac);
}

static void format_hist(struct text *t, const struct metrics_hist *h, const char *role)
{
	const char *name = "synfin_handshake_duration_seconds";
	uint64_t cumulative = 0;

	for (int i = 0; i < METRICS_HS_BOUNDS; i++) {
		cumulative += h->bucket[i];
		put(t, "%s_bucket{role=\"%s\",le=\"", name, role);
		put_seconds(t, metrics_hs_bounds_us[i]);
		put(t, "\"} %llu\n", (unsigned long long)cumulative);
	}
	put(t, "%s_bucket{role=\"%s\",le=\"+Inf\"} %llu\n", name, role, (unsigned long long)h->count);
	put(t, "%s_sum{role=\"%s\"} ", name, role);
	put_seconds(t, h->sum_us);
	put(t, "\n%s_count{role=\"%s\"} %llu\n", name, role, (unsigned long long)h->count);
}

static void format_handshakes(struct text *t, const struct metrics_snapshot *s)
{
	header(t, "synfin_handshake_duration_seconds", "histogram",
	       "TCP handshake latency: SYN sent to ESTABLISHED (client), SYN-ACK sent to the "
	       "final ACK (server).");
	format_hist(t, &s->handshake[METRICS_CLIENT], "client");
	format_hist(t, &s->handshake[METRICS_SERVER], "server");
}

/* Every value of each label (names.c), so the series sum to the connections seen. */static void format_endings(struct text *t, const struct metrics_snapshot *s)
{
	header(t, "synfin_connections_total", "counter",
	       "Finished connections by outcome (closed: FIN teardown; unknown: not seen closing).");
	for (int i = 0; i < OUTCOME_COUNT; i++)
		put(t, "synfin_connections_total{outcome=\"%s\"} %llu\n", outcome_label(i),
		    (unsigned long long)s->outcome[i]);
	header(t, "synfin_connections_closed_total", "counter",
	       "Finished connections by who sent the first FIN (none: no FIN exchange).");
	for (int i = 0; i < CLOSER_COUNT; i++)
		put(t, "synfin_connections_closed_total{closer=\"%s\"} %llu\n", closer_label(i),
		    (unsigned long long)s->closer[i]);
}

static void format_gauges(struct text *t, const struct metrics_snapshot *s)
{
	header(t, "synfin_connections", "gauge",
	       "Connections synfin tracks, by current TCP state (the ss -s view).");
	for (uint8_t st = 1; st < SF_TCP_MAX_STATES; st++)
		put(t, "synfin_connections{state=\"%s\"} %u\n", state_name(st), s->state_count[st]);
	header(t, "synfin_time_wait_connections", "gauge",
	       "Connections whose time-wait socket is still held by the kernel.");
	put(t, "synfin_time_wait_connections %u\n", s->time_wait);
}

static void counter(struct text *t, const char *name, const char *help, uint64_t v)
{
	header(t, name, "counter", help);
	put(t, "%s %llu\n", name, (unsigned long long)v);
}

static void format_ports(struct text *t, const char *name, const char *help,
			 const struct metrics_port *ports, uint32_t nports, uint64_t other)
{
	header(t, name, "counter", help);
	for (uint32_t i = 0; i < nports && i < METRICS_PORTS; i++)
		put(t, "%s{port=\"%u\"} %llu\n", name, ports[i].port,
		    (unsigned long long)ports[i].count);
	put(t, "%s{port=\"other\"} %llu\n", name, (unsigned long long)other);
}

static void format_listeners(struct text *t, const struct metrics_snapshot *s)
{
	format_ports(t, "synfin_listener_connections_total",
		     "Accepted connections by local port (first 20 ports seen; the rest under "
		     "port=\"other\").",
		     s->ports, s->nports, s->other_port_conns);
	format_ports(t, "synfin_no_socket_resets_total",
		     "RSTs this host sent for no socket (a SYN to a closed port: a refusal) by "
		     "local port (first 20 ports seen; the rest under port=\"other\").",
		     s->rst_ports, s->nrst_ports, s->other_port_rsts);
}

static void listener_gauge(struct text *t, const struct metrics_snapshot *s, const char *name,
			   const char *type, const char *help, int field)
{
	header(t, name, type, help);
	for (uint32_t i = 0; i < s->nlisteners && i < METRICS_PORTS; i++) {
		const struct metrics_listener *m = &s->listeners[i];
		uint64_t v = field == 0 ? m->queue : field == 1 ? m->peak : field == 2 ? m->backlog :
			     field == 3 ? m->drops : m->synack_retrans;

		put(t, "%s{port=\"%u\"} %llu\n", name, m->port, (unsigned long long)v);
	}
}

static void format_syncookies(struct text *t, const struct metrics_snapshot *s)
{
	static const char *const names[COOKIE_COUNTERS][2] = {
		{ "synfin_syncookies_sent_total",
		  "SYN cookies sent (SYN-ACKs answering a SYN with no request kept), in the "
		  "namespaces whose listeners synfin looks at, since it first looked (nstat "
		  "SyncookiesSent: the kernel counts them per namespace, not per listener)." },
		{ "synfin_syncookies_validated_total",
		  "Handshakes completed by a valid SYN cookie in those namespaces (SyncookiesRecv)." },
		{ "synfin_syncookies_failed_total",
		  "ACKs whose SYN cookie did not validate in those namespaces (SyncookiesFailed)." },
	};

	for (int c = 0; c < COOKIE_COUNTERS; c++)
		counter(t, names[c][0], names[c][1], s->syncookies[c]);
}

static void format_listener_health(struct text *t, const struct metrics_snapshot *s)
{
	listener_gauge(t, s, "synfin_listener_queue", "gauge",
		       "Connections waiting in the accept queue of the listening sockets on a port "
		       "(sock_diag, once a second; the first 20 ports).", 0);
	listener_gauge(t, s, "synfin_listener_queue_peak", "gauge",
		       "The longest that accept queue was at a look since synfin started.", 1);
	listener_gauge(t, s, "synfin_listener_backlog", "gauge",
		       "The accept queue's limit (listen()'s backlog, capped by somaxconn).", 2);
	listener_gauge(t, s, "synfin_listener_drops_total", "counter",
		       "SYNs and handshakes the listening sockets on a port dropped (their "
		       "sk_drops: a full accept queue, no memory, ...) since synfin started.", 3);
	listener_gauge(t, s, "synfin_listener_synack_retrans_total", "counter",
		       "SYN-ACKs the listeners on a port retransmitted (a handshake's final ACK "
		       "late or lost) since synfin started (tcp:tcp_retransmit_synack).", 4);
}

static void format_drops(struct text *t, const struct metrics_snapshot *s)
{
	header(t, "synfin_drops_total", "counter",
	       "SYN, SYN-ACK, FIN, RST and handshake ACK segments this host dropped, by segment "
	       "and the kernel's drop reason (first 16 kinds seen; the rest under segment=\"other\").");
	for (uint32_t i = 0; i < s->ndrops && i < METRICS_DROP_KINDS; i++) {
		const char *reason = drop_reason_name(s->drops[i].reason);

		put(t, "synfin_drops_total{segment=\"%s\",reason=\"%s\"} %llu\n",
		    drop_segment_name(s->drops[i].segment), reason ? reason : "unknown",
		    (unsigned long long)s->drops[i].count);
	}
	put(t, "synfin_drops_total{segment=\"other\",reason=\"other\"} %llu\n",
	    (unsigned long long)s->other_drops);
}

size_t metrics_format(const struct metrics_snapshot *snap, char *buf, size_t len)
{
	struct text t = { .buf = buf, .cap = len };

	if (!len)
		return 0;
	buf[0] = '\0';
	format_handshakes(&t, snap);
	format_endings(&t, snap);
	format_gauges(&t, snap);
	counter(&t, "synfin_events_total", "State transitions received from the kernel.",
		snap->events);
	counter(&t, "synfin_lost_events_total",
		"Records dropped because a ring buffer was full, and transitions the kernel never "
		"ran synfin's program for (seen when a lifecycle is ended from its mini-socket).",
		snap->lost);
	counter(&t, "synfin_evicted_connections_total",
		"Tracked connections dropped to stay within --max-conns.", snap->evicted);
	format_listeners(&t, snap);
	format_drops(&t, snap);
	format_listener_health(&t, snap);
	format_syncookies(&t, snap);
	header(&t, "synfin_build_info", "gauge", "Always 1; the version in a label.");
	put(&t, "synfin_build_info{version=\"%s\"} 1\n", SYNFIN_VERSION);
	if (t.full) {
		buf[0] = '\0';
		return 0;
	}
	return t.len;
}

