/*
 * The records sink: readable columns (output_text.c) or NDJSON
 * (output_json.c), one line per record, through one output buffer; and the
 * ladder sink (output_ladder.c), which draws finished flows into the same
 * buffer.
 */
#ifndef SYNFIN_OUTPUT_H
#define SYNFIN_OUTPUT_H
#include <stdbool.h>
#include <stdint.h>
#include "lifecycle.h"
#include "outbuf.h"
#include "sink.h"
#include "synfin.h"

/* Which records a records sink writes. Lost and stuck notices always go out. */
enum output_mode {
	OUTPUT_ALL = 0,  /* transitions, segments, lifecycles, TIME_WAIT ends */
	OUTPUT_LIFE,     /* --life: lifecycles and TIME_WAIT ends */
	OUTPUT_NOTICES,  /* --summary: the summary sink has the rest */
};

struct formatter;

struct output {
	struct sink sink;         /* first: &output is the records sink */
	struct outbuf ob;
	enum output_mode mode;
	bool relative;            /* --ladder --relative */
	bool color;               /* ANSI colours: stdout is a terminal */
	int64_t mono_to_real_ns;  /* CLOCK_REALTIME - CLOCK_MONOTONIC, for wall-clock columns */
	const struct formatter *fmt;
	struct ob_memo ts_hi, netns; /* NDJSON: digits of recent values */
};

/* One way of writing each record type (text_formatter, json_formatter). */
struct formatter {
	void (*header)(struct output *o);
	void (*state)(struct output *o, const struct synfin_event *e, const struct transition *tr);
	/* A lifecycle; with the packet layer (l->flow) its wire view too. */
	void (*conn)(struct output *o, const struct lifecycle *l);
	/* One TCP segment as the packet layer saw it (ifname: the interface). */
	void (*packet)(struct output *o, const struct synfin_segment *s, const char *ifname);
	void (*lost)(struct output *o, uint64_t ts_ns, const struct loss *l);
	/* --stuck: a connection sitting in one state for too long. */
	void (*stuck)(struct output *o, const struct conn *c, uint64_t now_ns);
	/* A connection's time-wait mini-socket is gone. */
	void (*tw_end)(struct output *o, const struct tw_entry *e, enum tw_end how, uint64_t now_ns);
	/* An RST sent for no socket. */
	void (*reset)(struct output *o, const struct synfin_event *e);
	/* A segment this host dropped. */
	void (*drop)(struct output *o, const struct synfin_event *e);
};

extern const struct formatter text_formatter;
extern const struct formatter json_formatter;

/* A records sink writing to fd. */
void output_init(struct output *o, int fd, bool json, enum output_mode mode);
/* errno of the first failed write (sticky), 0 while the output works. */
int output_error(const struct output *o);

/* The ladder sink: each finished flow (-i --ladder, text) as a sequence diagram into out. */
struct ladder_sink {
	struct sink sink;
	struct output *out;
};

void ladder_sink_init(struct ladder_sink *l, struct output *out);
/* Writes the sequence diagram of a finished flow. */
void ladder_write(struct output *o, const struct flow *f);

const char *role_name(uint8_t role);
const char *closer_name(enum conn_closer closer); /* NULL for CLOSER_NONE */
const char *outcome_name(enum conn_outcome outcome); /* NULL for OUTCOME_UNKNOWN */
const char *tw_end_name(enum tw_end how);
/* tcpdump's letters: "S", "S.", ".", "F.", "R", "R.", "P." ... (buf: at least 10 bytes). */
const char *tcp_flags_str(uint8_t flags, char *buf);

#endif
