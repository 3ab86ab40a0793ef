#include "tracker.h"
#include "index.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
#define HOLDER_BITS 4096

/* A pool slot: a connection and its place in the age list (oldest is evicted first;
 * free slots are chained through `newer`). The connection comes first: the
 * indexes' key functions read a slot as its connection. */
struct slot {
	struct conn c;
	uint32_t older, newer;
};

/* Two indexes into one pool: by socket address, and listeners by (netns, port). */
struct tracker {
	uint32_t cap, count;
	uint32_t oldest, newest, free_head;
	uint64_t evicted;
	uint64_t ends_unseen; /* followed sockets reused before their CLOSE was seen */
	struct index by_sk, by_listener;
	struct slot *pool;
	struct conn ended; /* the last finished lifecycle, handed out by tracker_feed */
	const struct holders *holders; /* the last /proc scan (tracker_use_holders) */
	/* Bit pid % HOLDER_BITS set once pid held a socket: an exit of any other skips the pool. */
	uint64_t holder_bits[HOLDER_BITS / 64];
};

/* Listeners are few; past this many, later ones lend no owner to their children. */
#define LISTENER_SLOTS 4096

static uint64_t sk_key(const void *entry)
{
	return ((const struct conn *)entry)->key;
}

static uint64_t listener_key(const void *entry)
{
	const struct conn *c = entry;

	return ((uint64_t)c->netns << 16) | c->sport;
}

struct tracker *tracker_new(uint32_t cap)
{
	struct tracker *t = calloc(1, sizeof(*t));

	if (!t || !cap)
		goto fail;
	t->cap = cap;
	t->oldest = t->newest = NIL;
	t->pool = calloc(cap, sizeof(*t->pool));
	if (!t->pool || index_init(&t->by_sk, 2 * cap, t->pool, sizeof(*t->pool), sk_key) ||
	    index_init(&t->by_listener, LISTENER_SLOTS, t->pool, sizeof(*t->pool), listener_key))
		goto fail;
	for (uint32_t i = 0; i < cap; i++)
		t->pool[i].newer = i + 1 < cap ? i + 1 : NIL;
	t->free_head = 0;
	return t;
fail:
	tracker_free(t);
	return NULL;
}

void tracker_free(struct tracker *t)
{
	if (!t)
		return;
	index_free(&t->by_sk);
	index_free(&t->by_listener);
	free(t->pool);
	free(t);
}

uint32_t tracker_count(const struct tracker *t)
{
	return t->count;
}

uint64_t tracker_evicted(const struct tracker *t)
{
	return t->evicted;
}

uint64_t tracker_ends_unseen(const struct tracker *t)
{
	return t->ends_unseen;
}

static uint32_t index_of(const struct tracker *t, const struct conn *c)
{
	return (uint32_t)((const struct slot *)c - t->pool);
}

static void unlink_age(struct tracker *t, uint32_t idx)
{
	struct slot *s = &t->pool[idx];

	if (s->older != NIL)
		t->pool[s->older].newer = s->newer;
	else
		t->oldest = s->newer;
	if (s->newer != NIL)
		t->pool[s->newer].older = s->older;
	else
		t->newest = s->older;
}

static void remove_conn(struct tracker *t, uint32_t idx)
{
	struct slot *s = &t->pool[idx];

	unlink_age(t, idx);
	index_clear(&t->by_sk, index_slot_of(&t->by_sk, idx));
	if (s->c.flags & CONN_LISTENER_INDEXED)
		index_clear(&t->by_listener, index_slot_of(&t->by_listener, idx));
	s->newer = t->free_head;
	t->free_head = idx;
	t->count--;
}

static void evict_oldest(struct tracker *t)
{
	remove_conn(t, t->oldest);
	t->evicted++;
}

static struct conn *insert_conn(struct tracker *t, uint64_t key)
{
	uint32_t idx, slot;
	struct slot *s;

	if (t->count == t->cap)
		evict_oldest(t);
	idx = t->free_head;
	s = &t->pool[idx];
	t->free_head = s->newer;
	memset(s, 0, sizeof(*s));
	s->c.key = key;
	s->older = t->newest;
	s->newer = NIL;
	if (t->newest != NIL)
		t->pool[t->newest].newer = idx;
	else
		t->oldest = idx;
	t->newest = idx;
	slot = index_find(&t->by_sk, key);
	index_add(&t->by_sk, slot, idx);
	t->count++;
	return &s->c;
}

static void push_state(struct conn *c, uint8_t state)
{
	/* Past the (unreachable in TCP) limit, keep the newest state in the last cell. */
	if (c->nstates == TRACKER_MAX_STATES)
		c->nstates--;
	c->states[c->nstates] = state;
	c->state_us[c->nstates] = TRACKER_UNKNOWN_US;
	c->nstates++;
}

static uint8_t role_from_start(uint8_t oldstate, uint8_t newstate)
{
	/* A listener seen only closing (it started before us): children never go LISTEN -> CLOSE. */
	if (newstate == SF_TCP_LISTEN || (oldstate == SF_TCP_LISTEN && newstate == SF_TCP_CLOSE))
		return ROLE_LISTENER;
	if (newstate == SF_TCP_SYN_SENT || oldstate == SF_TCP_SYN_SENT)
		return ROLE_CLIENT;
	if (newstate == SF_TCP_SYN_RECV || oldstate == SF_TCP_SYN_RECV)
		return ROLE_SERVER;
	return ROLE_UNKNOWN;
}

/* An accepted child is a clone of its listener: its first change reads LISTEN -> SYN_RECV. */
static bool is_fresh_start(uint8_t oldstate, uint8_t newstate)
{
	return oldstate == SF_TCP_CLOSE || (oldstate == SF_TCP_LISTEN && newstate == SF_TCP_SYN_RECV);
}

/* First sight of a socket: a fresh start from CLOSE, or one already alive (partial). */
static struct conn *start_conn(struct tracker *t, const struct synfin_event *e)
{
	struct conn *c = insert_conn(t, e->skaddr);

	c->first_ns = c->state_ns = e->ts_ns;
	c->cgroup_id = e->cgroup_id;
	memcpy(c->saddr, e->saddr, sizeof(c->saddr));
	memcpy(c->daddr, e->daddr, sizeof(c->daddr));
	c->netns = e->netns;
	c->sport = e->sport;
	c->dport = e->dport;
	c->family = e->family;
	c->role = role_from_start(e->oldstate, e->newstate);
	c->partial = !is_fresh_start(e->oldstate, e->newstate);
	if (c->partial)
		push_state(c, e->oldstate);
	return c;
}

/*
 * connect() enters SYN_SENT before it picks the local port, and before 6.x
 * an accepted child enters SYN_RECV before its peer's address is set: learn
 * whatever was missing from a later transition.
 */
static void complete_tuple(struct conn *c, const struct synfin_event *e)
{
	if ((c->sport && c->dport) || !e->sport || !e->dport)
		return;
	memcpy(c->saddr, e->saddr, sizeof(c->saddr));
	memcpy(c->daddr, e->daddr, sizeof(c->daddr));
	c->sport = e->sport;
	c->dport = e->dport;
}

static void set_holder(struct tracker *t, struct conn *c, uint32_t pid, const char *comm)
{
	c->pid = pid;
	memcpy(c->comm, comm, sizeof(c->comm));
	c->owner_unknown = OWNER_KNOWN;
	t->holder_bits[(pid % HOLDER_BITS) / 64] |= 1ull << (pid % 64);
}

static void set_no_holder(struct conn *c, uint8_t why)
{
	c->pid = 0;
	c->comm[0] = 0;
	c->owner_unknown = why;
}

/* Events carry the current task where a system call made the transition: it holds the socket. */
static void take_owner(struct tracker *t, struct conn *c, const struct synfin_event *e)
{
	if (e->pid)
		set_holder(t, c, e->pid, e->comm);
}

/* A child not yet accepted is held by nobody: it is named after its listener's holder. */
static void inherit_listener_owner(struct tracker *t, struct conn *c, uint32_t skip_pid)
{
	int64_t at = index_at(&t->by_listener, index_find(&t->by_listener, listener_key(c)));
	const struct held_socket *h;

	if (at >= 0 && t->pool[at].c.pid && t->pool[at].c.pid != skip_pid) {
		set_holder(t, c, t->pool[at].c.pid, t->pool[at].c.comm);
		return;
	}
	h = t->holders ? holders_find_listener(t->holders, c->netns, c->sport, skip_pid) : NULL;
	if (h)
		set_holder(t, c, h->pid, h->comm);
	else
		set_no_holder(c, at >= 0 ? OWNER_HOLDER_EXITED : OWNER_LISTENER_NOT_SEEN);
}

/* The scan's holder of c, other than skip_pid; NULL if none. */
static const struct held_socket *scanned_holder(const struct tracker *t, const struct conn *c,
						uint32_t skip_pid)
{
	if (!t->holders)
		return NULL;
	if (c->role == ROLE_LISTENER)
		return holders_find_listener(t->holders, c->netns, c->sport, skip_pid);
	return holders_find_conn(t->holders, c->netns, c->family, c->saddr, c->sport, c->daddr,
				 c->dport, skip_pid);
}

/* A socket no event named the holder of: the last scan's holder, if any. */
static void look_up_holder(struct tracker *t, struct conn *c, uint32_t skip_pid, uint8_t why)
{
	const struct held_socket *h = scanned_holder(t, c, skip_pid);

	if (h)
		set_holder(t, c, h->pid, h->comm);
	else
		set_no_holder(c, why);
}

static bool awaits_accept(const struct conn *c)
{
	return c->role == ROLE_SERVER && !c->partial && !(c->flags & CONN_ACCEPTED);
}

/* The holder of a socket seen for the first time, where its event does not name one. */
static void name_new_holder(struct tracker *t, struct conn *c)
{
	if (awaits_accept(c))
		inherit_listener_owner(t, c, 0);
	else
		look_up_holder(t, c, 0, OWNER_NOT_SEEN);
}

const struct conn *tracker_find_listener(const struct tracker *t, uint32_t netns, uint16_t port)
{
	struct conn key = { .netns = netns, .sport = port };
	int64_t at = index_at(&t->by_listener, index_find(&t->by_listener, listener_key(&key)));

	return at >= 0 ? &t->pool[at].c : NULL;
}

void tracker_use_holders(struct tracker *t, const struct holders *h)
{
	t->holders = h;
}

static struct conn *find_conn(struct tracker *t, uint64_t skaddr)
{
	int64_t at = index_at(&t->by_sk, index_find(&t->by_sk, skaddr));

	return at >= 0 ? &t->pool[at].c : NULL;
}

bool tracker_note_accept(struct tracker *t, const struct synfin_event *e)
{
	struct conn *c = find_conn(t, e->skaddr);

	if (!c)
		return false;
	if (!(c->flags & CONN_ACCEPTED))
		c->accept_ns = e->ts_ns;
	c->flags |= CONN_ACCEPTED;
	set_holder(t, c, e->pid, e->comm);
	return true;
}

bool tracker_may_hold(const struct tracker *t, uint32_t pid)
{
	return t->holder_bits[(pid % HOLDER_BITS) / 64] & (1ull << (pid % 64));
}

/* Calls fn on each tracked connection pid holds, children awaiting accept() last or only. */
static uint32_t each_held(struct tracker *t, uint32_t pid, int children,
			  void (*fn)(struct tracker *t, struct conn *c, uint32_t pid))
{
	uint32_t n = 0;

	for (uint32_t i = t->oldest; i != NIL; i = t->pool[i].newer) {
		struct conn *c = &t->pool[i].c;

		if (c->pid != pid || (children >= 0 && awaits_accept(c) != children))
			continue;
		n++;
		if (fn)
			fn(t, c, pid);
	}
	return n;
}

/* Past its close() (or shutdown()): the process that closed it stays named unless another holds it. */
static bool closed_by_holder(const struct conn *c)
{
	uint8_t now = c->nstates ? c->states[c->nstates - 1] : 0;

	return now == SF_TCP_FIN_WAIT1 || now == SF_TCP_FIN_WAIT2 || now == SF_TCP_CLOSING ||
	       now == SF_TCP_LAST_ACK;
}

static void rehold(struct tracker *t, struct conn *c, uint32_t pid)
{
	char closer[SYNFIN_COMM_LEN];

	memcpy(closer, c->comm, sizeof(closer));
	look_up_holder(t, c, pid, OWNER_HOLDER_EXITED);
	if (!c->pid && closed_by_holder(c))
		set_holder(t, c, pid, closer);
}

static void rehold_child(struct tracker *t, struct conn *c, uint32_t pid)
{
	inherit_listener_owner(t, c, pid);
}

bool tracker_note_released(struct tracker *t, const struct synfin_event *e,
			   void (*rescan)(void *ctx, uint32_t pid), void *ctx)
{
	struct conn *c = find_conn(t, e->skaddr);
	const struct held_socket *h;

	if (!c || !e->pid || c->pid != e->pid)
		return false;
	rescan(ctx, 0); /* after the close: its descriptor is gone from the scan already */
	h = scanned_holder(t, c, e->pid);
	if (!h) /* the scan skipped (too many), or raced the close: it stays named */
		return false;
	set_holder(t, c, h->pid, h->comm);
	if (c->role == ROLE_LISTENER) /* its children in the queue take its new holder */
		each_held(t, e->pid, 1, rehold_child);
	return true;
}

uint32_t tracker_holder_exited(struct tracker *t, uint32_t pid,
			       void (*rescan)(void *ctx, uint32_t pid), void *ctx)
{
	uint32_t held;

	if (!pid || !tracker_may_hold(t, pid))
		return 0;
	held = each_held(t, pid, -1, NULL);
	if (!held) {
		t->holder_bits[(pid % HOLDER_BITS) / 64] &= ~(1ull << (pid % 64));
		return 0;
	}
	rescan(ctx, pid);
	/* Listeners (and the rest) first: a child then takes its listener's new holder. */
	each_held(t, pid, 0, rehold);
	each_held(t, pid, 1, rehold_child);
	return held;
}

const char *owner_unknown_name(uint8_t why)
{
	static const char *const names[OWNER_UNKNOWN_COUNT] = {
		[OWNER_NOT_SEEN] = "not_seen",
		[OWNER_LISTENER_NOT_SEEN] = "listener_not_seen",
		[OWNER_HOLDER_EXITED] = "holder_exited",
	};

	return why < OWNER_UNKNOWN_COUNT ? names[why] : NULL;
}

static void index_listener(struct tracker *t, struct conn *c)
{
	uint32_t slot = index_find(&t->by_listener, listener_key(c));

	/* Keep the index at most half full; a SO_REUSEPORT twin keeps the first entry. */
	if ((c->flags & CONN_LISTENER_INDEXED) || index_at(&t->by_listener, slot) >= 0 ||
	    !index_has_room(&t->by_listener))
		return;
	index_add(&t->by_listener, slot, index_of(t, c));
	c->flags |= CONN_LISTENER_INDEXED;
}

static uint8_t clamp_u8(uint32_t v)
{
	return v > 255 ? 255 : (uint8_t)v;
}

/* The extra fields that ESTABLISHED and CLOSE events carry. */
static void take_event_facts(struct conn *c, const struct synfin_event *e)
{
	if (e->newstate == SF_TCP_ESTABLISHED && !(c->flags & CONN_HANDSHAKE_SEEN)) {
		c->flags |= CONN_HANDSHAKE_SEEN;
		c->local_isn = e->local_isn;
		c->remote_isn = e->remote_isn;
		c->srtt_us = e->srtt_us;
		c->hs_retrans = e->retrans;
	}
	if (e->newstate != SF_TCP_CLOSE)
		return;
	c->flags |= CONN_CLOSED;
	c->sk_err = e->sk_err;
	c->close_flags = e->close_flags;
	c->bytes_acked = e->bytes_acked;
	c->bytes_received = e->bytes_received;
	if (!(c->flags & CONN_HANDSHAKE_SEEN))
		c->hs_retrans = clamp_u8(e->retrans);
}

/* Microseconds from from_ns to to_ns, capped below TRACKER_UNKNOWN_US. */
static uint32_t elapsed_us(uint64_t from_ns, uint64_t to_ns)
{
	uint64_t us = to_ns > from_ns ? (to_ns - from_ns) / 1000 : 0;

	return us < TRACKER_UNKNOWN_US - 1 ? (uint32_t)us : TRACKER_UNKNOWN_US - 1;
}

void tracker_feed(struct tracker *t, const struct synfin_event *e, struct transition *out)
{
	int64_t at = index_at(&t->by_sk, index_find(&t->by_sk, e->skaddr));
	struct conn *c;

	out->delta_us = -1;
	out->ended = NULL;
	if (at >= 0 && is_fresh_start(e->oldstate, e->newstate)) {
		/*
		 * A socket born where one we follow still lives: that one's CLOSE was
		 * never traced (the kernel does not always run a program, and does
		 * not always count it), and its memory went to this one. Its
		 * transitions must not become this one's: its end is counted unseen.
		 */
		remove_conn(t, (uint32_t)at);
		t->ends_unseen++;
		at = -1;
	}
	if (at >= 0) {
		c = &t->pool[at].c;
		out->delta_us = (int64_t)((e->ts_ns - c->state_ns) / 1000);
		if (c->nstates)
			c->state_us[c->nstates - 1] = elapsed_us(c->state_ns, e->ts_ns);
		complete_tuple(c, e);
	} else {
		c = start_conn(t, e);
		if (!e->pid)
			name_new_holder(t, c);
	}
	take_owner(t, c, e);
	if (e->newstate == SF_TCP_LISTEN && c->pid)
		index_listener(t, c);
	out->pid = c->pid;
	out->comm = c->comm;
	out->owner_unknown = c->owner_unknown;
	c->state_ns = e->ts_ns;
	c->flags &= (uint8_t)~CONN_STUCK_REPORTED;
	take_event_facts(c, e);
	if (e->newstate != SF_TCP_CLOSE) {
		push_state(c, e->newstate);
		return;
	}
	/* No tracepoint fires for the time-wait mini-socket: the close flags stand for it. */
	if (e->close_flags & SF_CLOSE_TIME_WAIT)
		push_state(c, SF_TCP_TIME_WAIT);
	t->ended = *c;
	remove_conn(t, index_of(t, c));
	out->comm = t->ended.comm;
	if (t->ended.role != ROLE_LISTENER)
		out->ended = &t->ended;
}

/* States the kernel leaves for a time-wait mini-socket: FIN_WAIT1 only through one of the others. */
static bool hands_over(uint8_t last, uint8_t substate)
{
	return last == SF_TCP_FIN_WAIT1 || last == SF_TCP_FIN_WAIT2 ||
	       (last == SF_TCP_CLOSING && substate == SF_TCP_TIME_WAIT);
}

/*
 * c ends as its CLOSE would have ended it, at the arm of its mini-socket;
 * returns the transitions not seen. From FIN_WAIT2 (to either substate) or
 * CLOSING (to TIME_WAIT) the kernel arms the mini-socket at the very moment
 * it leaves the state; from FIN_WAIT1 it went through FIN_WAIT2 or CLOSING
 * first, at a time not known.
 */
static uint32_t end_at_arm(struct conn *c, const struct mini_socket_arm *arm)
{
	bool direct = c->states[c->nstates - 1] != SF_TCP_FIN_WAIT1;

	if (direct)
		c->state_us[c->nstates - 1] = elapsed_us(c->state_ns, arm->ts_ns);
	else if (arm->substate == SF_TCP_FIN_WAIT2)
		push_state(c, SF_TCP_FIN_WAIT2);
	c->flags |= CONN_CLOSED | CONN_CLOSE_INFERRED;
	c->sk_err = 0;
	c->close_flags = SF_CLOSE_TW_MADE;
	c->close_flags |= arm->substate == SF_TCP_TIME_WAIT ? SF_CLOSE_TIME_WAIT : SF_CLOSE_TW_FIN_WAIT2;
	if (arm->substate == SF_TCP_TIME_WAIT)
		push_state(c, SF_TCP_TIME_WAIT);
	c->state_ns = arm->ts_ns;
	return direct ? 1 : 2;
}

uint32_t tracker_infer_closes(struct tracker *t, tracker_armed_fn armed, tracker_inferred_fn ended,
			      void *ctx)
{
	uint32_t n = 0;

	for (uint32_t i = t->oldest, next; i != NIL; i = next) {
		struct conn *c = &t->pool[i].c;
		struct mini_socket_arm arm;
		uint32_t unseen;

		next = t->pool[i].newer;
		if (!c->nstates || c->role == ROLE_LISTENER ||
		    !hands_over(c->states[c->nstates - 1], SF_TCP_TIME_WAIT) || !armed(ctx, c, &arm) ||
		    !hands_over(c->states[c->nstates - 1], arm.substate))
			continue;
		t->ended = *c;
		remove_conn(t, i);
		unseen = end_at_arm(&t->ended, &arm);
		ended(ctx, &t->ended, unseen);
		n++;
	}
	return n;
}

/*
 * A child reaches ESTABLISHED (into the accept queue) at the handshake's final
 * ACK, the moment it is born in SYN_RECV: its first transition.
 */
int64_t conn_accept_wait_us(const struct conn *c)
{
	if (c->role != ROLE_SERVER || c->partial || !c->accept_ns || c->accept_ns < c->first_ns)
		return -1;
	return (int64_t)((c->accept_ns - c->first_ns) / 1000);
}

/*
 * Client: the time spent in SYN_SENT. Server: the child's first RTT sample,
 * which the kernel takes from the SYN-ACK it sent to the ACK that completed
 * the handshake (the state changes themselves all happen at that ACK).
 */
int64_t conn_handshake_us(const struct conn *c)
{
	if (c->role == ROLE_SERVER)
		return (c->flags & CONN_HANDSHAKE_SEEN) && c->srtt_us && !c->partial ? (int64_t)c->srtt_us : -1;
	if (c->role != ROLE_CLIENT || c->nstates < 2 || c->states[0] != SF_TCP_SYN_SENT ||
	    c->states[1] != SF_TCP_ESTABLISHED || c->state_us[0] == TRACKER_UNKNOWN_US)
		return -1;
	return c->state_us[0];
}

static bool has_state(const struct conn *c, uint8_t state)
{
	for (int i = 0; i < c->nstates; i++)
		if (c->states[i] == state)
			return true;
	return false;
}

enum conn_closer conn_closer(const struct conn *c)
{
	if (has_state(c, SF_TCP_CLOSING))
		return CLOSER_BOTH;
	if (has_state(c, SF_TCP_FIN_WAIT1))
		return CLOSER_LOCAL;
	if (has_state(c, SF_TCP_CLOSE_WAIT))
		return CLOSER_REMOTE;
	return CLOSER_NONE;
}

uint8_t conn_last_state(const struct conn *c)
{
	for (int i = c->nstates - 1; i >= 0; i--)
		if (c->states[i] != SF_TCP_TIME_WAIT)
			return c->states[i];
	return 0;
}

void conn_mark_tw_skipped(struct conn *c)
{
	c->flags |= CONN_TW_SKIPPED;
	if (c->nstates && c->states[c->nstates - 1] == SF_TCP_TIME_WAIT)
		c->nstates--;
}

void conn_note_reset_sent(struct conn *c, const struct synfin_event *e)
{
	c->flags |= CONN_RESET_SENT;
	c->rst_ns = e->ts_ns;
	c->rst_reason = (uint16_t)(e->rst_reason < UINT16_MAX ? e->rst_reason + 1 : 0);
}

bool tracker_note_reset(struct tracker *t, const struct synfin_event *e)
{
	int64_t at = e->skaddr ? index_at(&t->by_sk, index_find(&t->by_sk, e->skaddr)) : -1;

	if (at < 0)
		return false;
	conn_note_reset_sent(&t->pool[at].c, e);
	return true;
}

void conn_enter_time_wait(struct conn *c, uint64_t ts_ns)
{
	uint64_t extra_us = ts_ns > c->state_ns ? (ts_ns - c->state_ns) / 1000 : 0;
	uint32_t *fin_wait2_us = c->nstates ? &c->state_us[c->nstates - 1] : NULL;

	if (fin_wait2_us && *fin_wait2_us != TRACKER_UNKNOWN_US)
		*fin_wait2_us = (uint32_t)(*fin_wait2_us + extra_us < UINT32_MAX - 1 ?
					   *fin_wait2_us + extra_us : UINT32_MAX - 1);
	c->state_ns = ts_ns > c->state_ns ? ts_ns : c->state_ns;
	c->close_flags = (uint8_t)((c->close_flags & ~SF_CLOSE_TW_FIN_WAIT2) | SF_CLOSE_TIME_WAIT);
	push_state(c, SF_TCP_TIME_WAIT);
}

enum conn_outcome conn_outcome(const struct conn *c)
{
	uint8_t last = conn_last_state(c);

	if (!(c->flags & CONN_CLOSED))
		return OUTCOME_UNKNOWN;
	switch (c->sk_err) {
	case 0:
		break;
	case ECONNREFUSED:
		return OUTCOME_REFUSED;
	case ETIMEDOUT:
		return OUTCOME_TIMEOUT;
	case ECONNRESET:
	case EPIPE:
		return OUTCOME_RESET;
	default:
		return OUTCOME_ABORTED;
	}
	/* A RST after the close: from its time-wait mini-socket (data after our close). */
	if ((c->flags & CONN_RESET_SENT) && c->rst_ns >= c->state_ns)
		return OUTCOME_RESET;
	if (c->close_flags & (SF_CLOSE_TIME_WAIT | SF_CLOSE_TW_FIN_WAIT2) || last == SF_TCP_LAST_ACK)
		return OUTCOME_CLOSED;
	/* Closed without an error from a state that owes the peer a FIN: we sent an RST. */
	if (last == SF_TCP_ESTABLISHED || last == SF_TCP_CLOSE_WAIT || last == SF_TCP_SYN_RECV ||
	    last == SF_TCP_FIN_WAIT1 || last == SF_TCP_CLOSING)
		return OUTCOME_RESET;
	return OUTCOME_ABORTED;
}

/*
 * The kernel's bytes_acked and bytes_received count sequence space: the
 * peer's acknowledgement of our SYN (client side only: a child starts with
 * it acknowledged) and of our FIN, and the peer's FIN, each add one.
 */
static bool our_fin_acked(const struct conn *c)
{
	return has_state(c, SF_TCP_FIN_WAIT2) || (c->close_flags & SF_CLOSE_TIME_WAIT) ||
	       (conn_last_state(c) == SF_TCP_LAST_ACK && !c->sk_err);
}

int64_t conn_tx_bytes(const struct conn *c)
{
	int64_t control;

	if (!(c->flags & CONN_CLOSED) || (c->flags & CONN_CLOSE_INFERRED) ||
	    (c->partial && c->role == ROLE_UNKNOWN))
		return -1;
	control = (c->role == ROLE_CLIENT && (c->flags & CONN_HANDSHAKE_SEEN)) + our_fin_acked(c);
	return (int64_t)c->bytes_acked >= control ? (int64_t)c->bytes_acked - control : 0;
}

int64_t conn_rx_bytes(const struct conn *c)
{
	int64_t control;

	if (!(c->flags & CONN_CLOSED) || (c->flags & CONN_CLOSE_INFERRED))
		return -1;
	control = (c->close_flags & SF_CLOSE_FIN_RCVD) ? 1 : 0;
	return (int64_t)c->bytes_received >= control ? (int64_t)c->bytes_received - control : 0;
}

bool conn_reset_by_remote(const struct conn *c)
{
	return c->sk_err == ECONNRESET || c->sk_err == EPIPE;
}

/* Reset by the peer, or refused: an RST answering our SYN (or an ICMP unreachable). */
bool conn_rst_from_peer(const struct conn *c)
{
	return conn_reset_by_remote(c) || c->sk_err == ECONNREFUSED;
}

void tracker_find_stuck(struct tracker *t, uint64_t now_ns, uint64_t min_ns, uint32_t watched,
			void (*fn)(void *ctx, const struct conn *c, uint64_t now_ns), void *ctx)
{
	for (uint32_t i = t->oldest; i != NIL; i = t->pool[i].newer) {
		struct conn *c = &t->pool[i].c;
		uint8_t state = c->nstates ? c->states[c->nstates - 1] : 0;

		if ((c->flags & CONN_STUCK_REPORTED) || state >= 32 || !(watched & (1u << state)) ||
		    now_ns < c->state_ns || now_ns - c->state_ns < min_ns)
			continue;
		c->flags |= CONN_STUCK_REPORTED;
		fn(ctx, c, now_ns);
	}
}

int64_t conn_duration_us(const struct conn *c)
{
	return (int64_t)((c->state_ns - c->first_ns) / 1000);
}

void tracker_state_counts(const struct tracker *t, uint32_t *out)
{
	memset(out, 0, SF_TCP_MAX_STATES * sizeof(*out));
	for (uint32_t i = t->oldest; i != NIL; i = t->pool[i].newer) {
		const struct conn *c = &t->pool[i].c;
		uint8_t state = c->nstates ? c->states[c->nstates - 1] : 0;

		if (state < SF_TCP_MAX_STATES)
			out[state]++;
	}
}
