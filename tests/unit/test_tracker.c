/* The lifecycle tracker, fed synthetic event sequences like the kernel emits. */
#include <errno.h>
#include <stdlib.h>
#include "check.h"
#include "tracker.h"

#define US 1000ull

static struct synfin_event ev(uint64_t sk, uint64_t ts_us, uint8_t oldstate, uint8_t newstate,
			      uint16_t sport)
{
	struct synfin_event e = {
		.ts_ns = 1000000000ull + ts_us * US,
		.skaddr = sk,
		.pid = 42,
		.netns = 4026531840u,
		.sport = sport,
		.dport = 8080,
		.type = SF_EV_STATE,
		.family = 2,
		.oldstate = oldstate,
		.newstate = newstate,
		.saddr = { 127, 0, 0, 1 },
		.daddr = { 127, 0, 0, 1 },
	};
	memcpy(e.comm, "client", 7);
	return e;
}

/* Feeds the sequence; returns the lifecycle record of the last event (or NULL). */
static const struct conn *feed_all(struct tracker *t, const struct synfin_event *evs, int n)
{
	struct transition tr = {};

	for (int i = 0; i < n; i++)
		tracker_feed(t, &evs[i], &tr);
	return tr.ended;
}

static void client_first_close_yields_full_record(void)
{
	struct tracker *t = tracker_new(64);
	const struct synfin_event evs[] = {
		ev(0x1000, 0, SF_TCP_CLOSE, SF_TCP_SYN_SENT, 0), /* port not chosen yet */
		ev(0x1000, 100, SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, 5000),
		ev(0x1000, 1100, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, 5000),
		ev(0x1000, 1150, SF_TCP_FIN_WAIT1, SF_TCP_FIN_WAIT2, 5000),
		ev(0x1000, 1200, SF_TCP_FIN_WAIT2, SF_TCP_CLOSE, 5000),
	};
	const struct conn *c = feed_all(t, evs, 5);

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(c->role, ROLE_CLIENT);
	CHECK_INT(c->nstates, 4);
	CHECK_INT(c->states[0], SF_TCP_SYN_SENT);
	CHECK_INT(c->states[1], SF_TCP_ESTABLISHED);
	CHECK_INT(c->states[2], SF_TCP_FIN_WAIT1);
	CHECK_INT(c->states[3], SF_TCP_FIN_WAIT2);
	CHECK_INT(c->state_us[0], 100);
	CHECK_INT(c->state_us[1], 1000);
	CHECK_INT(c->state_us[2], 50);
	CHECK_INT(c->state_us[3], 50);
	CHECK_INT(conn_handshake_us(c), 100);
	CHECK_INT(conn_duration_us(c), 1200);
	CHECK_INT(c->sport, 5000);
	CHECK_INT(c->pid, 42);
	CHECK_INT(c->partial, 0);
	CHECK_INT(tracker_count(t), 0);
	tracker_free(t);
}

static void server_child_of_listener_is_server_without_client_handshake(void)
{
	struct tracker *t = tracker_new(64);
	const struct synfin_event evs[] = {
		ev(0x2000, 0, SF_TCP_LISTEN, SF_TCP_SYN_RECV, 8080),
		ev(0x2000, 3, SF_TCP_SYN_RECV, SF_TCP_ESTABLISHED, 8080),
		ev(0x2000, 500, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, 8080),
		ev(0x2000, 520, SF_TCP_FIN_WAIT1, SF_TCP_FIN_WAIT2, 8080),
		ev(0x2000, 530, SF_TCP_FIN_WAIT2, SF_TCP_CLOSE, 8080),
	};
	const struct conn *c = feed_all(t, evs, 5);

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(c->role, ROLE_SERVER);
	CHECK_INT(c->partial, 0);
	CHECK_INT(c->nstates, 4);
	CHECK_INT(c->states[0], SF_TCP_SYN_RECV);
	CHECK_INT(conn_handshake_us(c), -1);
	CHECK_INT(conn_duration_us(c), 530);
	tracker_free(t);
}

static void passive_close_lists_close_wait_and_last_ack(void)
{
	struct tracker *t = tracker_new(64);
	const struct synfin_event evs[] = {
		ev(0x3000, 0, SF_TCP_CLOSE, SF_TCP_SYN_SENT, 0),
		ev(0x3000, 10, SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, 6000),
		ev(0x3000, 20, SF_TCP_ESTABLISHED, SF_TCP_CLOSE_WAIT, 6000),
		ev(0x3000, 70, SF_TCP_CLOSE_WAIT, SF_TCP_LAST_ACK, 6000),
		ev(0x3000, 75, SF_TCP_LAST_ACK, SF_TCP_CLOSE, 6000),
	};
	const struct conn *c = feed_all(t, evs, 5);

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(c->nstates, 4);
	CHECK_INT(c->states[2], SF_TCP_CLOSE_WAIT);
	CHECK_INT(c->states[3], SF_TCP_LAST_ACK);
	CHECK_INT(c->state_us[2], 50);
	CHECK_INT(c->state_us[3], 5);
	tracker_free(t);
}

static void reset_ends_in_established(void)
{
	struct tracker *t = tracker_new(64);
	const struct synfin_event evs[] = {
		ev(0x4000, 0, SF_TCP_CLOSE, SF_TCP_SYN_SENT, 0),
		ev(0x4000, 10, SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, 6000),
		ev(0x4000, 30, SF_TCP_ESTABLISHED, SF_TCP_CLOSE, 6000),
	};
	const struct conn *c = feed_all(t, evs, 3);

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(c->nstates, 2);
	CHECK_INT(c->states[1], SF_TCP_ESTABLISHED);
	CHECK_INT(c->state_us[1], 20);
	CHECK_INT(conn_duration_us(c), 30);
	tracker_free(t);
}

static void refused_connect_has_only_syn_sent(void)
{
	struct tracker *t = tracker_new(64);
	const struct synfin_event evs[] = {
		ev(0x5000, 0, SF_TCP_CLOSE, SF_TCP_SYN_SENT, 0),
		ev(0x5000, 40, SF_TCP_SYN_SENT, SF_TCP_CLOSE, 6001),
	};
	const struct conn *c = feed_all(t, evs, 2);

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(c->role, ROLE_CLIENT);
	CHECK_INT(c->nstates, 1);
	CHECK_INT(c->state_us[0], 40);
	CHECK_INT(conn_handshake_us(c), -1);
	tracker_free(t);
}

static void socket_seen_mid_life_is_partial(void)
{
	struct tracker *t = tracker_new(64);
	const struct synfin_event evs[] = {
		ev(0x6000, 0, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, 7000),
		ev(0x6000, 5, SF_TCP_FIN_WAIT1, SF_TCP_FIN_WAIT2, 7000),
		ev(0x6000, 9, SF_TCP_FIN_WAIT2, SF_TCP_CLOSE, 7000),
	};
	const struct conn *c = feed_all(t, evs, 3);

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(c->partial, 1);
	CHECK_INT(c->role, ROLE_UNKNOWN);
	CHECK_INT(c->nstates, 3);
	CHECK_INT(c->states[0], SF_TCP_ESTABLISHED);
	CHECK_INT(c->state_us[0], TRACKER_UNKNOWN_US);
	CHECK_INT(c->state_us[1], 5);
	tracker_free(t);
}

static void partial_socket_in_handshake_keeps_its_role(void)
{
	struct tracker *t = tracker_new(64);
	const struct synfin_event evs[] = {
		ev(0x7000, 0, SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, 7001),
		ev(0x7000, 9, SF_TCP_ESTABLISHED, SF_TCP_CLOSE, 7001),
	};
	const struct conn *c = feed_all(t, evs, 2);

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(c->role, ROLE_CLIENT);
	CHECK_INT(c->partial, 1);
	CHECK_INT(conn_handshake_us(c), -1); /* its start was not seen */
	tracker_free(t);
}

static void owner_learnt_after_softirq_events(void)
{
	struct tracker *t = tracker_new(64);
	struct synfin_event evs[] = {
		ev(0x8000, 0, SF_TCP_ESTABLISHED, SF_TCP_CLOSE_WAIT, 7002),
		ev(0x8000, 5, SF_TCP_CLOSE_WAIT, SF_TCP_LAST_ACK, 7002),
		ev(0x8000, 9, SF_TCP_LAST_ACK, SF_TCP_CLOSE, 7002),
	};
	struct transition tr;
	const struct conn *c;

	evs[0].pid = 0;
	evs[0].comm[0] = 0;
	evs[1].pid = 777;
	memcpy(evs[1].comm, "closer", 7);
	evs[2].pid = 0;
	evs[2].comm[0] = 0;
	tracker_feed(t, &evs[0], &tr);
	CHECK_INT(tr.pid, 0);
	tracker_feed(t, &evs[1], &tr);
	tracker_feed(t, &evs[2], &tr);
	CHECK_INT(tr.pid, 777); /* the softirq close reports the known owner */
	CHECK_STR(tr.comm, "closer");
	c = tr.ended;
	CHECK(c != NULL);
	if (c)
		CHECK_INT(c->pid, 777);
	tracker_free(t);
}

static void listener_yields_no_lifecycle_record(void)
{
	struct tracker *t = tracker_new(64);
	const struct synfin_event evs[] = {
		ev(0x9000, 0, SF_TCP_CLOSE, SF_TCP_LISTEN, 8080),
		ev(0x9000, 100, SF_TCP_LISTEN, SF_TCP_CLOSE, 8080),
	};
	struct transition tr;

	tracker_feed(t, &evs[0], &tr);
	CHECK_INT(tracker_count(t), 1);
	tracker_feed(t, &evs[1], &tr);
	CHECK(tr.ended == NULL);
	CHECK_INT(tr.delta_us, 100);
	CHECK_INT(tracker_count(t), 0);
	tracker_free(t);
}

static void full_table_evicts_the_oldest(void)
{
	struct tracker *t = tracker_new(16);
	struct transition tr;
	struct synfin_event e;

	for (uint64_t i = 0; i < 20; i++) {
		e = ev(0x10000 + i * 64, i, SF_TCP_CLOSE, SF_TCP_SYN_SENT, 0);
		tracker_feed(t, &e, &tr);
	}
	CHECK_INT(tracker_count(t), 16);
	CHECK_INT(tracker_evicted(t), 4);
	/* Socket 0 was evicted: its close is now the first sight of it. */
	e = ev(0x10000, 30, SF_TCP_SYN_SENT, SF_TCP_CLOSE, 9);
	tracker_feed(t, &e, &tr);
	CHECK(tr.ended && tr.ended->partial);
	/* Socket 19 is still tracked from its start. */
	e = ev(0x10000 + 19 * 64, 31, SF_TCP_SYN_SENT, SF_TCP_CLOSE, 9);
	tracker_feed(t, &e, &tr);
	CHECK(tr.ended && !tr.ended->partial);
	CHECK_INT(tr.delta_us, 31 - 19);
	tracker_free(t);
}

/* The kernel ran no program at a client's CLOSE; its memory became a server's child. */
static void a_socket_reused_before_its_close_was_seen_starts_afresh(void)
{
	struct tracker *t = tracker_new(64);
	const struct synfin_event evs[] = {
		ev(0x3000, 0, SF_TCP_CLOSE, SF_TCP_SYN_SENT, 0),
		ev(0x3000, 100, SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, 5000),
		ev(0x3000, 200, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, 5000),
		/* FIN_WAIT2 and CLOSE never traced */
		ev(0x3000, 9000, SF_TCP_LISTEN, SF_TCP_SYN_RECV, 8080),
		ev(0x3000, 9010, SF_TCP_SYN_RECV, SF_TCP_ESTABLISHED, 8080),
		ev(0x3000, 9500, SF_TCP_ESTABLISHED, SF_TCP_CLOSE_WAIT, 8080),
		ev(0x3000, 9600, SF_TCP_CLOSE_WAIT, SF_TCP_LAST_ACK, 8080),
		ev(0x3000, 9700, SF_TCP_LAST_ACK, SF_TCP_CLOSE, 8080),
	};
	const struct conn *c = feed_all(t, evs, 8);

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(tracker_ends_unseen(t), 1);
	CHECK_INT(c->role, ROLE_SERVER);
	CHECK_INT(c->partial, 0);
	CHECK_INT(c->sport, 8080);
	CHECK_INT(c->nstates, 4);
	CHECK_INT(c->states[0], SF_TCP_SYN_RECV);
	CHECK_INT(conn_duration_us(c), 700);
	CHECK_INT(tracker_count(t), 0);
	tracker_free(t);
}

/*
 * Random opens and closes against a plain reference array: catches any slip
 * in the open-addressing deletion (backward shift), which a few hand-written
 * sequences would not.
 */
static void random_churn_matches_reference(void)
{
	enum { CAP = 512, KEYS = 700, ROUNDS = 200000 };
	struct tracker *t = tracker_new(CAP);
	static uint8_t open_ref[KEYS];
	uint32_t open_count = 0, mismatches = 0;
	uint64_t seed = 12345;
	struct transition tr;

	memset(open_ref, 0, sizeof(open_ref));
	for (int r = 0; r < ROUNDS && open_count < CAP; r++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t k = (uint32_t)(seed >> 33) % KEYS;
		/* Keys that collide in the low bits, like slab-allocated sockets. */
		struct synfin_event e = ev(0xffff888100000000ull + (uint64_t)k * 2048, (uint64_t)r,
					   open_ref[k] ? SF_TCP_ESTABLISHED : SF_TCP_CLOSE,
					   open_ref[k] ? SF_TCP_CLOSE : SF_TCP_SYN_SENT, 1);

		tracker_feed(t, &e, &tr);
		if (open_ref[k] && (!tr.ended || tr.ended->partial))
			mismatches++;
		open_count += open_ref[k] ? -1u : 1u;
		open_ref[k] ^= 1;
		if (tracker_count(t) != open_count)
			mismatches++;
	}
	CHECK_INT(mismatches, 0);
	CHECK_INT(tracker_evicted(t), 0);
	tracker_free(t);
}

static void count_stuck(void *ctx, const struct conn *c, uint64_t now_ns)
{
	(void)c;
	(void)now_ns;
	(*(int *)ctx)++;
}

/* The last event of a client lifecycle, with the close facts BPF reads. */
static const struct conn *client_ending(struct tracker *t, uint64_t sk, const uint8_t *path, int n,
					 uint8_t sk_err, uint8_t close_flags)
{
	struct synfin_event evs[8];
	struct transition tr = {};
	uint8_t prev = SF_TCP_CLOSE;

	for (int i = 0; i < n; i++) {
		evs[i] = ev(sk, (uint64_t)i * 10, prev, path[i], 5000);
		prev = path[i];
	}
	evs[n] = ev(sk, (uint64_t)n * 10, prev, SF_TCP_CLOSE, 5000);
	evs[n].sk_err = sk_err;
	evs[n].close_flags = close_flags;
	for (int i = 0; i <= n; i++)
		tracker_feed(t, &evs[i], &tr);
	return tr.ended;
}

static void outcomes_and_closers_follow_the_kernel_facts(void)
{
	struct tracker *t = tracker_new(64);
	const uint8_t active[] = { SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1,
				   SF_TCP_FIN_WAIT2 };
	const uint8_t passive[] = { SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, SF_TCP_CLOSE_WAIT,
				    SF_TCP_LAST_ACK };
	const uint8_t simultaneous[] = { SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1,
					 SF_TCP_CLOSING };
	const uint8_t established[] = { SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED };
	const uint8_t syn_only[] = { SF_TCP_SYN_SENT };
	const struct conn *c;

	c = client_ending(t, 0x100, active, 4, 0, SF_CLOSE_TIME_WAIT | SF_CLOSE_FIN_RCVD);
	CHECK_INT(conn_outcome(c), OUTCOME_CLOSED);
	CHECK_INT(conn_closer(c), CLOSER_LOCAL);
	CHECK_INT(c->nstates, 5);
	CHECK_INT(c->states[4], SF_TCP_TIME_WAIT);
	CHECK_INT(c->state_us[4], TRACKER_UNKNOWN_US); /* still running at CLOSE */
	CHECK_INT(conn_last_state(c), SF_TCP_FIN_WAIT2);

	c = client_ending(t, 0x200, passive, 4, 0, SF_CLOSE_FIN_RCVD | SF_CLOSE_FIN_SENT);
	CHECK_INT(conn_outcome(c), OUTCOME_CLOSED);
	CHECK_INT(conn_closer(c), CLOSER_REMOTE);

	c = client_ending(t, 0x300, simultaneous, 4, 0, SF_CLOSE_TIME_WAIT);
	CHECK_INT(conn_closer(c), CLOSER_BOTH);
	CHECK_INT(c->states[4], SF_TCP_TIME_WAIT);

	c = client_ending(t, 0x400, established, 2, ECONNRESET, 0);
	CHECK_INT(conn_outcome(c), OUTCOME_RESET);
	CHECK(conn_reset_by_remote(c));
	CHECK_INT(conn_closer(c), CLOSER_NONE);

	c = client_ending(t, 0x500, established, 2, 0, 0);
	CHECK_INT(conn_outcome(c), OUTCOME_RESET);
	CHECK(!conn_reset_by_remote(c));

	c = client_ending(t, 0x600, syn_only, 1, ECONNREFUSED, 0);
	CHECK_INT(conn_outcome(c), OUTCOME_REFUSED);

	c = client_ending(t, 0x700, syn_only, 1, ETIMEDOUT, 0);
	CHECK_INT(conn_outcome(c), OUTCOME_TIMEOUT);

	c = client_ending(t, 0x800, established, 2, EHOSTUNREACH, 0);
	CHECK_INT(conn_outcome(c), OUTCOME_ABORTED);
	CHECK_INT(c->sk_err, EHOSTUNREACH);
	tracker_free(t);
}

static void stuck_connections_are_reported_once_per_state(void)
{
	struct tracker *t = tracker_new(64);
	struct synfin_event a = ev(0xa00, 0, SF_TCP_ESTABLISHED, SF_TCP_CLOSE_WAIT, 1);
	struct synfin_event b = ev(0xb00, 0, SF_TCP_CLOSE, SF_TCP_SYN_SENT, 0);
	struct transition tr;
	int calls = 0;
	const uint32_t watched = 1u << SF_TCP_CLOSE_WAIT;

	tracker_feed(t, &a, &tr);
	tracker_feed(t, &b, &tr);
	tracker_find_stuck(t, a.ts_ns + 5000 * US, 2000 * US, watched, count_stuck, &calls);
	CHECK_INT(calls, 1); /* only the CLOSE_WAIT one: SYN_SENT is not watched */
	tracker_find_stuck(t, a.ts_ns + 9000 * US, 2000 * US, watched, count_stuck, &calls);
	CHECK_INT(calls, 1); /* once */
	tracker_find_stuck(t, a.ts_ns + 1000 * US, 2000 * US, 1u << SF_TCP_SYN_SENT, count_stuck, &calls);
	CHECK_INT(calls, 1); /* not long enough yet */
	tracker_free(t);
}

static void children_inherit_their_listeners_owner(void)
{
	struct tracker *t = tracker_new(64);
	struct synfin_event listen = ev(0xc00, 0, SF_TCP_CLOSE, SF_TCP_LISTEN, 8080);
	struct synfin_event child = ev(0xd00, 5, SF_TCP_LISTEN, SF_TCP_SYN_RECV, 8080);
	struct synfin_event other_port = ev(0xe00, 6, SF_TCP_LISTEN, SF_TCP_SYN_RECV, 9090);
	struct synfin_event unlisten = ev(0xc00, 7, SF_TCP_LISTEN, SF_TCP_CLOSE, 8080);
	struct synfin_event late_child = ev(0xf00, 8, SF_TCP_LISTEN, SF_TCP_SYN_RECV, 8080);
	struct transition tr;

	listen.pid = 4321;
	memcpy(listen.comm, "nginx", 6);
	child.pid = other_port.pid = late_child.pid = 0; /* softirq: the kernel cannot tell */
	tracker_feed(t, &listen, &tr);
	tracker_feed(t, &child, &tr);
	CHECK_INT(tr.pid, 4321);
	CHECK_STR(tr.comm, "nginx");
	tracker_feed(t, &other_port, &tr);
	CHECK_INT(tr.pid, 0);
	tracker_feed(t, &unlisten, &tr);
	tracker_feed(t, &late_child, &tr);
	CHECK_INT(tr.pid, 0); /* the listener is gone: no stale owner */
	tracker_free(t);
}

/* synfin started after listen(): the listener's close alone is still no connection. */
static void listener_seen_only_closing_is_not_a_connection(void)
{
	struct tracker *t = tracker_new(64);
	const struct synfin_event evs[] = { ev(0x7000, 0, SF_TCP_LISTEN, SF_TCP_CLOSE, 8080) };

	CHECK(feed_all(t, evs, 1) == NULL);
	CHECK_INT(tracker_count(t), 0);
	tracker_free(t);
}

static struct held_socket held(uint32_t pid, const char *comm, uint8_t state, uint16_t sport,
			       uint16_t dport)
{
	struct held_socket h = { .netns = 4026531840u, .pid = pid, .sport = sport, .dport = dport,
				 .family = 2, .state = state,
				 .saddr = { 127, 0, 0, 1 }, .daddr = { 127, 0, 0, 1 } };

	if (state == SF_TCP_LISTEN)
		memset(h.daddr, 0, sizeof(h.daddr));
	memcpy(h.comm, comm, strlen(comm) + 1);
	return h;
}

struct rescan_ctx {
	struct holders *h;
	struct held_socket after[4];
	int nafter, calls;
	uint32_t exited;
};

/* Stands for procscan(): the holders as /proc shows them after the exit. */
static void fake_rescan(void *ctx, uint32_t pid)
{
	struct rescan_ctx *r = ctx;

	r->calls++;
	r->exited = pid;
	holders_clear(r->h);
	for (int i = 0; i < r->nafter; i++)
		holders_add(r->h, &r->after[i]);
}

/* nginx: the process that listen()s exits after forking the master; workers accept. */
static void a_prefork_servers_sockets_follow_their_holders(void)
{
	struct tracker *t = tracker_new(64);
	struct holders h = { 0 };
	struct synfin_event listen = ev(0xc00, 0, SF_TCP_CLOSE, SF_TCP_LISTEN, 8080);
	struct synfin_event born = ev(0xd00, 5, SF_TCP_LISTEN, SF_TCP_SYN_RECV, 8080);
	struct synfin_event est = ev(0xd00, 6, SF_TCP_SYN_RECV, SF_TCP_ESTABLISHED, 8080);
	struct synfin_event accept = ev(0xd00, 7, SF_TCP_ESTABLISHED, SF_TCP_ESTABLISHED, 8080);
	struct synfin_event cw = ev(0xd00, 8, SF_TCP_ESTABLISHED, SF_TCP_CLOSE_WAIT, 8080);
	struct rescan_ctx r = { .h = &h, .nafter = 2 };
	struct transition tr;

	tracker_use_holders(t, &h);
	listen.pid = 100;
	memcpy(listen.comm, "nginx", 6);
	born.pid = est.pid = cw.pid = 0;
	born.dport = est.dport = accept.dport = cw.dport = 40000;
	r.after[0] = held(101, "master", SF_TCP_LISTEN, 8080, 0);
	r.after[1] = held(102, "worker", SF_TCP_LISTEN, 8080, 0);
	tracker_feed(t, &listen, &tr);
	tracker_feed(t, &born, &tr);
	CHECK_INT(tr.pid, 100);
	/* 100 exits: the listener, and the child still in its queue, go to the scan's holder. */
	CHECK_INT(tracker_holder_exited(t, 100, fake_rescan, &r), 2);
	CHECK_INT(r.calls, 1);
	CHECK_INT(r.exited, 100);
	tracker_feed(t, &est, &tr);
	CHECK_INT(tr.pid, 101);
	CHECK_STR(tr.comm, "master");
	accept.type = SF_EV_OWNER;
	accept.pid = 102;
	memcpy(accept.comm, "worker", 7);
	CHECK(tracker_note_accept(t, &accept));
	tracker_feed(t, &cw, &tr);
	CHECK_INT(tr.pid, 102);
	CHECK_STR(tr.comm, "worker");
	/* A process that never held anything costs no scan. */
	CHECK_INT(tracker_holder_exited(t, 555, fake_rescan, &r), 0);
	CHECK_INT(r.calls, 1);
	holders_free(&h);
	tracker_free(t);
}

/* A holder that exits while no other process holds its socket leaves it named by nobody, saying so. */
static void a_socket_nobody_holds_says_why(void)
{
	struct tracker *t = tracker_new(64);
	struct holders h = { 0 };
	struct synfin_event mid = ev(0xa00, 0, SF_TCP_ESTABLISHED, SF_TCP_CLOSE_WAIT, 7000);
	struct synfin_event last = ev(0xa00, 9, SF_TCP_CLOSE_WAIT, SF_TCP_CLOSE, 7000); /* a RST */
	struct rescan_ctx r = { .h = &h };
	struct held_socket before = held(300, "server", SF_TCP_ESTABLISHED, 7000, 8080);
	struct transition tr;

	mid.pid = 0;
	tracker_feed(t, &mid, &tr); /* from before the start, no scan yet */
	CHECK_INT(tr.pid, 0);
	CHECK_STR(owner_unknown_name(tr.owner_unknown), "not_seen");
	tracker_free(t);

	t = tracker_new(64);
	holders_add(&h, &before);
	tracker_use_holders(t, &h);
	tracker_feed(t, &mid, &tr); /* the start's scan names it */
	CHECK_INT(tr.pid, 300);
	CHECK_STR(tr.comm, "server");
	CHECK_INT(tracker_holder_exited(t, 300, fake_rescan, &r), 1);
	last.pid = 0;
	tracker_feed(t, &last, &tr);
	CHECK_INT(tr.pid, 0);
	CHECK_STR(owner_unknown_name(tr.owner_unknown), "holder_exited");
	holders_free(&h);
	tracker_free(t);
}

/* close() orphans a socket; the process that closed it stays named, past its own exit. */
static void a_closer_stays_named_after_it_exits(void)
{
	struct tracker *t = tracker_new(64);
	struct holders h = { 0 };
	struct synfin_event fin = ev(0xb00, 0, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, 7000);
	struct synfin_event fw2 = ev(0xb00, 3, SF_TCP_FIN_WAIT1, SF_TCP_FIN_WAIT2, 7000);
	struct synfin_event end = ev(0xb00, 9, SF_TCP_FIN_WAIT2, SF_TCP_CLOSE, 7000);
	struct rescan_ctx r = { .h = &h };
	struct transition tr;

	tracker_use_holders(t, &h);
	fin.pid = 400;
	memcpy(fin.comm, "closer", 7);
	fw2.pid = end.pid = 0;
	tracker_feed(t, &fin, &tr);
	tracker_feed(t, &fw2, &tr);
	CHECK_INT(tracker_holder_exited(t, 400, fake_rescan, &r), 1);
	tracker_feed(t, &end, &tr);
	CHECK_INT(tr.pid, 400);
	CHECK_STR(tr.comm, "closer");
	CHECK(tr.owner_unknown == OWNER_KNOWN);
	holders_free(&h);
	tracker_free(t);
}

/* fork() after accept(): the parent closes its copy; the child keeps it and is named from then. */
static void a_shared_socket_released_by_its_holder_is_the_keepers(void)
{
	struct tracker *t = tracker_new(64);
	struct holders h = { 0 };
	struct synfin_event est = ev(0xe00, 0, SF_TCP_SYN_RECV, SF_TCP_ESTABLISHED, 7000);
	struct synfin_event released = ev(0xe00, 2, SF_TCP_ESTABLISHED, SF_TCP_ESTABLISHED, 7000);
	struct synfin_event cw = ev(0xe00, 3, SF_TCP_ESTABLISHED, SF_TCP_CLOSE_WAIT, 7000);
	struct rescan_ctx r = { .h = &h, .nafter = 1 };
	struct transition tr;

	tracker_use_holders(t, &h);
	est.pid = 500;
	memcpy(est.comm, "parent", 7);
	cw.pid = 0; /* softirq: the peer's FIN */
	r.after[0] = held(501, "child", SF_TCP_ESTABLISHED, 7000, 40000);
	est.dport = released.dport = cw.dport = 40000;
	tracker_feed(t, &est, &tr);
	released.type = SF_EV_OWNER;
	released.newstate = SF_OWNER_RELEASED;
	released.pid = 777; /* not its holder: nothing to look up */
	CHECK(!tracker_note_released(t, &released, fake_rescan, &r));
	CHECK_INT(r.calls, 0);
	released.pid = 500;
	CHECK(tracker_note_released(t, &released, fake_rescan, &r));
	CHECK_INT(r.calls, 1);
	CHECK_INT(r.exited, 0); /* nobody left out of the scan: the parent holds others */
	tracker_feed(t, &cw, &tr);
	CHECK_INT(tr.pid, 501);
	CHECK_STR(tr.comm, "child");
	/* A scan that still lists only the releaser (raced its close, or skipped): it stays. */
	released.pid = 501;
	r.nafter = 0;
	CHECK(!tracker_note_released(t, &released, fake_rescan, &r));
	holders_free(&h);
	tracker_free(t);
}

/* A fake mini-socket per local port: 6001 armed in FIN_WAIT2, 6002 in TIME_WAIT, others at 6003+. */
static bool fake_arm(void *ctx, const struct conn *c, struct mini_socket_arm *out)
{
	(void)ctx;
	out->ts_ns = 1000000000ull + 2000 * US;
	out->substate = c->sport == 6002 ? SF_TCP_TIME_WAIT : SF_TCP_FIN_WAIT2;
	return c->sport >= 6001;
}

struct inferred { struct conn c[4]; uint32_t unseen[4]; int n; };

static void take_inferred(void *ctx, const struct conn *c, uint32_t unseen)
{
	struct inferred *got = ctx;

	if (got->n < 4) {
		got->c[got->n] = *c;
		got->unseen[got->n++] = unseen;
	}
}

static void a_close_never_traced_is_inferred_from_the_mini_socket(void)
{
	struct tracker *t = tracker_new(64);
	struct inferred got = { .n = 0 };
	struct transition tr;
	const struct synfin_event evs[] = {
		ev(0x1000, 0, SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, 6001), /* FIN_WAIT1 last seen */
		ev(0x1000, 1000, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, 6001),
		ev(0x2000, 0, SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, 6002), /* FIN_WAIT2 last seen */
		ev(0x2000, 1000, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, 6002),
		ev(0x2000, 1500, SF_TCP_FIN_WAIT1, SF_TCP_FIN_WAIT2, 6002),
		ev(0x3000, 0, SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, 6003), /* open: never handed over */
		ev(0x4000, 0, SF_TCP_FIN_WAIT1, SF_TCP_CLOSING, 6004), /* CLOSING: not to FIN_WAIT2 */
	};

	for (int i = 0; i < 7; i++)
		tracker_feed(t, &evs[i], &tr);
	CHECK_INT(tracker_infer_closes(t, fake_arm, take_inferred, &got), 2);
	CHECK_INT(got.n, 2);
	CHECK_INT(tracker_count(t), 2);
	if (got.n != 2)
		goto out;
	/* From FIN_WAIT1: FIN_WAIT2 is proven (only it becomes a FIN_WAIT2 mini-socket), not its time. */
	CHECK_INT(got.c[0].sport, 6001);
	CHECK_INT(got.unseen[0], 2);
	CHECK_INT(got.c[0].nstates, 4);
	CHECK_INT(got.c[0].states[3], SF_TCP_FIN_WAIT2);
	CHECK_INT(got.c[0].state_us[2], TRACKER_UNKNOWN_US);
	CHECK_INT(got.c[0].state_us[3], TRACKER_UNKNOWN_US);
	CHECK(got.c[0].flags & CONN_CLOSE_INFERRED);
	CHECK_INT(got.c[0].close_flags, SF_CLOSE_TW_MADE | SF_CLOSE_TW_FIN_WAIT2);
	CHECK_INT(conn_duration_us(&got.c[0]), 2000);
	CHECK_INT(conn_outcome(&got.c[0]), OUTCOME_CLOSED);
	CHECK_INT(conn_closer(&got.c[0]), CLOSER_LOCAL);
	CHECK_INT(conn_tx_bytes(&got.c[0]), -1);
	CHECK_INT(conn_rx_bytes(&got.c[0]), -1);
	/* From FIN_WAIT2 to TIME_WAIT: the arm is the moment it left, so FIN_WAIT2's time is known. */
	CHECK_INT(got.c[1].sport, 6002);
	CHECK_INT(got.unseen[1], 1);
	CHECK_INT(got.c[1].nstates, 5);
	CHECK_INT(got.c[1].states[4], SF_TCP_TIME_WAIT);
	CHECK_INT(got.c[1].state_us[3], 500);
	CHECK_INT(got.c[1].close_flags, SF_CLOSE_TW_MADE | SF_CLOSE_TIME_WAIT);
out:
	tracker_free(t);
}

int main(void)
{
	RUN(client_first_close_yields_full_record);
	RUN(server_child_of_listener_is_server_without_client_handshake);
	RUN(passive_close_lists_close_wait_and_last_ack);
	RUN(reset_ends_in_established);
	RUN(refused_connect_has_only_syn_sent);
	RUN(socket_seen_mid_life_is_partial);
	RUN(partial_socket_in_handshake_keeps_its_role);
	RUN(owner_learnt_after_softirq_events);
	RUN(listener_yields_no_lifecycle_record);
	RUN(full_table_evicts_the_oldest);
	RUN(a_socket_reused_before_its_close_was_seen_starts_afresh);
	RUN(random_churn_matches_reference);
	RUN(outcomes_and_closers_follow_the_kernel_facts);
	RUN(stuck_connections_are_reported_once_per_state);
	RUN(children_inherit_their_listeners_owner);
	RUN(listener_seen_only_closing_is_not_a_connection);
	RUN(a_prefork_servers_sockets_follow_their_holders);
	RUN(a_socket_nobody_holds_says_why);
	RUN(a_closer_stays_named_after_it_exits);
	RUN(a_shared_socket_released_by_its_holder_is_the_keepers);
	RUN(a_close_never_traced_is_inferred_from_the_mini_socket);
	return check_summary("unit/tracker");
}
