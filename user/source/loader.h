/* open -> configure (rodata, map sizes, autoload) -> load -> attach, with errors people can act on. */
#ifndef SYNFIN_LOADER_H
#define SYNFIN_LOADER_H
#include <bpf/libbpf.h>
#include "cpuring.h"
#include "kfeatures.h"
#include "options.h"

struct tracer {
	struct state_bpf *skel;
	struct ring_buffer *rb;
	struct cpu_rings cpu; /* the state records (one ring per CPU) */
	void *cpu_mem;
	size_t cpu_mem_len;
	const char *hook; /* "tp_btf" or "tracepoint" */
	bool tw_timers;   /* the time-wait timer programs are attached (SF_EV_TW records come) */
	bool tw_fin;      /* and tw_fin_in on skb:kfree_skb (SF_TW_FIN_IN records come) */
	bool rst;         /* rst_sent on tcp:tcp_send_reset (SF_EV_RST records come) */
	bool accept;      /* owner_accept4/_accept/_close on the accept and close syscalls (SF_EV_OWNER) */
	bool exits;       /* owner_exit on sched:sched_process_exit (SF_EV_EXIT) */
	bool drops;       /* skb_dropped reports drops with their reason (SF_EV_DROP) */
	bool synacks;     /* synack_retransmitted counts SYN-ACK retransmissions per listener */
	struct kernel_features features;
};

/* Checks the machine, loads and attaches everything. Returns 0, or an exit
 * status after printing one line that says what to do; nothing stays attached. */
int tracer_start(struct tracer *t, const struct options *o, ring_buffer_sample_fn on_event,
		 void *ctx);
void tracer_stop(struct tracer *t);
/* Sums each key of a per-CPU array map over the CPUs into sums[0..nkeys). */
int percpu_array_sum(int map_fd, uint32_t nkeys, uint64_t *sums);
/* Records lost: ring full, or a run the kernel skipped (`skipped`,
 * its recursion guard: counted in bpf_prog_info, not by the program). */
struct tracer_counts {
	uint64_t lost, skipped;
	/* SF_EV_TW records lost (ring full, or runs the kernel skipped): apart from the
	 * state records', which are the primary data the others are counted against */
	uint64_t tw_lost;
	uint64_t rst_lost; /* SF_EV_RST records dropped (ring full, or the program skipped) */
	uint64_t owner_lost; /* SF_EV_OWNER and SF_EV_EXIT records dropped */
	uint64_t drop_lost;  /* SF_EV_DROP records dropped (and skb_dropped's skipped runs) */
};

int tracer_counters(struct tracer *t, struct tracer_counts *c);
/*
 * A connection's mini-socket was armed and no CLOSE of it came: true when the
 * kernel never ran the program for that CLOSE (its tuple k is still in
 * tw_armed, and is taken out now); false when the CLOSE's record was lost in
 * a full ring (counted there) or the time-wait programs are not attached.
 */
bool tracer_take_armed(struct tracer *t, const struct synfin_tw_key *k);
/* SYN-ACK retransmissions of the listener on (netns, port) since synfin started; -1: not known. */
int64_t tracer_synack_retrans(struct tracer *t, uint32_t netns, uint16_t port);

#endif
