/*
 * Following connections through TIME_WAIT. No state tracepoint fires for the
 * time-wait mini-socket that replaces a closed socket. Two ways to follow it:
 *
 * - TW_VIA_TIMERS (where the kernel allows, kfeatures.h): the mini-socket's
 *   timer, through the timer tracepoints (bpf/timewait.bpf.h). Armed just
 *   before its socket's CLOSE (no arm: the kernel made no mini-socket, its
 *   table being full), expired at the natural end, cancelled at an early one:
 *   every end is an event, at the moment it happens, whatever the rate.
 * - TW_VIA_SOCK_DIAG: lookups through sock_diag (the netlink interface behind
 *   `ss state time-wait`): once shortly after the close to confirm it, then
 *   again when its timer is due, to see it gone. Exact-tuple lookups where
 *   the kernel answers them for time-wait sockets (6.x recent); where it does
 *   not (6.1 answers ENOENT), one dump of the namespace's time-wait sockets a
 *   second answers for all. Bounded in rate (TW_MAX_NEW_PER_SECOND).
 */
#ifndef SYNFIN_TIMEWAIT_H
#define SYNFIN_TIMEWAIT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "synfin.h"
#include "tracker.h"

enum tw_end {
	TW_END_EXPIRED = 1, /* gone when its timer said: the full 2MSL */
	TW_END_EARLY,       /* gone before its timer: reused, reset, tcp_tw_reuse */
	TW_END_UNSEEN,      /* never found: gone before the first look, or not observable */
	TW_END_NETNS_GONE,  /* its namespace went away, and the kernel purged it with it */
};

enum tw_mode {
	TW_VIA_SOCK_DIAG,
	TW_VIA_TIMERS,
};

/* What tw_add() did with a connection that closed into the time-wait machinery. */
enum tw_fate {
	TW_FOLLOWED,  /* followed to its end */
	TW_SKIPPED,   /* the kernel made no mini-socket (net.ipv4.tcp_max_tw_buckets reached) */
	TW_UNTRACKED, /* not followed: our table was full (or, with sock_diag, over the rate) */
};

struct tw_entry {
	uint64_t key;        /* hash of the namespace and tuple */
	uint64_t tw;         /* TW_VIA_TIMERS: the mini-socket's address */
	uint64_t cancel_ns;  /* TW_VIA_TIMERS: its timer was cancelled then (0: not) */
	uint64_t entered_ns; /* the CLOSE transition, bpf_ktime_get_ns() clock; or the FIN below */
	uint64_t fin_ns;     /* TW_VIA_TIMERS: the peer's FIN reached its FIN_WAIT2 substate (0: not) */
	uint64_t armed_ns;   /* TW_VIA_TIMERS: its timer was first armed (0: its close came first) */
	uint64_t next_check_ns;
	uint64_t due_ns;     /* when the kernel's timer should fire; 0 until seen */
	uint8_t saddr[16], daddr[16];
	uint32_t netns, pid;
	uint16_t sport, dport;
	uint8_t family;
	uint8_t substate; /* last seen: SF_TCP_TIME_WAIT or SF_TCP_FIN_WAIT2; 0 = never seen */
	uint8_t in_use;
	uint8_t lookup_errors;
	uint8_t attached; /* TW_VIA_TIMERS: its connection's CLOSE came (else only armed) */
	uint8_t owner_unknown; /* its connection's: why pid is 0 (enum conn_owner_unknown) */
	uint8_t armed_as; /* TW_VIA_TIMERS: its substate when first armed */
	uint32_t held;    /* TW_VIA_TIMERS: 1 + its lifecycle's index among those held; 0 none */
	uint32_t dump_gen; /* the last dump of its namespace that listed it */
	char comm[SYNFIN_COMM_LEN];
};

/* What one sock_diag answer said about one socket. */
struct tw_lookup {
	int found;           /* 1 found, 0 no such socket, -1 error */
	uint8_t state;       /* idiag_state: a time-wait socket reports its substate */
	uint32_t expires_ms; /* idiag_expires: time left on its timer */
};

typedef void (*tw_end_fn)(void *ctx, const struct tw_entry *e, enum tw_end how, uint64_t now_ns);
typedef void (*tw_conn_fn)(void *ctx, const struct conn *c);

struct tw_table;

struct tw_table *tw_new(uint32_t cap, enum tw_mode mode);
void tw_free(struct tw_table *t);
/* Starts following a connection that just closed into the time-wait machinery; fn
 * hears of a previous TIME_WAIT of the same tuple that this one shows has ended. */
enum tw_fate tw_add(struct tw_table *t, const struct conn *c, tw_end_fn fn, void *ctx);
/*
 * TW_VIA_TIMERS with SF_TW_FIN_IN records: keeps the lifecycle of a connection
 * tw_add() just followed into a FIN_WAIT2 mini-socket until the peer's FIN
 * reaches it (the lifecycle then ends in TIME_WAIT, entered at that FIN) or
 * until until_ns (it goes as it is). fn gets it back, from tw_timer_event(),
 * tw_poll() or tw_release_held(), always before that mini-socket's end. false:
 * not held (no such entry, or out of memory): the caller emits it at once.
 */
bool tw_hold_conn(struct tw_table *t, const struct conn *c, uint64_t until_ns, tw_conn_fn fn,
		  void *ctx);
/* An RST the time-wait mini-socket of a followed connection sent (data after our close):
 * a lifecycle still held goes out now as a reset, with the kernel's reason. */
void tw_note_reset(struct tw_table *t, const struct synfin_event *e);
/*
 * TW_VIA_TIMERS: mini-sockets armed whose connection's CLOSE has not come. A
 * CLOSE comes microseconds after its arm: one missing for longer is one
 * the kernel did not trace (tracker_infer_closes()).
 */
bool tw_unclaimed(const struct tw_table *t);
/* TW_VIA_TIMERS: c's mini-socket, armed after c's last transition and at least
 * TW_CLAIM_WAIT_NS before now_ns, with no CLOSE of c: true, and how it was armed. */
bool tw_arm_of(struct tw_table *t, const struct conn *c, uint64_t now_ns,
	       struct mini_socket_arm *out);
#define TW_CLAIM_WAIT_NS 1000000000ull
/* Every lifecycle still held, to its fn now (at exit). */
void tw_release_held(struct tw_table *t);
/* TW_VIA_TIMERS: one SF_EV_TW record; calls fn for a TIME_WAIT that ended. */
void tw_timer_event(struct tw_table *t, const struct synfin_event *ev, tw_end_fn fn, void *ctx);
/* Looks up what is due; calls fn for each connection whose TIME_WAIT ended. */
void tw_poll(struct tw_table *t, uint64_t now_ns, tw_end_fn fn, void *ctx);
/* errno of a failure that must end tracing (0 if none): setns() could not bring
 * us back to our own network namespace. */
int tw_fatal(const struct tw_table *t);
/* Connections seen in the time-wait table and not yet gone. */
uint32_t tw_held(const struct tw_table *t);
/* New connections followed per second at most: a storm of closes must not become a
 * storm of sock_diag lookups. */
#define TW_MAX_NEW_PER_SECOND 1000

/* Connections not followed: the table was full, or over the rate above. */
uint64_t tw_untracked(const struct tw_table *t);
/* TW_VIA_TIMERS: connections the kernel made no mini-socket for. */
uint64_t tw_skipped(const struct tw_table *t);
enum tw_mode tw_mode_of(const struct tw_table *t);

/* One socket of a sock_diag answer. Addresses in network order. */
struct tw_socket {
	uint8_t family, state;
	uint16_t sport, dport; /* host order */
	uint8_t saddr[16], daddr[16];
	uint32_t expires_ms;
};

/*
 * recv() of the next datagram answering request seq: replies to an earlier
 * request (the rest of a dump given up half-way) are read and dropped, so they
 * are never taken for this one's. Returns recv()'s result.
 */
ssize_t tw_recv_reply(int fd, uint32_t seq, void *buf, size_t size);
/* Parses one sock_diag reply to an exact lookup (untrusted bytes from the
 * kernel). Returns 0 and fills *out, or -1 if the bytes are not well formed. */
int tw_parse_reply(const void *buf, size_t len, struct tw_lookup *out);
/* Parses one datagram of a sock_diag dump: calls fn per socket. Returns 1 at
 * the end of the dump, 0 when more datagrams follow, -1 on malformed bytes
 * or an error reply. */
int tw_parse_dump(const void *buf, size_t len, void (*fn)(void *ctx, const struct tw_socket *s),
		  void *ctx);

#endif
