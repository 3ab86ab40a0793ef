/* Output formats: readable columns (output_text.c) and NDJSON (output_json.c). */
#ifndef SYNFIN_OUTPUT_H
#define SYNFIN_OUTPUT_H
#include <stdbool.h>
#include <stdint.h>
#include "outbuf.h"
#include "synfin.h"
#include "timewait.h"
#include "tracker.h"

struct output {
	struct outbuf ob;
	bool life_only;           /* --life: lifecycle records only */
	int64_t mono_to_real_ns;  /* CLOCK_REALTIME - CLOCK_MONOTONIC, for wall-clock columns */
	const struct formatter *fmt;
};

struct formatter {
	void (*header)(struct output *o);
	void (*state)(struct output *o, const struct synfin_event *e, const struct transition *tr);
	void (*conn)(struct output *o, const struct conn *c);
	void (*lost)(struct output *o, uint64_t ts_ns, uint64_t lost, uint64_t total);
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

#endif
