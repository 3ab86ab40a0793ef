/* Command line: argp options into one struct, numbers range-checked. */
#ifndef SYNFIN_OPTIONS_H
#define SYNFIN_OPTIONS_H
#include <stdbool.h>
#include <stdint.h>

enum hook_choice {
	HOOK_AUTO = 0,   /* probe: tp_btf when the kernel takes it, else tracepoint */
	HOOK_TP_BTF,
	HOOK_TRACEPOINT,
};

#define MAX_IFACES 8

struct options {
	const char *ifaces[MAX_IFACES]; /* -i: interfaces for the packet layer */
	int nifaces;
	bool all_segments, ladder, relative;
	uint32_t pid;
	uint16_t port, sport, dport;
	uint8_t family; /* AF_INET, AF_INET6 or 0 */
	uint32_t netns;
	uint64_t cgroup_id;
	const char *cgroup_path;
	uint32_t duration_s; /* 0 = until interrupted */
	uint32_t stuck_s;    /* 0 = off */
	bool summary;        /* --summary: histograms and counts instead of events */
	uint32_t interval_s; /* --interval: a summary every N seconds (0: only at exit) */
	bool json, life, verbose;
	const char *metrics;      /* --metrics [ADDR:]PORT, or NULL */
	char metrics_host[64];
	uint16_t metrics_port;
	uint64_t ringbuf_bytes;
	bool ringbuf_auto;   /* derived: no --ringbuf-size, the default applies */
	uint32_t max_conns;
	enum hook_choice hook;
};

enum options_result {
	OPTIONS_RUN = 0,     /* go on and trace */
	OPTIONS_DONE = 1,    /* --help, --usage or --version was printed: exit 0 */
	OPTIONS_INVALID = 2, /* one line was printed to stderr: exit 2 */
};

/* Parses argv into *opts. Never exits: the caller decides. */
enum options_result options_parse(int argc, char **argv, struct options *opts);

#endif
