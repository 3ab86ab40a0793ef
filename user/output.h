/* Output formats: readable columns (output_text.c) and NDJSON (output_json.c). */
#ifndef SYNFIN_OUTPUT_H
#define SYNFIN_OUTPUT_H
#include <stdbool.h>
#include <stdint.h>
#include "outbuf.h"
#include "synfin.h"
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
};

extern const struct formatter text_formatter;
extern const struct formatter json_formatter;

void output_init(struct output *o, int fd, bool json, bool life_only);
/* One transition (and the lifecycle it ended, if any). Returns -errno once output broke. */
int output_transition(struct output *o, const struct synfin_event *e, const struct transition *tr);

const char *role_name(uint8_t role);

#endif
