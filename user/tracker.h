/*
 * The lifecycle tracker: follows each TCP socket (keyed by its kernel
 * address) from its first state to CLOSE and then hands back one lifecycle
 * record. Pure C, no libbpf: unit-tested on its own with synthetic events.
 *
 * Memory is bounded: at most `cap` sockets are tracked; when a new one
 * arrives with the table full, the oldest is evicted and counted.
 */
#ifndef SYNFIN_TRACKER_H
#define SYNFIN_TRACKER_H
#include <stdbool.h>
#include <stdint.h>
#include "synfin.h"

/* The most states one lifecycle can list; TCP needs at most 7, so this is slack. */
#define TRACKER_MAX_STATES 12
/* A duration we did not see the start of. */
#define TRACKER_UNKNOWN_US UINT32_MAX

enum conn_role {
	ROLE_UNKNOWN = 0, /* appeared mid-life: cannot tell */
	ROLE_CLIENT,      /* connect(): starts in SYN_SENT */
	ROLE_SERVER,      /* accepted child: starts in SYN_RECV */
	ROLE_LISTENER,    /* listen(): never yields a lifecycle record */
};

/* One tracked socket; also the lifecycle record handed out at CLOSE. */
struct conn {
	uint64_t key;      /* skaddr */
	uint64_t first_ns; /* first transition seen */
	uint64_t state_ns; /* when the current state was entered */
	uint64_t cgroup_id;
	uint8_t saddr[16];
	uint8_t daddr[16];
	uint32_t pid; /* owner; 0 = not known */
	uint32_t netns;
	uint32_t older, newer; /* insertion-order list, for eviction */
	uint16_t sport, dport;
	uint8_t family, role, partial, nstates;
	char comm[SYNFIN_COMM_LEN];
	uint8_t states[TRACKER_MAX_STATES];
	uint32_t state_us[TRACKER_MAX_STATES]; /* time spent in states[i] */
};

/* What the tracker learnt from one transition, for the per-event output. */
struct transition {
	int64_t delta_us;  /* time spent in the old state; -1 when not known */
	uint32_t pid;      /* owner, as best known */
	const char *comm;  /* owner's comm ("" when not known) */
	const struct conn *ended; /* non-NULL when this transition finished a lifecycle */
};

struct tracker;

struct tracker *tracker_new(uint32_t cap);
void tracker_free(struct tracker *t);
/* Feeds one state event. out->ended stays valid until the next call. */
void tracker_feed(struct tracker *t, const struct synfin_event *e, struct transition *out);
uint32_t tracker_count(const struct tracker *t);
uint64_t tracker_evicted(const struct tracker *t);

/* Derived facts of a finished lifecycle; -1 when not measurable. */
int64_t conn_handshake_us(const struct conn *c);
int64_t conn_duration_us(const struct conn *c);

#endif
