/*
 * The packet layer's plumbing: load the XDP/TC programs, attach them to the
 * interfaces the user named without disturbing what is already there, and
 * detach exactly what synfin attached.
 */
#ifndef SYNFIN_WIRE_H
#define SYNFIN_WIRE_H
#include <bpf/libbpf.h>
#include <stdbool.h>
#include "options.h"

struct wire_iface {
	char name[16];
	int ifindex;
	int xdp_link;  /* fd of the XDP link, -1 if none */
	int tcx_link;  /* fd of the tcx egress link (kernels >= 6.6), -1 if none */
	bool tc_filter;      /* a clsact egress filter of ours (older kernels) */
	bool clsact_created; /* we created the clsact qdisc: ours to remove */
};

struct wire {
	struct wire_bpf *skel;
	bool tcx; /* the kernel has tcx links (kfeatures.h): else a clsact filter */
	struct wire_iface ifs[MAX_IFACES];
	int nifs;
};

/* Loads and attaches; adds the segment ring to rb. Returns 0, or an exit
 * status after one line on stderr; on failure nothing of ours stays attached. */
int wire_start(struct wire *w, const struct options *o, bool tcx, struct ring_buffer *rb,
	       ring_buffer_sample_fn on_segment, void *ctx);
void wire_stop(struct wire *w);
/* One line on stderr with the packet layer's counters (segments, SYNs, ..., malformed, lost). */
void wire_report(const struct wire *w);
/* The name of an interface synfin watches, for records ("?" if unknown). */
const char *wire_ifname(const struct wire *w, unsigned ifindex);

#endif
