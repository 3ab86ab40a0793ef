/*
 * The wire view of connections: TCP segments from the packet layer (XDP
 * ingress, TC egress) and the state transitions of both endpoints, gathered
 * per flow (the 4-tuple, either direction), so that a finished connection
 * can be shown as the textbook ladder and checked against the protocol.
 * Pure C, no libbpf: unit-tested with synthetic segments.
 */
#ifndef SYNFIN_FLOWS_H
#define SYNFIN_FLOWS_H
#include <stdbool.h>
#include <stdint.h>
#include "synfin.h"
#include "tracker.h"


#define FLOW_MAX_SEGMENTS 24

/*
 * One connection as both the wire and the state layer saw it. Side 0 ("A")
 * is the endpoint that sent the first segment we saw (the client, usually).
 */
struct flow {
	uint64_t key;
	uint64_t last_ns;       /* last segment or state seen */
	uint64_t complete_ns;   /* every socket of ours on it has closed; 0 = not yet */
	uint8_t addr[2][16];
	uint16_t port[2];
	uint8_t family;
	uint8_t in_use;
	uint8_t nseg;
	uint8_t truncated;      /* more segments than kept */
	uint8_t seen_sides;     /* bit per side: one of our sockets is that endpoint */
	uint8_t held_sides;     /* bit per side: its lifecycle record waits in conns[] */
	uint8_t pad[2];
	struct synfin_segment seg[FLOW_MAX_SEGMENTS];
	struct conn conns[2];   /* finished lifecycles, by side */
};

enum flow_anomaly {
	ANOM_SYNACK_ACK = 1 << 0,    /* SYN-ACK's ack is not the SYN's seq + 1 */
	ANOM_HANDSHAKE_ACK = 1 << 1, /* the final ACK's ack is not the SYN-ACK's seq + 1 */
	ANOM_FIN_ACK = 1 << 2,       /* a FIN was never acknowledged with its seq + len + 1 */
	ANOM_RST_IN_HANDSHAKE = 1 << 3,
	ANOM_SYN_NO_LISTENER = 1 << 4, /* SYN answered by RST */
	ANOM_DUPLICATE_SYN = 1 << 5,
	ANOM_COUNT = 6,
};

/* What the wire said about a handshake. Times -1 when not seen. */
struct wire_facts {
	int64_t syn_ns, synack_ns, ack_ns; /* first SYN, first SYN-ACK, handshake-completing ACK */
	uint32_t syns, synacks;            /* how many, retransmissions included */
	uint32_t anomalies;                /* enum flow_anomaly bits */
	int syn_idx, synack_idx;           /* segments carrying the options, or -1 */
};

typedef void (*flow_done_fn)(void *ctx, const struct flow *f);

struct flow_table;

/* done is called for every flow that is finished (or evicted to make room). */
struct flow_table *flows_new(uint32_t cap, flow_done_fn done, void *ctx);
void flows_free(struct flow_table *t);
void flows_add_segment(struct flow_table *t, const struct synfin_segment *s);
/* Notes that one of our sockets is an endpoint of a flow (from a state event). */
void flows_note_state(struct flow_table *t, const struct synfin_event *e);
/* Hands a finished lifecycle to its flow; false when it has none (emit it now). */
bool flows_hold_conn(struct flow_table *t, const struct conn *c, uint64_t now_ns);
/* Finishes flows complete for grace_ns (segments that trail the last state
 * change still get in), and flows idle for idle_ns. grace 0 = all of them. */
void flows_flush(struct flow_table *t, uint64_t now_ns, uint64_t grace_ns, uint64_t idle_ns);
uint64_t flows_evicted(const struct flow_table *t);

/* Is segment i a copy of an earlier one (the same segment on another hook: lo shows each twice)? */
bool flow_is_duplicate(const struct flow *f, int i);
/* Which side sent segment i: 0 = A, 1 = B. */
int flow_segment_side(const struct flow *f, int i);
/* Which side a connection is (its local endpoint), or -1. */
int flow_side_of(const struct flow *f, const struct conn *c);
void flow_wire_facts(const struct flow *f, struct wire_facts *out);
const char *anomaly_name(int bit);

#endif
