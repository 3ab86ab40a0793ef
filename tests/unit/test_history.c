/* History records (--life's kernel-side batching) replayed into state events. */
#include "check.h"
#include "history.h"
#include "tracker.h"

struct app {
	struct tracker *t;
	struct synfin_event seen[2 * SF_HIST_MAX];
	int n, stop_after;
	const struct conn *ended;
};

static int capture(struct app *app, const struct synfin_event *e)
{
	struct transition tr;

	app->seen[app->n++] = *e;
	tracker_feed(app->t, e, &tr);
	if (tr.ended)
		app->ended = tr.ended;
	return app->n == app->stop_after ? -1 : 0;
}

static void add(struct synfin_history *h, uint64_t ts_us, uint8_t old, uint8_t new, bool owner)
{
	h->ts_ns[h->n] = 1000000000ull + ts_us * 1000;
	h->oldstate[h->n] = old;
	h->newstate[h->n] = new | (owner ? SF_HIST_OWNER_CTX : 0);
	h->n++;
}

/* A client that closed first, as state.bpf.c sends it at CLOSE. */
static struct synfin_history client_history(void)
{
	struct synfin_history h = {
		.last = { .skaddr = 0x1000, .sport = 5000, .dport = 80, .family = 2,
			  .type = SF_EV_HISTORY, .oldstate = SF_TCP_FIN_WAIT2,
			  .newstate = SF_TCP_CLOSE, .close_flags = SF_CLOSE_FIN_RCVD |
			  SF_CLOSE_FIN_SENT | SF_CLOSE_TIME_WAIT, .bytes_acked = 7, .retrans = 1 },
		.owner_pid = 42, .local_isn = 1000, .remote_isn = 2000, .srtt_us = 30,
		.hs_retrans = 1, .hs_seen = 1,
	};

	memcpy(h.owner_comm, "client", 7);
	add(&h, 0, SF_TCP_CLOSE, SF_TCP_SYN_SENT, true);
	add(&h, 100, SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, false);
	add(&h, 1100, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, true);
	add(&h, 1150, SF_TCP_FIN_WAIT1, SF_TCP_FIN_WAIT2, false);
	add(&h, 1200, SF_TCP_FIN_WAIT2, SF_TCP_CLOSE, false);
	h.last.ts_ns = h.ts_ns[4];
	return h;
}

static void replay_gives_each_transition_its_own_facts(void)
{
	struct synfin_history h = client_history();
	struct app app = { .t = tracker_new(64) };

	CHECK_INT(history_replay(&h, capture, &app), 0);
	CHECK_INT(app.n, 5);
	for (int i = 0; i < app.n; i++) {
		CHECK_INT(app.seen[i].type, SF_EV_STATE);
		CHECK_INT(app.seen[i].sport, 5000);
		CHECK_INT(app.seen[i].pid, i == 0 || i == 2 ? 42 : 0);
		CHECK_INT(app.seen[i].close_flags, i == 4 ? h.last.close_flags : 0);
		CHECK_INT(app.seen[i].bytes_acked, i == 4 ? 7 : 0);
		CHECK_INT(app.seen[i].local_isn, i == 1 ? 1000 : 0);
	}
	CHECK_STR(app.seen[2].comm, "client");
	CHECK_STR(app.seen[3].comm, "");
	CHECK_INT(app.seen[1].remote_isn, 2000);
	CHECK_INT(app.seen[1].srtt_us, 30);
	CHECK_INT(app.seen[1].retrans, 1);
	CHECK_INT(app.seen[3].ts_ns, 1000000000ull + 1150 * 1000);
	CHECK(app.ended != NULL);
	if (app.ended) {
		CHECK_INT(app.ended->nstates, 5); /* ... FIN_WAIT2, TIME_WAIT */
		CHECK_INT(app.ended->states[4], SF_TCP_TIME_WAIT);
		CHECK_INT(conn_handshake_us(app.ended), 100);
		CHECK_INT(app.ended->local_isn, 1000);
		CHECK_INT(app.ended->pid, 42);
	}
	tracker_free(app.t);
}

/* A history sent because it was full goes on where the next record starts. */
static void split_history_makes_one_lifecycle(void)
{
	struct synfin_history whole = client_history(), first = whole, second = whole;
	struct app app = { .t = tracker_new(64) };

	first.n = 2; /* SYN_SENT, ESTABLISHED: sent full, not at CLOSE */
	first.last.oldstate = SF_TCP_SYN_SENT;
	first.last.newstate = SF_TCP_ESTABLISHED;
	first.last.local_isn = 1000;
	first.last.close_flags = 0;
	second.hs_seen = 0;
	second.n = 0;
	for (int i = 2; i < 5; i++)
		add(&second, (whole.ts_ns[i] - 1000000000ull) / 1000, whole.oldstate[i],
		    whole.newstate[i] & 0x7f, i == 2);
	CHECK_INT(history_replay(&first, capture, &app), 0);
	CHECK(app.ended == NULL);
	CHECK_INT(history_replay(&second, capture, &app), 0);
	CHECK_INT(app.n, 5);
	CHECK(app.ended != NULL);
	if (app.ended) {
		CHECK_INT(app.ended->nstates, 5);
		CHECK_INT(app.ended->local_isn, 1000);
		CHECK_INT(conn_duration_us(app.ended), 1200);
	}
	tracker_free(app.t);
}

static void bad_count_and_early_stop_are_bounded(void)
{
	struct synfin_history h = client_history();
	struct app app = { .t = tracker_new(64), .stop_after = 2 };

	CHECK_INT(history_replay(&h, capture, &app), -1);
	CHECK_INT(app.n, 2);
	h.n = 200; /* not from our kernel side: never read past the arrays */
	app.n = 0;
	app.stop_after = 0;
	CHECK_INT(history_replay(&h, capture, &app), 0);
	CHECK_INT(app.n, SF_HIST_MAX);
	tracker_free(app.t);
}

int main(void)
{
	RUN(replay_gives_each_transition_its_own_facts);
	RUN(split_history_makes_one_lifecycle);
	RUN(bad_count_and_early_stop_are_bounded);
	return check_summary("unit/history");
}
