/* Output formats: readable columns (output_text.c) and NDJSON (output_json.c). */
#ifndef SYNFIN_OUTPUT_H
#define SYNFIN_OUTPUT_H
#include <stdbool.h>
#include <stdint.h>
#include "outbuf.h"
#include "synfin.h"
#include "flows.h"
#include "timewait.h"
#include "tracker.h"

struct output {
	struct outbuf ob;
	bool life_only;           /* --life: lifecycle records only */
	bool ladder, relative;    /* --ladder, --relative */
	bool color;               /* ANSI colours: stdout is a terminal */
	int64_t mono_to_real_ns;  /* CLOCK_REALTIME - CLOCK_MONOTONIC, for wall-clock columns */
	const struct formatter *fmt;
	struct ob_memo ts_hi, netns; /* NDJSON: digits of recent values */
};

struct formatter {
	void (*header)(struct output *o);
	void (*state)(struct output *o, const struct synfin_event *e, const struct transition *tr);
	void (*conn)(struct output *o, const struct conn *c);
	/* A lifecycle with its wire view (packet layer): f holds its segments. */
	void (*conn_wire)(struct output *o, const struct conn *c, const struct flow *f);
	/* One TCP segment as the packet layer saw it (ifname: the interface). */
	void (*packet)(struct output *o, const struct synfin_segment *s, const char *ifname);
	/* Records lost since the last report, and in all; skipped: of the total, the
	 * runs the kernel skipped (its recursion guard), the rest found a ring full. */
	void (*lost)(struct output *o, uint64_t ts_ns, uint64_t lost, uint64_t total,
		     uint64_t skipped);
	/* --stuck: a connection sitting in one state for too long. */
	void (*stuck)(struct output *o, const struct conn *c, uint64_t now_ns);
	/* A connection's time-wait mini-socket is gone. */
	void (*tw_end)(struct output *o, const struct tw_entry *e, enum tw_end how, uint64_t now_ns);
};

extern const struct formatter text_formatter;
extern const struct formatter json_formatter;

void output_init(struct output *o, int fd, bool json, bool life_only);
/* One transition (and the lifecycle it ended, if any). Returns -errno once output broke. */
int output_transition(struct output *o, const struct synfin_event *e, const struct transition *tr);

const char *role_name(uint8_t role);
const char *closer_name(enum conn_closer closer); /* NULL for CLOSER_NONE */
const char *outcome_name(enum conn_outcome outcome); /* NULL for OUTCOME_UNKNOWN */
/* "entered", "fin_wait2" or NULL: how the connection met the time-wait machinery. */
const char *time_wait_name(const struct conn *c);
const char *tw_end_name(enum tw_end how);
/* tcpdump's letters: "S", "S.", ".", "F.", "R", "R.", "P." ... (buf: at least 10 bytes). */
const char *tcp_flags_str(uint8_t flags, char *buf);
/* Writes the sequence diagram of a finished flow (output_ladder.c). */
void ladder_write(struct output *o, const struct flow *f);

#endif
