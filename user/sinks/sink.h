/*
 * Where records go. Every output (columns or NDJSON, the ladder, --summary,
 * --metrics) is a sink and is handed every kind of record through these same
 * callbacks, finished connections as a read-only struct lifecycle; a sink
 * leaves a callback NULL for what it has no use for. main.c reads as
 * source (the rings) -> tracker -> enrichers (TIME_WAIT follower, flow join,
 * stuck finder) -> sinks.
 */
#ifndef SYNFIN_SINK_H
#define SYNFIN_SINK_H
#include <stdbool.h>
#include <stdint.h>
#include "lifecycle.h"
#include "listeners.h"
#include "synfin.h"
#include "timewait.h"
#include "tracker.h"

/* Records lost: since the last report, in all, and of all those the runs the
 * kernel skipped (its recursion guard); the rest found a ring full. */
/* Transitions lost: count since the last report, total; of total, runs the kernel skipped
 * and counted (skipped), runs it made without calling synfin (unseen); the rest found a ring full. */
struct loss {
	uint64_t count, total, skipped, unseen;
};

/* The tracer's counters and gauges, for sinks that report them (wants_status). */
struct sink_status {
	uint64_t lost, evicted;
	uint32_t time_wait; /* connections followed in TIME_WAIT now */
	uint32_t state_count[SF_TCP_MAX_STATES]; /* tracked sockets per state */
	const struct listener_table *listeners;  /* listening sockets' health (NULL: none) */
};

struct sink;

struct sink_ops {
	void (*start)(struct sink *s); /* before the first record: headers */
	void (*state)(struct sink *s, const struct synfin_event *e, const struct transition *tr);
	void (*conn)(struct sink *s, const struct lifecycle *l);
	void (*packet)(struct sink *s, const struct synfin_segment *seg, const char *ifname);
	void (*lost)(struct sink *s, uint64_t ts_ns, const struct loss *l);
	void (*stuck)(struct sink *s, const struct conn *c, uint64_t now_ns);
	void (*tw_end)(struct sink *s, const struct tw_entry *e, enum tw_end how, uint64_t now_ns);
	/* An RST this host sent for no socket (SF_EV_RST, skaddr 0): a refusal, in effect. */
	void (*reset)(struct sink *s, const struct synfin_event *e);
	/* A SYN, SYN-ACK, FIN or RST this host dropped (SF_EV_DROP), with the kernel's reason. */
	void (*drop)(struct sink *s, const struct synfin_event *e);
	/* The housekeeping clock (every ~100 ms): periodic output, gauges. */
	void (*tick)(struct sink *s, uint64_t now_ns, const struct sink_status *st);
	/* Write out what is pending: on SIGUSR1 (final false) and at the end (true). */
	void (*report)(struct sink *s, uint64_t now_ns, bool final);
	bool wants_status; /* tick needs a filled struct sink_status */
};

/* Embedded first in each sink's own struct. */
struct sink {
	const struct sink_ops *ops;
};

#define SINKS_MAX 4

struct sinks {
	struct sink *s[SINKS_MAX];
	int n;
	bool wants_status;
	/* -p: only the records of the sockets this process holds (at that record); 0 = all */
	uint32_t pid;
};

void sinks_add(struct sinks *all, struct sink *s);
void sinks_start(struct sinks *all);
void sinks_state(struct sinks *all, const struct synfin_event *e, const struct transition *tr);
void sinks_conn(struct sinks *all, const struct lifecycle *l);
void sinks_packet(struct sinks *all, const struct synfin_segment *seg, const char *ifname);
void sinks_lost(struct sinks *all, uint64_t ts_ns, const struct loss *l);
void sinks_stuck(struct sinks *all, const struct conn *c, uint64_t now_ns);
void sinks_tw_end(struct sinks *all, const struct tw_entry *e, enum tw_end how, uint64_t now_ns);
void sinks_reset(struct sinks *all, const struct synfin_event *e);
void sinks_drop(struct sinks *all, const struct synfin_event *e);
void sinks_tick(struct sinks *all, uint64_t now_ns, const struct sink_status *st);
void sinks_report(struct sinks *all, uint64_t now_ns, bool final);

#endif
