/*
 * The lifecycle tracker: follows each TCP socket (keyed by its kernel
 * address) from its first state to CLOSE and then hands back one lifecycle
 * record. Pure C, no libbpf: unit-tested on its own with synthetic events.
 *
 * Memory is bounded: at most `cap` sockets are tracked; when a new one
 * arrives with the table full, the oldest is evicted and counted.
 */
#ifndef SYNFIN_TRACKER_H
#define SYNFIN_TRACKER_H
#include <stdbool.h>
#include <stdint.h>
#include "synfin.h"
#include "holders.h"

/* The most states one lifecycle can list; TCP needs at most 7, so this is slack. */
#define TRACKER_MAX_STATES 12
/* A duration we did not see the start of. */
#define TRACKER_UNKNOWN_US UINT32_MAX

enum conn_role {
	ROLE_UNKNOWN = 0, /* appeared mid-life: cannot tell */
	ROLE_CLIENT,      /* connect(): starts in SYN_SENT */
	ROLE_SERVER,      /* accepted child: starts in SYN_RECV */
	ROLE_LISTENER,    /* listen(): never yields a lifecycle record */
};

enum conn_flag {
	CONN_HANDSHAKE_SEEN = 1 << 0, /* ISNs, srtt and handshake retransmits are valid */
	CONN_CLOSED = 1 << 1,         /* the close fields are valid */
	CONN_STUCK_REPORTED = 1 << 2, /* --stuck already reported the current state */
	CONN_LISTENER_INDEXED = 1 << 3, /* in the (netns, port) index of listeners */
	/* closed into TIME_WAIT, but the kernel made no mini-socket (its table full) */
	CONN_TW_SKIPPED = 1 << 4,
	CONN_RESET_SENT = 1 << 5, /* we sent an RST for it (tcp:tcp_send_reset): rst_ns, rst_reason */
	CONN_ACCEPTED = 1 << 6,   /* a process accept()ed it (SF_EV_OWNER): its holder is its own */
	/* its CLOSE never came: ended from its time-wait mini-socket (tracker_infer_closes()) */
	CONN_CLOSE_INFERRED = 1 << 7,
};

/* Why a connection names no holder (pid 0); never a guess. */
enum conn_owner_unknown {
	OWNER_KNOWN = 0,
	OWNER_NOT_SEEN,         /* no event told, and no process held it when synfin looked */
	OWNER_LISTENER_NOT_SEEN, /* an accepted child whose listener's holder synfin never saw */
	OWNER_HOLDER_EXITED,    /* its holder exited and no other process holds it */
	OWNER_UNKNOWN_COUNT,
};

/* One tracked socket; also the lifecycle record handed out at CLOSE. */
struct conn {
	uint64_t key;      /* skaddr */
	uint64_t first_ns; /* first transition seen */
	uint64_t state_ns; /* when the current state was entered */
	uint64_t cgroup_id;
	uint64_t bytes_acked, bytes_received; /* at CLOSE */
	uint64_t rst_ns;     /* the RST sent or (joined from its sender) received; 0 none */
	uint64_t accept_ns;  /* an accepted child: when a process accept()ed it (SF_EV_OWNER); 0 not */
	uint16_t rst_reason; /* 1 + the kernel's enum sk_rst_reason value; 0 not known */
	uint8_t saddr[16];
	uint8_t daddr[16];
	/*
	 * The holder: the process that holds the socket, as `ss -p` names it. From
	 * connect()/listen()/close() (the current task), accept() (SF_EV_OWNER),
	 * for a child not yet accepted its listener's holder, and where no event
	 * tells (before synfin started, a holder's exit) a scan of /proc. 0 = none:
	 * owner_unknown says why.
	 */
	uint32_t pid;
	uint32_t netns;
	uint32_t local_isn, remote_isn, srtt_us; /* at ESTABLISHED */
	uint16_t sport, dport;
	uint8_t family, role, partial, nstates;
	uint8_t flags;         /* enum conn_flag */
	uint8_t hs_retrans;    /* retransmissions at ESTABLISHED (or at CLOSE if never established) */
	uint8_t sk_err;        /* at CLOSE */
	uint8_t close_flags;   /* at CLOSE: SF_CLOSE_* */
	uint8_t owner_unknown; /* enum conn_owner_unknown: why pid is 0 */
	char comm[SYNFIN_COMM_LEN];
	uint8_t states[TRACKER_MAX_STATES];
	uint32_t state_us[TRACKER_MAX_STATES]; /* time spent in states[i] */
};

/* Who sent the first FIN. */
enum conn_closer {
	CLOSER_NONE = 0, /* never closed normally */
	CLOSER_LOCAL,    /* FIN_WAIT1 path */
	CLOSER_REMOTE,   /* CLOSE_WAIT path */
	CLOSER_BOTH,     /* simultaneous: CLOSING */
	CLOSER_COUNT,
};

enum conn_outcome {
	OUTCOME_UNKNOWN = 0,
	OUTCOME_CLOSED,  /* four-way teardown */
	OUTCOME_RESET,   /* RST sent or received */
	OUTCOME_REFUSED, /* RST in answer to our SYN */
	OUTCOME_TIMEOUT, /* SYN or FIN retransmissions ran out */
	OUTCOME_ABORTED, /* anything else */
	OUTCOME_COUNT,
};

/* What the tracker learnt from one transition, for the per-event output. */
struct transition {
	int64_t delta_us;  /* time spent in the old state; -1 when not known */
	uint32_t pid;      /* the socket's holder at this transition; 0 = none */
	const char *comm;  /* its comm ("" when none) */
	uint8_t owner_unknown; /* enum conn_owner_unknown: why pid is 0 */
	const struct conn *ended; /* non-NULL when this transition finished a lifecycle */
};

struct tracker;

struct tracker *tracker_new(uint32_t cap);
void tracker_free(struct tracker *t);
/* Feeds one state event. out->ended stays valid until the next call. */
void tracker_feed(struct tracker *t, const struct synfin_event *e, struct transition *out);
uint32_t tracker_count(const struct tracker *t);
/* Tracked sockets per current state (out: SF_TCP_MAX_STATES entries). */
void tracker_state_counts(const struct tracker *t, uint32_t *out);
uint64_t tracker_evicted(const struct tracker *t);
/* Followed sockets whose memory a new socket took before their CLOSE was traced: dropped. */
uint64_t tracker_ends_unseen(const struct tracker *t);

/* A connection's time-wait mini-socket, as armed when the kernel handed the connection over. */
struct mini_socket_arm {
	uint64_t ts_ns;
	uint8_t substate; /* SF_TCP_FIN_WAIT2 or SF_TCP_TIME_WAIT */
};

/* The mini-socket armed for c's tuple after c's last transition, with no CLOSE of c: true. */
typedef bool (*tracker_armed_fn)(void *ctx, const struct conn *c, struct mini_socket_arm *out);
/* A lifecycle ended from its mini-socket, and how many of its transitions were not seen. */
typedef void (*tracker_inferred_fn)(void *ctx, const struct conn *c, uint32_t unseen);

/*
 * Ends the connections that the kernel handed to a time-wait mini-socket
 * without synfin seeing their CLOSE (the kernel ran no program there, or the
 * record was lost): each one in FIN_WAIT1, FIN_WAIT2 or CLOSING for which
 * armed() finds a mini-socket goes to ended() as if its CLOSE had come at
 * the arm, flagged CONN_CLOSE_INFERRED, and is no longer tracked. What the
 * mini-socket proves is filled in (a FIN_WAIT2 mini-socket comes only from
 * FIN_WAIT2); what it does not (the time of a state entered unseen, the
 * byte counts) stays unknown. Returns how many ended.
 */
uint32_t tracker_infer_closes(struct tracker *t, tracker_armed_fn armed, tracker_inferred_fn ended,
			      void *ctx);

/* Derived facts of a finished lifecycle; -1 when not measurable. */
int64_t conn_handshake_us(const struct conn *c);
int64_t conn_duration_us(const struct conn *c);
/* An accepted child: from its handshake's end (in the accept queue) to accept(). */
int64_t conn_accept_wait_us(const struct conn *c);
enum conn_closer conn_closer(const struct conn *c);
enum conn_outcome conn_outcome(const struct conn *c);
/* For OUTCOME_RESET: true when the RST came from the peer. */
bool conn_reset_by_remote(const struct conn *c);
bool conn_rst_from_peer(const struct conn *c);
/* Payload bytes sent and acknowledged / received in order; -1 when not known. */
int64_t conn_tx_bytes(const struct conn *c);
int64_t conn_rx_bytes(const struct conn *c);
/* The state the connection was in just before CLOSE (TIME_WAIT excluded). */
uint8_t conn_last_state(const struct conn *c);
/* The kernel made no time-wait socket for this close (its table full): no TIME_WAIT state. */
void conn_mark_tw_skipped(struct conn *c);
/* An RST the kernel sent (SF_EV_RST) for a tracked socket: noted on it; false if not tracked. */
bool tracker_note_reset(struct tracker *t, const struct synfin_event *e);
/* The same on a connection no longer tracked (its time-wait mini-socket sent it). */
void conn_note_reset_sent(struct conn *c, const struct synfin_event *e);
/* The peer's FIN reached the FIN_WAIT2 mini-socket the connection was handed to
 * at ts_ns: FIN_WAIT2 lasted until then, and TIME_WAIT began. */
void conn_enter_time_wait(struct conn *c, uint64_t ts_ns);

/* Where to look up holders no event names (sockets from before the start, a
 * holder's exit): a scan the caller owns and refreshes; NULL: none. */
void tracker_use_holders(struct tracker *t, const struct holders *h);
/* The listener synfin saw listen() on this port in this namespace, or NULL. */
const struct conn *tracker_find_listener(const struct tracker *t, uint32_t netns, uint16_t port);
/* A process accepted a tracked socket (SF_EV_OWNER): it holds it now. False if not tracked. */
bool tracker_note_accept(struct tracker *t, const struct synfin_event *e);
/* True when pid may hold a tracked socket: worth a fresh scan when it exits. */
bool tracker_may_hold(const struct tracker *t, uint32_t pid);
/*
 * e->pid closed its copy of a tracked socket another process holds too
 * (SF_OWNER_RELEASED). If it was the socket's holder, rescan(ctx, 0) refreshes
 * the holders and the socket (a listener: its queued children too) takes the
 * one found other than e->pid; none found (the scan was skipped): it stays
 * named. True if the holder changed.
 */
bool tracker_note_released(struct tracker *t, const struct synfin_event *e,
			   void (*rescan)(void *ctx, uint32_t pid), void *ctx);
/* pid exited. If it held tracked sockets, rescan(ctx, pid) refreshes the holders
 * (tracker_use_holders) and then each goes to its holder there, a child not yet
 * accepted to its listener's, or to nobody (OWNER_HOLDER_EXITED). Returns how
 * many sockets it held. */
uint32_t tracker_holder_exited(struct tracker *t, uint32_t pid,
			       void (*rescan)(void *ctx, uint32_t pid), void *ctx);
/* The name of why no holder is named ("not_seen", ...), NULL for OWNER_KNOWN. */
const char *owner_unknown_name(uint8_t why);

/* Calls fn for each tracked connection sitting in one of the `watched`
 * states (bit per state) for longer than min_ns, once per state entered. */
void tracker_find_stuck(struct tracker *t, uint64_t now_ns, uint64_t min_ns, uint32_t watched,
			void (*fn)(void *ctx, const struct conn *c, uint64_t now_ns), void *ctx);

#endif
