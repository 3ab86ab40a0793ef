/*
 * synfin: watch TCP connections open and close.
 * The life of the program: parse options -> load and attach -> drain the
 * ring buffer on a short timer -> flush and report on exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "loader.h"
#include "metrics.h"
#include "flows.h"
#include "wire.h"
#include "options.h"
#include "output.h"
#include "procscan.h"
#include "listeners.h"
#include "summary.h"
#include "rstlog.h"
#include "bigmem.h"
#include "droplog.h"
#include "timewait.h"
#include "tracker.h"

/*
 * Records are submitted without wake-ups (see state.bpf.c), so drain this
 * often. SYNFIN_POLL_MS overrides it: tests stretch it to see the wake-ups
 * the BPF side sends when a ring fills.
 */
#define POLL_MS 10
#define POLL_MS_MAX 60000
#define COUNTER_CHECK_NS 500000000ull
#define PIPE_FLUSH_NS 1000000000ull
#define HOUSEKEEPING_NS 100000000ull
/* Connections followed through TIME_WAIT at once; more are counted, not followed. */
#define TW_TABLE_CAP 16384
/*
 * Followed through their timers, every TIME_WAIT is followed: up to 60 s of
 * 8,700 closes a second at once, about 190 bytes each (the entry's 144, its
 * two index slots, free-list slot and two age slots; 72 MiB of entries at the
 * bound, 94 MiB in all, touched only as used).
 */
#define TW_TIMED_TABLE_CAP (1u << 19)
/* Segments that trail a flow's last state change (the final ACK) get this long to arrive. */
#define FLOW_GRACE_NS 200000000ull
/*
 * How long a lifecycle handed to a FIN_WAIT2 mini-socket waits for the peer's
 * FIN: a peer that read our FIN usually closes within milliseconds; one that
 * has not closed by then goes out with "time_wait":"fin_wait2".
 */
#define FIN_HOLD_NS 1000000000ull
/* A pass over every tracked connection for CLOSEs never seen: at most this often. */
#define INFER_INTERVAL_NS 1000000000ull
#define FLOW_IDLE_NS 10000000000ull
/*
 * When a process that held tracked sockets exits, /proc is scanned for who
 * holds them now (a few ms; more where a namespace holds many TIME_WAIT
 * sockets, which its sock_diag dump walks past). Bounded, so that a storm of
 * exits cannot starve the rings: past this many scans a second, or sooner
 * after a scan than SCAN_SPACING times its duration (scans get a tenth of the
 * reader's time at most), the exit's sockets are named from the last scan,
 * the exited process excluded (counted, said at exit).
 */
#define SCAN_WINDOW_NS 1000000000ull
#define SCANS_PER_WINDOW 20
#define SCAN_SPACING 9
#define FLOW_TABLE_CAP 4096
/* --stuck watches the states an application or a peer can leave a connection in. */
#define STUCK_STATES ((1u << SF_TCP_CLOSE_WAIT) | (1u << SF_TCP_FIN_WAIT2) | (1u << SF_TCP_SYN_SENT))

/* The layout is the contract with the BPF side: no hidden padding. */
_Static_assert(sizeof(struct synfin_event) == 120, "synfin_event layout changed");

struct app {
	/* The source and the model. */
	struct tracer tracer;
	struct wire wire;
	struct tracker *tracker;
	/* Enrichers: the TIME_WAIT follower, the flow join (-i), the stuck finder (--stuck). */
	struct tw_table *tw;
	struct rst_log rst_log; /* RSTs sent lately, for the other end of a local connection */
	struct rst_await rst_await; /* lifecycles we reset, until their RST record comes */
	struct drop_log drops;      /* dropped SYNs, FINs, RSTs, until their lifecycle takes them */
	struct flow_table *flows; /* NULL without -i: no packet layer */
	struct holders holders;   /* the last scan of who holds which socket (procscan.c) */
	struct listener_table listeners; /* listening sockets' queues and drops (sock_diag) */
	uint64_t scan_window_ns;  /* scans since then: at most SCANS_PER_WINDOW a window */
	uint32_t scans_in_window;
	uint64_t next_scan_ns;    /* none sooner: SCAN_SPACING times the last scan's duration */
	uint64_t scans_skipped;   /* exits whose rescan the bound skipped */
	int scan_fatal;           /* errno: a scan could not step back into our namespace */
	uint16_t only_port;       /* -P or --sport: the listeners looked at */
	uint32_t only_netns;      /* --netns: the namespace looked in */
	uint64_t stuck_ns;        /* 0 = --stuck off */
	/* The sinks: the records (always: errors and notices go there), and what options add. */
	struct sinks sinks;
	struct output out;
	struct ladder_sink ladder;
	struct summary_sink *summary;
	struct metrics_sink *metrics;
	uint64_t lost_seen, skipped_seen; /* last reported: lost in all, and of them skipped */
	uint64_t unseen_seen;             /* and of them never run (below) */
	/* Lifecycles ended from their mini-socket (tracker_infer_closes()), and the
	 * transitions of them the kernel never ran synfin's program for. */
	uint64_t closes_inferred, transitions_unseen;
	uint64_t next_infer_ns, infer_now_ns;
	struct rusage reader_start; /* the reader thread's, when tracing began */
	int poll_ms;
	bool tty;
};

static volatile sig_atomic_t exiting, report_requested;

static void on_end_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static void on_report_signal(int sig)
{
	(void)sig;
	report_requested = 1;
}

/*
 * Every signal whose default would kill us ends tracing the way SIGINT does
 * (drain, flush, exit summary, exit 0): a dropped ssh session (HUP), timeout(1)
 * or a scheduler (TERM, ALRM, XCPU), Ctrl-\ (QUIT). Only the faults (SEGV,
 * ABRT, ...) keep their default.
 */
static const int END_SIGNALS[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM, SIGVTALRM,
				   SIGPROF, SIGXCPU, SIGIO, SIGPWR, SIGSTKFLT };

static void install_signals(void)
{
	/* No SA_RESTART: the poll must return so the loop sees the flag. */
	struct sigaction end = { .sa_handler = on_end_signal };
	struct sigaction report = { .sa_handler = on_report_signal };

	for (size_t i = 0; i < sizeof(END_SIGNALS) / sizeof(END_SIGNALS[0]); i++)
		sigaction(END_SIGNALS[i], &end, NULL);
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaction(sig, &end, NULL);
	/* SIGUSR1: write out what is buffered now (and the summary so far). */
	sigaction(SIGUSR1, &report, NULL);
	signal(SIGUSR2, SIG_IGN);
	/* A closed stdout (| head) shows up as EPIPE from write() and ends us cleanly. */
	signal(SIGPIPE, SIG_IGN);
	/* Past the file size limit, write() fails with EFBIG and we say so. */
	signal(SIGXFSZ, SIG_IGN);
}

/*
 * A closed stdin, stdout or stderr would be handed to the first file we open
 * (an epoll fd, a BPF map, the metrics socket), and our records would be
 * written into it. Park /dev/null there first.
 */
static int reopen_closed_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int got;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		got = open("/dev/null", fd ? O_WRONLY : O_RDONLY);
		if (got != fd) {
			if (got >= 0)
				close(got);
			return -1;
		}
	}
	return 0;
}

/* Each followed namespace, map, program and scrape takes a file descriptor:
 * take all the hard limit allows rather than fail at a soft default of 1024. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_tw_end(void *ctx, const struct tw_entry *e, enum tw_end how, uint64_t now_ns)
{
	sinks_tw_end(&((struct app *)ctx)->sinks, e, how, now_ns);
}

/*
 * A client that never had a SYN-ACK, whose listener is here with its accept
 * queue full all along: its SYNs not dropped elsewhere (a firewall's, in
 * drops) were dropped there, where the kernel traces nothing.
 */
static void take_full_listener(struct app *app, struct lifecycle *l, const struct conn *c)
{
	uint32_t syns = (uint32_t)l->syn_retrans + 1, elsewhere = 0;

	l->full_listener = NULL;
	if (c->role != ROLE_CLIENT || c->nstates != 1 || c->states[0] != SF_TCP_SYN_SENT ||
	    l->outcome == OUTCOME_REFUSED || l->syn_retrans < 0)
		return;
	l->full_listener = listeners_full_for(&app->listeners, c->netns, c->family, c->daddr,
					      c->dport, c->first_ns);
	for (uint8_t i = 0; i < l->ndrops; i++)
		if (l->drops[i].segment == SEG_SYN && l->drops[i].sent)
			elsewhere += l->drops[i].count;
	l->full_listener_syns = syns > elsewhere ? syns - elsewhere : 0;
}

/* Why it failed, where this host saw it: its segments dropped, a full local listener. */
static void take_causes(struct app *app, struct lifecycle *l, const struct conn *c)
{
	l->drops_known = app->tracer.drops;
	l->ndrops = drop_log_take(&app->drops, c, l->drops);
	take_full_listener(app, l, c);
}

/* A lifecycle complete: into the sinks now, or (-i) once its flow's last segments are in. */
static void emit_conn(struct app *app, const struct conn *c, uint64_t ts_ns)
{
	struct lifecycle l;

	if (app->flows && flows_hold_conn(app->flows, c, ts_ns))
		return;
	lifecycle_of(&l, c, NULL, false);
	take_causes(app, &l, c);
	sinks_conn(&app->sinks, &l);
}

static void on_conn_released(void *ctx, const struct conn *c)
{
	emit_conn(ctx, c, c->state_ns);
}

/* A reset with no RST record yet: the kernel traces ours just after the CLOSE. */
static bool awaits_its_rst(const struct conn *c)
{
	return conn_outcome(c) == OUTCOME_RESET && !c->rst_reason;
}

/*
 * A lifecycle ended. One handed to a FIN_WAIT2 mini-socket waits (up to
 * FIN_HOLD_NS) for the peer's FIN, to end in TIME_WAIT at that moment.
 */
static void on_conn_ended(struct app *app, const struct conn *c, uint64_t ts_ns)
{
	struct conn amended;
	enum tw_fate fate = time_wait_name(c) ? tw_add(app->tw, c, on_tw_end, app) : TW_UNTRACKED;
	const struct synfin_event *rst = conn_rst_from_peer(c) && !c->rst_reason ?
					 rst_log_sent_to(&app->rst_log, c) : NULL;

	if (fate == TW_SKIPPED || rst) {
		amended = *c;
		if (fate == TW_SKIPPED)
			conn_mark_tw_skipped(&amended);
		if (rst) { /* both ends here: the sender's reason; received at our CLOSE */
			amended.rst_reason = (uint16_t)(rst->rst_reason + 1);
			amended.rst_ns = amended.state_ns;
		}
		c = &amended;
	}
	if (fate == TW_FOLLOWED && app->tracer.tw_fin && (c->close_flags & SF_CLOSE_TW_FIN_WAIT2) &&
	    tw_hold_conn(app->tw, c, ts_ns + FIN_HOLD_NS, on_conn_released, app))
		return;
	if (app->tracer.rst && awaits_its_rst(c)) {
		rst_await_add(&app->rst_await, c, ts_ns, on_conn_released, app);
		return;
	}
	emit_conn(app, c, ts_ns);
}

/* An RST this host sent: on its connection, its time-wait mini-socket's, or (none) its own record. */
static void on_reset(struct app *app, const struct synfin_event *e)
{
	rst_log_add(&app->rst_log, e);
	if (tracker_note_reset(app->tracker, e) ||
	    rst_await_take(&app->rst_await, e, on_conn_released, app))
		return;
	if (e->skaddr && e->oldstate == SF_TCP_TIME_WAIT)
		tw_note_reset(app->tw, e);
	else if (!e->skaddr)
		sinks_reset(&app->sinks, e);
}

static bool listened_since_start(void *ctx, uint32_t netns, uint16_t port)
{
	return tracker_find_listener(((struct app *)ctx)->tracker, netns, port) != NULL;
}

/* The namespaces of the listeners that exist at start (the holders scan knows them). */
static void watch_listeners(struct app *app)
{
	listeners_init(&app->listeners);
	app->listeners.only_port = app->only_port;
	app->listeners.born_since_start = listened_since_start;
	app->listeners.ctx = app;
	for (size_t i = 0; i < app->holders.n; i++)
		if (app->holders.v[i].state == SF_TCP_LISTEN &&
		    (!app->only_netns || app->holders.v[i].netns == app->only_netns))
			listeners_watch(&app->listeners, app->holders.v[i].netns);
}

static bool scan_allowed(struct app *app)
{
	uint64_t now = now_ns();

	if (now - app->scan_window_ns >= SCAN_WINDOW_NS) {
		app->scan_window_ns = now;
		app->scans_in_window = 0;
	}
	if (app->scans_in_window >= SCANS_PER_WINDOW || now < app->next_scan_ns)
		return false;
	app->scans_in_window++;
	return true;
}

static void rescan_holders(void *ctx, uint32_t exited_pid)
{
	struct app *app = ctx;
	uint64_t start, end;

	if (!scan_allowed(app)) {
		app->scans_skipped++;
		return;
	}
	start = now_ns();
	procscan(&app->holders, "/proc", exited_pid, &app->scan_fatal);
	end = now_ns();
	app->next_scan_ns = end + SCAN_SPACING * (end - start);
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct app *app = ctx;
	const struct synfin_event *e = data;
	struct transition tr;

	if (size < sizeof(*e))
		return 0;
	if (e->type == SF_EV_TW) {
		tw_timer_event(app->tw, e, on_tw_end, app);
		return output_error(&app->out) ? -1 : 0;
	}
	if (e->type == SF_EV_RST) {
		on_reset(app, e);
		return output_error(&app->out) ? -1 : 0;
	}
	if (e->type == SF_EV_DROP) {
		drop_log_add(&app->drops, e);
		sinks_drop(&app->sinks, e);
		return output_error(&app->out) ? -1 : 0;
	}
	if (e->type == SF_EV_OWNER) {
		if (e->newstate == SF_OWNER_RELEASED)
			tracker_note_released(app->tracker, e, rescan_holders, app);
		else
			tracker_note_accept(app->tracker, e);
		return 0;
	}
	if (e->type == SF_EV_EXIT) {
		tracker_holder_exited(app->tracker, e->pid, rescan_holders, app);
		return 0;
	}
	if (e->type != SF_EV_STATE)
		return 0;
	if (e->newstate == SF_TCP_LISTEN)
		listeners_watch(&app->listeners, e->netns);
	tracker_feed(app->tracker, e, &tr);
	if (app->flows)
		flows_note_state(app->flows, e);
	sinks_state(&app->sinks, e, &tr);
	if (tr.ended)
		on_conn_ended(app, tr.ended, e->ts_ns);
	/* A negative return stops the drain: the reader of our output is gone. */
	return output_error(&app->out) ? -1 : 0;
}

static int on_segment(void *ctx, void *data, size_t size)
{
	struct app *app = ctx;
	const struct synfin_segment *s = data;

	if (size < sizeof(*s) || s->type != SF_EV_SEGMENT)
		return 0;
	flows_add_segment(app->flows, s);
	sinks_packet(&app->sinks, s, wire_ifname(&app->wire, s->ifindex));
	return output_error(&app->out) ? -1 : 0;
}

/* A flow is finished: the lifecycles it held, each with its wire view. */
static void on_flow_done(void *ctx, const struct flow *f)
{
	struct app *app = ctx;
	struct lifecycle l;

	for (int side = 0; side < 2; side++) {
		if (!(f->held_sides & (1 << side)))
			continue;
		lifecycle_of(&l, &f->conns[side], f, !(f->held_sides >> (side + 1)));
		take_causes(app, &l, &f->conns[side]);
		sinks_conn(&app->sinks, &l);
	}
}

static void on_stuck(void *ctx, const struct conn *c, uint64_t now_ns)
{
	sinks_stuck(&((struct app *)ctx)->sinks, c, now_ns);
}

/* The counters and gauges a sink may report (--metrics). */
static void fill_status(struct app *app, struct sink_status *st)
{
	struct tracer_counts n;

	st->lost = tracer_counters(&app->tracer, &n) ? app->lost_seen :
		   n.lost + app->transitions_unseen;
	st->evicted = tracker_evicted(app->tracker);
	st->time_wait = tw_held(app->tw);
	st->listeners = &app->listeners;
	tracker_state_counts(app->tracker, st->state_count);
}

/* Work on a slower clock than the ring: TIME_WAIT lookups, flows, --stuck, the sinks' tick. */
/* The kernel counts SYN-ACK retransmissions per listener (synack.bpf.h): copied at each look. */
static void count_synack_retrans(struct app *app)
{
	for (uint32_t i = 0; i < app->listeners.n; i++) {
		struct listener_health *l = &app->listeners.l[i];

		l->synack_retrans = tracer_synack_retrans(&app->tracer, l->netns, l->port);
	}
}

/* --stuck: a listener whose accept queue has stayed full that long, once per spell. */
static void report_full_listeners(struct app *app, uint64_t now)
{
	for (uint32_t i = 0; i < app->listeners.n; i++) {
		struct listener_health *l = &app->listeners.l[i];
		const struct held_socket *h;
		const struct conn *known;
		struct conn c = { 0 };

		if (!l->full_since_ns || l->stuck_reported || l->gone ||
		    now - l->full_since_ns < app->stuck_ns)
			continue;
		l->stuck_reported = 1;
		c.role = ROLE_LISTENER;
		c.family = l->family;
		c.netns = l->netns;
		c.sport = l->port;
		c.nstates = 1;
		c.states[0] = SF_TCP_LISTEN;
		c.state_ns = l->full_since_ns;
		known = tracker_find_listener(app->tracker, l->netns, l->port);
		h = known ? NULL : holders_find_listener(&app->holders, l->netns, l->port, 0);
		if (known) {
			c.pid = known->pid;
			memcpy(c.comm, known->comm, sizeof(c.comm));
			memcpy(c.saddr, known->saddr, sizeof(c.saddr));
		} else if (h) {
			c.pid = h->pid;
			memcpy(c.comm, h->comm, sizeof(c.comm));
		}
		sinks_stuck(&app->sinks, &c, now);
	}
}

/* The key tw_armed holds for c's tuple: IPv4 in the first 4 bytes, the rest zero. */
static void tw_key_of_conn(const struct conn *c, struct synfin_tw_key *k)
{
	size_t n = c->family == AF_INET ? 4 : 16;

	memset(k, 0, sizeof(*k));
	memcpy(k->saddr, c->saddr, n);
	memcpy(k->daddr, c->daddr, n);
	k->netns = c->netns;
	k->sport = c->sport;
	k->dport = c->dport;
	k->family = c->family;
}

static bool arm_of(void *ctx, const struct conn *c, struct mini_socket_arm *out)
{
	struct app *app = ctx;

	return tw_arm_of(app->tw, c, app->infer_now_ns, out);
}

/* Ended from its mini-socket: the transitions not seen are lost, unless a full ring lost them (counted there). */
static void on_close_inferred(void *ctx, const struct conn *c, uint32_t unseen)
{
	struct app *app = ctx;
	struct synfin_tw_key k;

	app->closes_inferred++;
	tw_key_of_conn(c, &k);
	if (tracer_take_armed(&app->tracer, &k))
		app->transitions_unseen += unseen;
	on_conn_ended(app, c, c->state_ns);
}

/*
 * A mini-socket armed long ago with no CLOSE of its connection: the kernel
 * made that transition without calling synfin's program, counting no miss
 * (seen, rarely, on 6.18: README), or its record was lost. Its connection
 * would otherwise stay followed, its lifecycle never written.
 */
static void infer_closes(struct app *app, uint64_t now)
{
	if (now < app->next_infer_ns || !tw_unclaimed(app->tw))
		return;
	app->next_infer_ns = now + INFER_INTERVAL_NS;
	app->infer_now_ns = now;
	tracker_infer_closes(app->tracker, arm_of, on_close_inferred, app);
}

static void housekeeping(struct app *app, uint64_t now)
{
	struct sink_status st = { 0 };

	infer_closes(app, now); /* before tw_poll() ends the mini-sockets it would claim */
	tw_poll(app->tw, now, on_tw_end, app);
	rst_await_flush(&app->rst_await, now, on_conn_released, app);
	if (app->flows)
		flows_flush(app->flows, now, FLOW_GRACE_NS, FLOW_IDLE_NS);
	if (listeners_poll(&app->listeners, now, false))
		count_synack_retrans(app);
	if (app->stuck_ns) {
		tracker_find_stuck(app->tracker, now, app->stuck_ns, STUCK_STATES, on_stuck, app);
		report_full_listeners(app, now);
	}
	if (app->sinks.wants_status)
		fill_status(app, &st);
	sinks_tick(&app->sinks, now, &st);
}

static void report_lost(struct app *app)
{
	struct tracer_counts n;
	struct loss l;

	if (tracer_counters(&app->tracer, &n) || n.lost + app->transitions_unseen == app->lost_seen)
		return;
	l = (struct loss){ .total = n.lost + app->transitions_unseen, .skipped = n.skipped,
			   .unseen = app->transitions_unseen };
	l.count = l.total - app->lost_seen;
	sinks_lost(&app->sinks, now_ns(), &l);
	app->lost_seen = l.total;
	app->skipped_seen = n.skipped;
	app->unseen_seen = l.unseen;
}

static bool output_broken(struct app *app)
{
	return output_error(&app->out) != 0;
}

/* Everything the rings hold (per-CPU rings: up to now, see cpuring.h). */
static void consume_all(struct app *app)
{
	ring_buffer__consume(app->tracer.rb);
	if (app->tracer.cpu.nrings)
		cpu_rings_drain(&app->tracer.cpu, now_ns(), on_event, app);
}

static int poll_interval_ms(void)
{
	const char *env = getenv("SYNFIN_POLL_MS");
	long ms = env ? strtol(env, NULL, 10) : POLL_MS;

	return ms >= 1 && ms <= POLL_MS_MAX ? (int)ms : POLL_MS;
}

/* SIGUSR1: what is buffered goes out now; with --summary, the summary so far. */
static void report_now(struct app *app, uint64_t now)
{
	report_requested = 0;
	sinks_report(&app->sinks, now, false);
	ob_flush(&app->out.ob);
}

/*
 * To a terminal, every pass writes. To a pipe, output goes in blocks but is
 * never held more than a second: the first record buffered since the last
 * write sets when it must go (*due), whatever the passes in between did.
 */
static void flush_when_due(struct app *app, uint64_t now, uint64_t *due)
{
	if (!app->out.ob.len) {
		*due = 0;
	} else if (app->tty || (*due && now >= *due)) {
		ob_flush(&app->out.ob);
		*due = 0;
	} else if (!*due) {
		*due = now + PIPE_FLUSH_NS;
	}
}

/* The poll interval, cut short when buffered output falls due first. */
static int poll_timeout_ms(const struct app *app, uint64_t now, uint64_t due)
{
	uint64_t left_ms;

	if (!due)
		return app->poll_ms;
	left_ms = due > now ? (due - now + 999999) / 1000000 : 0;
	return left_ms < (uint64_t)app->poll_ms ? (int)left_ms : app->poll_ms;
}

/* errno when a look into another namespace (TIME_WAIT, listeners, holders) left us stuck there. */
static int netns_fatal(const struct app *app)
{
	if (tw_fatal(app->tw))
		return tw_fatal(app->tw);
	return app->listeners.fatal ? app->listeners.fatal : app->scan_fatal;
}

/* Until a signal, the deadline or a broken output; 0, or 1 when the ring could not be read. */
static int trace_loop(struct app *app, uint64_t deadline_ns)
{
	uint64_t next_check = now_ns() + COUNTER_CHECK_NS, flush_due = 0;
	uint64_t next_housekeeping = 0;
	int timeout_ms = app->poll_ms;

	while (!exiting && !output_broken(app)) {
		int err = ring_buffer__poll(app->tracer.rb, timeout_ms);
		uint64_t now;

		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "synfin: failed to read the ring buffer: %s\n", strerror(-err));
			return 1;
		}
		consume_all(app);
		now = now_ns();
		if (now >= next_check) {
			report_lost(app);
			next_check = now + COUNTER_CHECK_NS;
		}
		if (now >= next_housekeeping) {
			housekeeping(app, now);
			next_housekeeping = now + HOUSEKEEPING_NS;
		}
		if (netns_fatal(app)) {
			fprintf(stderr, "synfin: cannot return to our own network namespace after "
					"looking into another: %s\n", strerror(netns_fatal(app)));
			return 1;
		}
		if (report_requested)
			report_now(app, now);
		flush_when_due(app, now, &flush_due);
		timeout_ms = poll_timeout_ms(app, now, flush_due);
		if (deadline_ns && now >= deadline_ns)
			break;
	}
	return 0;
}

/* Whatever the rings still hold, the held flows, the last summary: out. */
static void drain_at_exit(struct app *app)
{
	if (output_broken(app))
		return;
	consume_all(app);
	listeners_poll(&app->listeners, now_ns(), true);
	count_synack_retrans(app);
	report_lost(app);
	tw_release_held(app->tw);
	rst_await_flush(&app->rst_await, UINT64_MAX, on_conn_released, app);
	if (app->flows)
		flows_flush(app->flows, now_ns(), 0, 0);
	sinks_report(&app->sinks, now_ns(), true);
	ob_flush(&app->out.ob);
}

/* EPIPE is the reader going away (| head): a normal end. Any other error is one. */
static int output_status(const struct app *app)
{
	int err = output_error(&app->out);

	if (!err || err == EPIPE)
		return 0;
	fprintf(stderr, "synfin: write error on stdout: %s\n", strerror(err));
	return 1;
}

/* What the secondary work (owners, drops, listeners) could not keep up with. */
static void print_secondary_losses(struct app *app, const struct tracer_counts *n)
{
	if (n && n->owner_lost)
		fprintf(stderr, "synfin: %llu accept and exit records lost (ring buffer full): "
				"those sockets may name their previous holder\n",
			(unsigned long long)n->owner_lost);
	if (app->scans_skipped)
		fprintf(stderr, "synfin: %llu holder rescans skipped (over %d a second, or over "
				"a tenth of the reader's time): those sockets were named from the "
				"scan before\n", (unsigned long long)app->scans_skipped,
			SCANS_PER_WINDOW);
	if (n && n->drop_lost)
		fprintf(stderr, "synfin: %llu drop records lost (ring buffer full)\n",
			(unsigned long long)n->drop_lost);
	if (app->drops.evicted)
		fprintf(stderr, "synfin: drops of %llu tuples left the join table unclaimed (it "
				"holds %d; a flood's spoofed tuples have no connection, but a "
				"connection of theirs that ended later lacks them)\n",
			(unsigned long long)app->drops.evicted, DROP_LOG_LEN);
	if (app->listeners.untracked)
		fprintf(stderr, "synfin: %llu listening sockets not looked at (more than %d)\n",
			(unsigned long long)app->listeners.untracked, LISTENERS_MAX);
}

static double ms_of(struct timeval tv)
{
	return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0;
}

/*
 * Why the reader fell behind, from its own accounts since tracing began. On a
 * kernel without IRQ_TIME_ACCOUNTING, softirq work that interrupts the reader
 * is charged to it as kernel time: kernel time far above user time means its
 * CPU went to the kernel's work, not to reading; little CPU and many
 * preemptions, that it was not given the CPU.
 */
static void print_reader_accounts(const struct app *app)
{
	struct rusage now;

	if (getrusage(RUSAGE_THREAD, &now))
		return;
	fprintf(stderr, "synfin: while tracing, the reader ran %.0f ms in user space and %.0f ms "
			"in the kernel, and was preempted %ld times\n",
		ms_of(now.ru_utime) - ms_of(app->reader_start.ru_utime),
		ms_of(now.ru_stime) - ms_of(app->reader_start.ru_stime),
		now.ru_nivcsw - app->reader_start.ru_nivcsw);
}

static void print_exit_summary(struct app *app)
{
	uint64_t evicted = tracker_evicted(app->tracker);
	uint64_t ends_unseen = tracker_ends_unseen(app->tracker);
	uint32_t held = tw_held(app->tw);
	uint64_t untracked = tw_untracked(app->tw), skipped = tw_skipped(app->tw);
	struct tracer_counts n;
	bool counted = !tracer_counters(&app->tracer, &n);

	if (app->lost_seen > app->skipped_seen + app->unseen_seen) {
		fprintf(stderr, "synfin: %llu events lost (ring buffer full): try a larger "
				"--ringbuf-size\n",
			(unsigned long long)(app->lost_seen - app->skipped_seen - app->unseen_seen));
		print_reader_accounts(app);
	}
	if (app->skipped_seen)
		fprintf(stderr, "synfin: %llu events lost (the kernel skipped synfin's program "
				"where it would have run nested on one CPU)\n",
			(unsigned long long)app->skipped_seen);
	if (app->closes_inferred)
		fprintf(stderr, "synfin: %llu connections ended from their TIME_WAIT mini-socket, "
				"their CLOSE not seen (\"close_inferred\"); %llu events lost: the "
				"kernel never ran synfin's program for them\n",
			(unsigned long long)app->closes_inferred,
			(unsigned long long)app->unseen_seen);
	if (evicted)
		fprintf(stderr, "synfin: %llu connections evicted (more than --max-conns at once)\n",
			(unsigned long long)evicted);
	if (ends_unseen)
		fprintf(stderr, "synfin: %llu connections left out: their socket was reused "
				"before their CLOSE was traced (the kernel ran no program there)\n",
			(unsigned long long)ends_unseen);
	if (held)
		fprintf(stderr, "synfin: %u connections in TIME_WAIT at exit\n", held);
	if (counted && n.tw_lost)
		fprintf(stderr, "synfin: %llu TIME_WAIT timer records lost (ring buffer full): those "
				"TIME_WAIT ends are reported unseen; try a larger --ringbuf-size\n",
			(unsigned long long)n.tw_lost);
	if (skipped)
		fprintf(stderr, "synfin: %llu connections got no TIME_WAIT: the kernel's table was "
				"full (net.ipv4.tcp_max_tw_buckets)\n", (unsigned long long)skipped);
	print_secondary_losses(app, counted ? &n : NULL);
	if (untracked && tw_mode_of(app->tw) == TW_VIA_TIMERS)
		fprintf(stderr, "synfin: %llu TIME_WAIT connections not followed (more than %u "
				"at once)\n", (unsigned long long)untracked, TW_TIMED_TABLE_CAP);
	else if (untracked)
		fprintf(stderr, "synfin: %llu TIME_WAIT connections not followed (more than %d "
				"at once, or over %d a second)\n",
			(unsigned long long)untracked, TW_TABLE_CAP, TW_MAX_NEW_PER_SECOND);
}

/* --metrics, once the tracer holds its file descriptors: the server sizes its
 * connection limit from what is left. */
/* --metrics, once the tracer holds its file descriptors: the server sizes its
 * connection limit from what is left. */
static int start_metrics(struct app *app, const struct options *opts)
{
	struct metrics_server *server;
	char why[256];

	server = metrics_start(opts->metrics_host, opts->metrics_port, why, sizeof(why));
	if (!server) {
		fprintf(stderr, "synfin: %s\n", why);
		return 1;
	}
	app->metrics = malloc(sizeof(*app->metrics));
	if (!app->metrics) {
		metrics_stop(server);
		return 1;
	}
	metrics_sink_init(app->metrics, server);
	sinks_add(&app->sinks, &app->metrics->sink);
	return 0;
}

/* The records sink first (it takes errors and notices in every mode), then what options add. */
static int add_sinks(struct app *app, const struct options *opts)
{
	enum output_mode mode = opts->summary ? OUTPUT_NOTICES : opts->life ? OUTPUT_LIFE : OUTPUT_ALL;

	app->sinks.pid = opts->pid;
	output_init(&app->out, STDOUT_FILENO, opts->json, mode);
	app->out.relative = opts->relative;
	app->out.color = app->tty;
	sinks_add(&app->sinks, &app->out.sink);
	if (opts->ladder && !opts->json) {
		ladder_sink_init(&app->ladder, &app->out);
		sinks_add(&app->sinks, &app->ladder.sink);
	}
	if (opts->summary) {
		app->summary = malloc(sizeof(*app->summary));
		if (!app->summary)
			return 1;
		summary_sink_init(app->summary, &app->out.ob, opts->json,
				  opts->interval_s * 1000000000ull, now_ns());
		app->summary->listeners = &app->listeners;
		sinks_add(&app->sinks, &app->summary->sink);
	}
	return 0;
}

/* Everything between the options and the trace loop; 0 or an exit status. */
static int start(struct app *app, const struct options *opts)
{
	int err = tracer_start(&app->tracer, opts, on_event, app);

	app->only_port = opts->sport ? opts->sport : opts->port;
	app->only_netns = opts->netns;

	/* After attaching: a socket from before then is named by who holds it now. */
	if (!err && procscan(&app->holders, "/proc", 0, &app->scan_fatal))
		fprintf(stderr, "synfin: cannot read /proc (%s): sockets from before the start "
				"name no holder\n", strerror(errno));
	tracker_use_holders(app->tracker, &app->holders);
	watch_listeners(app);
	if (!err && drop_log_init(&app->drops)) {
		fprintf(stderr, "synfin: out of memory for the drop log\n");
		err = 1;
	}
	if (!err && !app->tracer.accept)
		fprintf(stderr, "synfin: no syscalls:sys_exit_accept4 in tracefs: an accepted "
				"socket is named after its listener's holder until it is closed\n");
	if (!err) {
		bool timed = app->tracer.tw_timers;

		if (!big_ahead_start())
			fprintf(stderr, "synfin: no thread to fault in the TIME_WAIT table ahead of "
					"use: its pages fault on first touch\n");
		app->tw = tw_new(timed ? TW_TIMED_TABLE_CAP : TW_TABLE_CAP,
				 timed ? TW_VIA_TIMERS : TW_VIA_SOCK_DIAG);
		if (!app->tw) {
			fprintf(stderr, "synfin: out of memory for the TIME_WAIT table\n");
			err = 1;
		}
	}
	if (!err && opts->nifaces) {
		app->flows = flows_new(FLOW_TABLE_CAP, on_flow_done, app);
		err = !app->flows ? 1 : wire_start(&app->wire, opts, app->tracer.features.tcx,
								   app->tracer.rb, on_segment, app);
	}
	if (!err)
		err = add_sinks(app, opts);
	if (!err && opts->metrics)
		err = start_metrics(app, opts);
	return err;
}

static void stop(struct app *app)
{
	if (app->metrics)
		metrics_stop(app->metrics->server);
	free(app->metrics);
	wire_stop(&app->wire);
	tracer_stop(&app->tracer);
	free(app->summary);
	flows_free(app->flows);
	tw_free(app->tw);
	big_ahead_stop();
	tracker_free(app->tracker);
	holders_free(&app->holders);
	drop_log_free(&app->drops);
}

int main(int argc, char **argv)
{
	static struct app app;
	struct options opts;
	int err;

	if (reopen_closed_std_fds())
		return 1;
	switch (options_parse(argc, argv, &opts)) {
	case OPTIONS_RUN:
		break;
	case OPTIONS_DONE:
		return 0;
	default:
		return 2;
	}
	raise_fd_limit();
	app.tty = isatty(STDOUT_FILENO);
	app.tracker = tracker_new(opts.max_conns);
	app.stuck_ns = opts.stuck_s * 1000000000ull;
	app.poll_ms = poll_interval_ms();
	if (!app.tracker) {
		fprintf(stderr, "synfin: out of memory for %u tracked connections\n", opts.max_conns);
		stop(&app);
		return 1;
	}
	install_signals();
	err = start(&app, &opts);
	if (!err) {
		sinks_start(&app.sinks);
		fprintf(stderr, "Tracing TCP connections... Hit Ctrl-C to end.\n");
		getrusage(RUSAGE_THREAD, &app.reader_start);
		err = trace_loop(&app, opts.duration_s ? now_ns() + opts.duration_s * 1000000000ull : 0);
		drain_at_exit(&app);
		print_exit_summary(&app);
		wire_report(&app.wire);
		if (!err)
			err = output_status(&app);
	}
	stop(&app);
	return err;
}
