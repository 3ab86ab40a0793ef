/*
 * --summary: what the connections of an interval looked like, in log2
 * histograms (printed like bcc's) and bounded counts, instead of a line per
 * event. Pure C: unit-testable with synthetic lifecycles.
 */
#ifndef SYNFIN_SUMMARY_H
#define SYNFIN_SUMMARY_H
#include <stdbool.h>
#include <stdint.h>
#include "lifecycle.h"
#include "listeners.h"
#include "outbuf.h"
#include "sink.h"
#include "tracker.h"

/* 64 log2 buckets: every uint64_t value has its own, none saturates. */
#define HIST_BUCKETS 64
#define SUMMARY_TOP 10
/*
 * Ports and remote addresses are counted in bounded tables with the
 * Space-Saving algorithm (Metwally et al., 2005): when a table is full, a
 * new key takes the place of the least counted one. Any key that makes up
 * more than 1/SUMMARY_PORTS (1/SUMMARY_TALKERS) of the connections is always
 * in its table, so the top ten are right even when a scan or a flood brings
 * thousands of one-off keys. O(1) lookups (hash index) and O(log n)
 * replacements (min-heap); a few dozen KiB in all.
 */
#define SUMMARY_PORTS 256   /* (port, role) pairs counted at once */
#define SUMMARY_TALKERS 1024 /* remote addresses counted at once */
#define TOP_KEY_LEN 18

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

/* One counted key. count - err connections are certain to be its own: the
 * ones since it last entered the table (err is what its slot held before). */
struct top_entry {
	uint64_t count, err;
	uint8_t key[TOP_KEY_LEN]; /* port: port (host order), role; talker: family, address */
};

/* Entries, a min-heap of their slots by count, and an open-addressing index
 * (slot + 1; 0 = empty). All zero is an empty table. */
#define TOP_TABLE(cap)                                                           \
	struct {                                                                 \
		struct top_entry e[cap];                                         \
		uint16_t heap[cap], where[cap], index[2 * (cap)];                \
	}

struct summary {
	struct hist hist[SH_COUNT];
	uint64_t connections;
	uint64_t outcome[OUTCOME_COUNT];
	uint64_t closer[CLOSER_COUNT];
	TOP_TABLE(SUMMARY_PORTS) port_top;
	uint32_t nports;      /* entries of port_top in use */
	uint64_t other_ports; /* connections not attributed to a port in the table */
	TOP_TABLE(SUMMARY_TALKERS) talker_top;
	uint32_t ntalkers;
	uint64_t other_talkers;
};

/* The role of a top_ports line counting RSTs sent for no socket on a local port. */
#define SUMMARY_ROLE_REFUSED 0xff

/* One line of a top list, decoded. */
struct top_item {
	uint64_t count;
	uint16_t port;
	uint8_t role;   /* ports */
	uint8_t family; /* talkers */
	uint8_t addr[16];
};

void hist_add(struct hist *h, uint64_t value);
/* The bucket a value falls into. */
int hist_bucket(uint64_t value);
/* A zeroed summary (calloc) is ready to use; summary_new/free for callers that prefer them. */
struct summary *summary_new(void);
void summary_free(struct summary *s);
void summary_reset(struct summary *s);
void summary_add_conn(struct summary *s, const struct lifecycle *l);
/* An RST this host sent for no socket: a refusal on that local port (role "refused"). */
void summary_add_refusal(struct summary *s, uint16_t port);
void summary_add_time_wait(struct summary *s, uint64_t time_wait_us);
/* Up to n of the most frequent ports / remote addresses, most first; returns how many. */
uint32_t summary_top_ports(const struct summary *s, struct top_item *out, uint32_t n);
uint32_t summary_top_talkers(const struct summary *s, struct top_item *out, uint32_t n);
/* Text (bcc-style histograms and tables) or one JSON object. */
/* listeners (NULL: none): each listening socket's health, as the last look saw it. */
void summary_write(const struct summary *s, const struct listener_table *listeners,
		   struct outbuf *ob, bool json, uint64_t ts_ns,
		   uint64_t interval_ns);

/* --summary as a sink: counts lifecycles and TIME_WAIT ends, writes a summary
 * into ob every interval_ns (0: only when asked, SIGUSR1, and at the end). */
struct summary_sink {
	struct sink sink;
	struct summary sum;
	const struct listener_table *listeners; /* NULL: no listener table */
	struct outbuf *ob;
	bool json;
	uint64_t interval_ns, next_ns, last_ns;
};

void summary_sink_init(struct summary_sink *ss, struct outbuf *ob, bool json, uint64_t interval_ns,
		       uint64_t now_ns);

#endif
