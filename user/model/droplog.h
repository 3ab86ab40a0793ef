/*
 * Drops of the segments that open and close connections (SF_EV_DROP), kept
 * by connection tuple until the lifecycle they belong to ends and takes them
 * (its `drops`). Bounded: the oldest tuple's drops make room, counted.
 * Costs nothing per lifecycle while nothing was dropped.
 */
#ifndef SYNFIN_DROPLOG_H
#define SYNFIN_DROPLOG_H
#include <stdbool.h>
#include <stdint.h>
#include "index.h"
#include "synfin.h"
#include "tracker.h"

/* Which segment it was, by its flags. */
enum drop_segment {
	SEG_SYN = 0,
	SEG_SYNACK,
	SEG_FIN,
	SEG_RST,
	SEG_ACK, /* the handshake's final ACK (the kernel reports no other pure ACK) */
	SEG_KINDS,
};

/* Distinct (reason, segment, direction) drops kept per connection; more are counted in the last. */
#define DROPS_PER_CONN 4

struct conn_drop {
	uint32_t count;
	uint16_t reason;  /* the kernel's enum skb_drop_reason value */
	uint8_t segment;  /* enum drop_segment */
	uint8_t sent;     /* 1: the connection's own segment (its local side sent it); 0: to it */
};

struct drop_entry {
	uint8_t lo_addr[16], hi_addr[16]; /* the two ends, in a fixed order (either direction) */
	uint32_t netns;
	uint16_t lo_port, hi_port;
	uint8_t family, n, in_use;
	struct conn_drop d[DROPS_PER_CONN];
	uint64_t key;
};

#define DROP_LOG_LEN 4096

struct drop_log {
	struct drop_entry e[DROP_LOG_LEN];
	struct index by_tuple;
	uint32_t next;      /* the slot reused next: the oldest */
	uint32_t used;
	uint64_t evicted;   /* tuples whose drops no lifecycle took before they made room */
};

int drop_log_init(struct drop_log *l);
void drop_log_free(struct drop_log *l);
enum drop_segment drop_segment_of(uint8_t tcp_flags);
const char *drop_segment_name(uint8_t segment);
void drop_log_add(struct drop_log *l, const struct synfin_event *e);
/* Moves the drops of c's tuple (either direction) into out (up to DROPS_PER_CONN); their number. */
uint8_t drop_log_take(struct drop_log *l, const struct conn *c, struct conn_drop *out);

#endif
