/*
 * --summary: what the connections of an interval looked like, in log2
 * histograms (printed like bcc's) and bounded counts, instead of a line per
 * event. Pure C: unit-testable with synthetic lifecycles.
 */
#ifndef SYNFIN_SUMMARY_H
#define SYNFIN_SUMMARY_H
#include <stdbool.h>
#include <stdint.h>
#include "outbuf.h"
#include "tracker.h"

#define HIST_BUCKETS 40
#define SUMMARY_TOP 10
#define SUMMARY_PORTS 256   /* distinct ports counted; more go to "other" */
#define SUMMARY_TALKERS 1024

struct hist {
	uint64_t bucket[HIST_BUCKETS]; /* bucket i: [2^i, 2^(i+1)) us; bucket 0 also holds 0 */
	uint64_t count;
};

enum summary_hist {
	SH_HANDSHAKE_CLIENT,
	SH_HANDSHAKE_SERVER,
	SH_LIFETIME,
	SH_CLOSE_WAIT,
	SH_FIN_WAIT2,
	SH_TIME_WAIT,
	SH_COUNT,
};

struct port_count {
	uint16_t port;
	uint8_t role;
	uint64_t count;
};

struct talker_count {
	uint8_t family;
	uint8_t addr[16];
	uint64_t count;
};

struct summary {
	struct hist hist[SH_COUNT];
	uint64_t connections;
	uint64_t outcome[6]; /* enum conn_outcome */
	uint64_t closer[4];  /* enum conn_closer */
	struct port_count ports[SUMMARY_PORTS];
	uint32_t nports;
	uint64_t other_ports;
	struct talker_count talkers[SUMMARY_TALKERS];
	uint32_t ntalkers;
	uint64_t other_talkers;
};

void hist_add(struct hist *h, uint64_t value);
/* The bucket a value falls into. */
int hist_bucket(uint64_t value);
void summary_reset(struct summary *s);
void summary_add_conn(struct summary *s, const struct conn *c);
void summary_add_time_wait(struct summary *s, uint64_t time_wait_us);
/* Text (bcc-style histograms and tables) or one JSON object. */
void summary_write(const struct summary *s, struct outbuf *ob, bool json, uint64_t ts_ns,
		   uint64_t interval_ns);

#endif
