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

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10

enum segment_opt {
	SEG_OPT_MSS = 1 << 0,
	SEG_OPT_WSCALE = 1 << 1,
	SEG_OPT_SACK_OK = 1 << 2,
	SEG_OPT_TS = 1 << 3,
};

/* One TCP segment as seen on one interface. Addresses in network order, the rest host order. */
struct segment {
	uint64_t ts_ns;
	uint8_t saddr[16], daddr[16]; /* as on the wire: source and destination */
	uint32_t ifindex;
	uint32_t seq, ack;
	uint32_t ts_val, ts_ecr;
	uint16_t sport, dport;
	uint16_t win, len; /* raw window field; payload bytes */
	uint16_t mss;
	uint8_t family, flags, opts, wscale;
	uint8_t dir; /* 0 ingress (XDP), 1 egress (TC) */
	uint8_t pad[3];
};

/* A state transition of one endpoint of a flow. */
struct flow_state {
	uint64_t ts_ns;
	uint8_t side; /* 0: the endpoint that sent the first segment/SYN ("A"), 1: the other ("B") */
	uint8_t state;
};

#define FLOW_MAX_SEGMENTS 32
#define FLOW_MAX_STATES 16

struct flow {
	uint8_t a_addr[16], b_addr[16]; /* A: the side that spoke first (the client, usually) */
	uint16_t a_port, b_port;
	uint8_t family;
	uint8_t nseg, nstates;
	uint8_t closed_sides;   /* bit per side: its socket reached CLOSE */
	uint8_t seen_sides;     /* bit per side: a socket of ours was seen */
	uint8_t truncated;      /* more segments or states than kept */
	uint32_t older, newer;  /* insertion order, for eviction */
	uint64_t key;
	struct segment seg[FLOW_MAX_SEGMENTS];
	struct flow_state states[FLOW_MAX_STATES];
};

enum flow_anomaly {
	ANOM_SYNACK_ACK = 1 << 0,    /* SYN-ACK's ack is not the SYN's seq + 1 */
	ANOM_HANDSHAKE_ACK = 1 << 1, /* the final ACK's ack is not the SYN-ACK's seq + 1 */
	ANOM_FIN_ACK = 1 << 2,       /* a FIN was never acknowledged with its seq + len + 1 */
	ANOM_RST_IN_HANDSHAKE = 1 << 3,
	ANOM_SYN_NO_LISTENER = 1 << 4, /* SYN answered by RST */
	ANOM_DUPLICATE_SYN = 1 << 5,
};

/* What the wire said about a handshake and teardown. Times in us, -1 when not seen. */
struct wire_facts {
	int64_t syn_ns, synack_ns, ack_ns; /* first SYN, first SYN-ACK, handshake-completing ACK */
	int64_t syn_to_synack_us, synack_to_ack_us;
	uint32_t syns, synacks;            /* how many (retransmissions included) */
	uint32_t anomalies;                /* enum flow_anomaly bits */
	const struct segment *syn, *synack; /* carry the options, or NULL */
};

struct flow_table;

struct flow_table *flows_new(uint32_t cap);
void flows_free(struct flow_table *t);
/* Records a segment; lo shows each one twice (egress, then ingress): both are kept. */
void flows_add_segment(struct flow_table *t, const struct segment *s);
/* Records a state transition of one of our sockets (local/remote as in the event). */
void flows_add_state(struct flow_table *t, const struct synfin_event *e);
/* The flow of a connection, given its local and remote endpoints; NULL if none. */
const struct flow *flows_find(const struct flow_table *t, uint8_t family, const uint8_t *laddr,
			      uint16_t lport, const uint8_t *raddr, uint16_t rport);
/* Marks the local side closed; returns the flow when it is complete (every
 * side of ours closed), for the ladder, then forgets it on the next call. */
const struct flow *flows_close(struct flow_table *t, uint8_t family, const uint8_t *laddr,
			       uint16_t lport, const uint8_t *raddr, uint16_t rport);
uint64_t flows_evicted(const struct flow_table *t);

/* Is segment i a copy of an earlier one (same segment seen on another hook)? */
bool flow_is_duplicate(const struct flow *f, int i);
/* Which side sent segment i: 0 = A, 1 = B. */
int flow_segment_side(const struct flow *f, int i);
void flow_wire_facts(const struct flow *f, struct wire_facts *out);

#endif
