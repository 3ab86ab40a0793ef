/*
 * Listening sockets' health, which no tracepoint tells: each accept queue's
 * depth now and at its peak, its backlog, and the SYNs and handshakes the
 * listener dropped (its sk_drops: every tcp_listendrop(), a full accept queue
 * included; nstat counts the same as ListenDrops). Read through sock_diag,
 * once a second, in each namespace where synfin saw a listener; a diag socket
 * is opened for the dump and closed after it, so no namespace is kept alive.
 */
#ifndef SYNFIN_LISTENERS_H
#define SYNFIN_LISTENERS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LISTENERS_MAX 256
#define LISTENER_NETNS_MAX 32
#define LISTENER_POLL_NS 1000000000ull

struct listener_health {
	uint64_t ino;           /* the listening socket's inode: SO_REUSEPORT twins apart */
	uint64_t drops_first;   /* its sk_drops when first seen (synfin counts from there) */
	uint64_t drops;         /* and at the last look */
	uint64_t full_since_ns; /* its queue has been full since (0: not full at the last look) */
	int64_t synack_retrans; /* SYN-ACK retransmissions on its port since synfin started; -1 not known */
	uint32_t netns, queue, peak, backlog;
	uint8_t addr[16];       /* its bound address (IPv4 in the first 4 bytes); all 0: any */
	uint16_t port;
	uint8_t family;
	uint8_t gone;           /* closed: no longer in its namespace's dump */
	uint8_t stuck_reported; /* --stuck said so for the current full spell */
};

/* SYN cookies: the kernel counts them per namespace only (nstat), not per listener. */
enum syncookie_counter { COOKIES_SENT, COOKIES_VALIDATED, COOKIES_FAILED, COOKIE_COUNTERS };

/* A namespace whose listeners are looked at, and its SYN cookie counters. */
struct listener_netns {
	uint32_t netns;
	bool cookies_known;                       /* its netstat was read at least once */
	uint64_t cookies_first[COOKIE_COUNTERS];  /* at the first read (synfin counts from there) */
	uint64_t cookies[COOKIE_COUNTERS];        /* and at the last */
};

struct listener_table {
	struct listener_health l[LISTENERS_MAX];
	uint32_t n;
	struct listener_netns ns[LISTENER_NETNS_MAX];
	uint32_t nnetns;
	uint32_t self_netns;
	uint64_t next_ns;
	uint64_t untracked; /* listeners past LISTENERS_MAX, not followed */
	uint16_t only_port; /* -P/--sport: only listeners on this port (0: all) */
	/* True when synfin saw this listener's listen(): its sk_drops began at 0 under
	 * synfin's eyes, so all of them count; older ones count from the first look. */
	bool (*born_since_start)(void *ctx, uint32_t netns, uint16_t port);
	void *ctx;
	int fatal;          /* errno: synfin could not step back into its own namespace */
};

void listeners_init(struct listener_table *t);
/* Watch the listeners of this namespace (a LISTEN, or a child born, was seen there). */
void listeners_watch(struct listener_table *t, uint32_t netns);
/* Once LISTENER_POLL_NS has passed (or force): a look at every watched namespace;
 * true if it looked. */
bool listeners_poll(struct listener_table *t, uint64_t now_ns, bool force);
/* The sk_drops a listener has counted since synfin first saw it. */
uint64_t listener_drops(const struct listener_health *l);
/*
 * The local listener a connection to daddr:dport in netns reached, if its
 * accept queue was full at every look since since_ns (within one poll): at a
 * full accept queue the kernel drops every SYN, with no trace event (nstat
 * ListenOverflows). One in netns itself, else the only one in another
 * namespace bound to daddr or to any address; NULL if none or ambiguous.
 */
const struct listener_health *listeners_full_for(const struct listener_table *t, uint32_t netns,
						 uint8_t family, const uint8_t *daddr,
						 uint16_t dport, uint64_t since_ns);
/* The SYN cookie counters (TcpExt SyncookiesSent, SyncookiesRecv, SyncookiesFailed) in a
 * /proc/net/netstat text; false if it has them not. */
bool netstat_cookies(const char *text, uint64_t out[COOKIE_COUNTERS]);
/* A namespace's cookie counter since synfin first read it. */
uint64_t listener_netns_cookies(const struct listener_netns *n, enum syncookie_counter which);
/* One inet_diag reply (a dump's messages) into t, for netns; for the unit tests and the poll. */
void listeners_take_dump(struct listener_table *t, uint32_t netns, const void *buf, size_t len,
			 uint64_t now_ns);

#endif
