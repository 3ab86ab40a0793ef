/*
 * A finished connection as every sink sees it: the tracker's record, what
 * follows from it (outcome, closer, times, byte counts) and, with the packet
 * layer, its flow and what the wire said, all worked out once, here. Sinks
 * read this view; none of them analyses a connection or reaches into the
 * tracker or the flow table.
 */
#ifndef SYNFIN_LIFECYCLE_H
#define SYNFIN_LIFECYCLE_H
#include <stdbool.h>
#include <stdint.h>
#include "flows.h"
#include "droplog.h"
#include "listeners.h"
#include "tracker.h"

struct lifecycle {
	const struct conn *c;
	enum conn_outcome outcome;
	enum conn_closer closer;
	const char *time_wait;      /* "entered", "fin_wait2" or NULL */
	const char *reset_by;       /* "local", "remote", or NULL when not a reset */
	const char *reset_reason;   /* the kernel's name for why (names.h), NULL: not known */
	int64_t reset_at_us;        /* the RST sent or received, from the first transition; -1 */
	/* -1: not known (null in NDJSON). */
	int64_t handshake_us, duration_us;
	int64_t accept_wait_us; /* an accepted child: its time in the accept queue */
	int64_t syn_retrans, synack_retrans;
	int64_t local_isn, remote_isn;
	int64_t tx_bytes, rx_bytes;
	/* Its SYN, SYN-ACK, FIN and RST segments this host dropped, with the kernel's
	 * reason (drop_log_take); drops_known false: this kernel does not tell (null). */
	struct conn_drop drops[DROPS_PER_CONN];
	uint8_t ndrops;
	bool drops_known;
	/* A client with no SYN-ACK: the local listener it reached, its accept queue
	 * full all along (listeners_full_for), and the SYNs it dropped; NULL: none. */
	const struct listener_health *full_listener;
	uint32_t full_listener_syns;
	/* With -i: the connection's flow (NULL without), our side of it, what the
	 * wire said, and whether this is the flow's last lifecycle record. */
	const struct flow *flow;
	int side;
	bool ends_flow;
	struct wire_facts wire;
};

/* The view of c; f is its flow (or NULL), ends_flow when no other side of f follows. */
void lifecycle_of(struct lifecycle *l, const struct conn *c, const struct flow *f, bool ends_flow);
/* "entered", "fin_wait2" or NULL: how the connection met the time-wait machinery. */
const char *time_wait_name(const struct conn *c);

#endif
