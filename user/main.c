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
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "loader.h"
#include "metrics.h"
#include "flows.h"
#include "wire.h"
#include "options.h"
#include "output.h"
#include "summary.h"
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
/* Segments that trail a flow's last state change (the final ACK) get this long to arrive. */
#define FLOW_GRACE_NS 200000000ull
#define FLOW_IDLE_NS 10000000000ull
#define FLOW_TABLE_CAP 4096
/* --stuck watches the states an application or a peer can leave a connection in. */
#define STUCK_STATES ((1u << SF_TCP_CLOSE_WAIT) | (1u << SF_TCP_FIN_WAIT2) | (1u << SF_TCP_SYN_SENT))

/* The layout is the contract with the BPF side: no hidden padding. */
_Static_assert(sizeof(struct synfin_event) == 120, "synfin_event layout changed");

struct app {
	struct output out;
	struct tracker *tracker;
	struct tw_table *tw;
	struct flow_table *flows; /* NULL without -i: no packet layer */
	struct summary *summary;  /* --summary, else NULL */
	struct metrics_server *metrics; /* --metrics, else NULL */
	struct metrics_snapshot msnap;
	uint64_t interval_ns, next_summary_ns, last_summary_ns;
	struct tracer tracer;
	struct wire wire;
	uint64_t lost_seen, skipped_seen; /* last reported: lost in all, and of them skipped */
	uint64_t stuck_ns; /* 0 = --stuck off */
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

static int on_state(struct app *app, const struct synfin_event *e)
{
	struct transition tr;

	tracker_feed(app->tracker, e, &tr);
	app->msnap.events++;
	if (tr.ended && app->metrics)
		metrics_snapshot_add_conn(&app->msnap, tr.ended);
	if (tr.ended && time_wait_name(tr.ended))
		tw_add(app->tw, tr.ended);
	if (app->summary) {
		if (tr.ended)
			summary_add_conn(app->summary, tr.ended);
		return 0;
	}
	if (app->flows) {
		flows_note_state(app->flows, e);
		/* With the wire view, the record waits for its flow's last segments. */
		if (tr.ended && flows_hold_conn(app->flows, tr.ended, e->ts_ns))
			tr.ended = NULL;
	}
	/* A negative return stops ring_buffer__consume(): the reader is gone. */
	return output_transition(&app->out, e, &tr) ? -1 : 0;
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct app *app = ctx;
	const struct synfin_event *e = data;

	if (size < sizeof(*e) || e->type != SF_EV_STATE)
		return 0;
	return on_state(app, e);
}

static int on_segment(void *ctx, void *data, size_t size)
{
	struct app *app = ctx;
	const struct synfin_segment *s = data;

	if (size < sizeof(*s) || s->type != SF_EV_SEGMENT)
		return 0;
	if (app->summary) /* the summary counts lifecycles, not segments */
		return 0;
	flows_add_segment(app->flows, s);
	if (!app->out.life_only) {
		app->out.fmt->packet(&app->out, s, wire_ifname(&app->wire, s->ifindex));
		return ob_record_done(&app->out.ob) ? -1 : 0;
	}
	return 0;
}

/* A flow is finished: its lifecycle records with their wire view, and the ladder. */
static void on_flow_done(void *ctx, const struct flow *f)
{
	struct app *app = ctx;

	for (int side = 0; side < 2; side++) {
		if (!(f->held_sides & (1 << side)))
			continue;
		app->out.fmt->conn_wire(&app->out, &f->conns[side], f);
		ob_record_done(&app->out.ob);
	}
	if (app->out.ladder && app->out.fmt == &text_formatter && f->held_sides) {
		ladder_write(&app->out, f);
		ob_record_done(&app->out.ob);
	}
}

static void on_stuck(void *ctx, const struct conn *c, uint64_t now_ns)
{
	struct app *app = ctx;

	app->out.fmt->stuck(&app->out, c, now_ns);
	ob_record_done(&app->out.ob);
}

static void on_tw_end(void *ctx, const struct tw_entry *e, enum tw_end how, uint64_t now_ns)
{
	struct app *app = ctx;

	if (app->summary) {
		if (how != TW_END_UNSEEN)
			summary_add_time_wait(app->summary, (now_ns - e->entered_ns) / 1000);
		return;
	}
	app->out.fmt->tw_end(&app->out, e, how, now_ns);
	ob_record_done(&app->out.ob);
}

static void write_summary(struct app *app, uint64_t now)
{
	summary_write(app->summary, &app->out.ob, app->out.fmt == &json_formatter, now,
		      now - app->last_summary_ns);
	summary_reset(app->summary);
	app->last_summary_ns = now;
}

static void publish_metrics(struct app *app)
{
	struct tracer_counts n;

	if (!tracer_counters(&app->tracer, &n))
		app->msnap.lost = n.lost;
	app->msnap.evicted = tracker_evicted(app->tracker);
	app->msnap.time_wait = tw_held(app->tw);
	tracker_state_counts(app->tracker, app->msnap.state_count);
	metrics_publish(app->metrics, &app->msnap);
}

/* Work on a slower clock than the ring: TIME_WAIT lookups, --stuck, --interval. */
static void housekeeping(struct app *app, uint64_t now)
{
	if (app->summary && app->interval_ns && now >= app->next_summary_ns) {
		write_summary(app, now);
		app->next_summary_ns = now + app->interval_ns;
	}
	tw_poll(app->tw, now, on_tw_end, app);
	if (app->metrics)
		publish_metrics(app);
	if (app->flows)
		flows_flush(app->flows, now, FLOW_GRACE_NS, FLOW_IDLE_NS);
	if (app->stuck_ns)
		tracker_find_stuck(app->tracker, now, app->stuck_ns, STUCK_STATES, on_stuck, app);
}

static void report_lost(struct app *app)
{
	struct tracer_counts n;

	if (tracer_counters(&app->tracer, &n) || n.lost == app->lost_seen)
		return;
	app->out.fmt->lost(&app->out, now_ns(), n.lost - app->lost_seen, n.lost, n.skipped);
	ob_record_done(&app->out.ob);
	app->lost_seen = n.lost;
	app->skipped_seen = n.skipped;
}

static bool output_broken(struct app *app)
{
	return app->out.ob.err != 0;
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
	if (app->summary) {
		write_summary(app, now);
		app->next_summary_ns = now + app->interval_ns;
	}
	ob_flush(&app->out.ob);
}

/* Until a signal, the deadline or a broken output; 0, or 1 when the ring could not be read. */
static int trace_loop(struct app *app, uint64_t deadline_ns)
{
	uint64_t next_check = now_ns() + COUNTER_CHECK_NS, last_flush = now_ns();
	uint64_t next_housekeeping = 0;

	while (!exiting && !output_broken(app)) {
		int err = ring_buffer__poll(app->tracer.rb, app->poll_ms);
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
		if (tw_fatal(app->tw)) {
			fprintf(stderr, "synfin: cannot return to our own network namespace after "
					"following TIME_WAIT in another: %s\n", strerror(tw_fatal(app->tw)));
			return 1;
		}
		if (report_requested)
			report_now(app, now);
		/* Line-ish to a terminal; to a pipe in blocks, but never older than a second. */
		if (app->tty || now - last_flush >= PIPE_FLUSH_NS) {
			ob_flush(&app->out.ob);
			last_flush = now;
		}
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
	report_lost(app);
	if (app->flows)
		flows_flush(app->flows, now_ns(), 0, 0);
	if (app->summary)
		write_summary(app, now_ns());
	ob_flush(&app->out.ob);
}

/* EPIPE is the reader going away (| head): a normal end. Any other error is one. */
static int output_status(const struct app *app)
{
	int err = app->out.ob.err;

	if (!err || err == EPIPE)
		return 0;
	fprintf(stderr, "synfin: write error on stdout: %s\n", strerror(err));
	return 1;
}

static void print_exit_summary(struct app *app)
{
	uint64_t evicted = tracker_evicted(app->tracker);
	uint32_t held = tw_held(app->tw);
	uint64_t untracked = tw_untracked(app->tw);

	if (app->lost_seen > app->skipped_seen)
		fprintf(stderr, "synfin: %llu events lost (ring buffer full): try a larger "
				"--ringbuf-size\n",
			(unsigned long long)(app->lost_seen - app->skipped_seen));
	if (app->skipped_seen)
		fprintf(stderr, "synfin: %llu events lost (the kernel skipped synfin's program "
				"where it would have run nested on one CPU)\n",
			(unsigned long long)app->skipped_seen);
	if (evicted)
		fprintf(stderr, "synfin: %llu connections evicted (more than --max-conns at once)\n",
			(unsigned long long)evicted);
	if (held)
		fprintf(stderr, "synfin: %u connections in TIME_WAIT at exit\n", held);
	if (untracked)
		fprintf(stderr, "synfin: %llu TIME_WAIT connections not followed (more than %d "
				"at once, or over %d a second)\n",
			(unsigned long long)untracked, TW_TABLE_CAP, TW_MAX_NEW_PER_SECOND);
}

/* --metrics, once the tracer holds its file descriptors: the server sizes its
 * connection limit from what is left. */
static int start_metrics(struct app *app, const struct options *opts)
{
	char why[256];

	app->metrics = metrics_start(opts->metrics_host, opts->metrics_port, why, sizeof(why));
	if (app->metrics)
		return 0;
	fprintf(stderr, "synfin: %s\n", why);
	return 1;
}

/* Everything between the options and the trace loop; 0 or an exit status. */
static int start(struct app *app, const struct options *opts)
{
	int err = tracer_start(&app->tracer, opts, on_event, app);

	if (!err && opts->nifaces) {
		app->flows = flows_new(FLOW_TABLE_CAP, on_flow_done, app);
		err = !app->flows ? 1 : wire_start(&app->wire, opts, app->tracer.rb, on_segment, app);
	}
	if (!err && opts->metrics)
		err = start_metrics(app, opts);
	if (!err && opts->summary) {
		app->summary = calloc(1, sizeof(*app->summary));
		app->interval_ns = opts->interval_s * 1000000000ull;
		app->last_summary_ns = now_ns();
		app->next_summary_ns = app->last_summary_ns + app->interval_ns;
		err = !app->summary;
	}
	return err;
}

static void stop(struct app *app)
{
	metrics_stop(app->metrics);
	wire_stop(&app->wire);
	tracer_stop(&app->tracer);
	free(app->summary);
	flows_free(app->flows);
	tw_free(app->tw);
	tracker_free(app->tracker);
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
	output_init(&app.out, STDOUT_FILENO, opts.json, opts.life);
	app.tracker = tracker_new(opts.max_conns);
	app.tw = tw_new(TW_TABLE_CAP);
	app.stuck_ns = opts.stuck_s * 1000000000ull;
	app.poll_ms = poll_interval_ms();
	if (!app.tracker || !app.tw) {
		fprintf(stderr, "synfin: out of memory for %u tracked connections\n", opts.max_conns);
		stop(&app);
		return 1;
	}
	install_signals();
	err = start(&app, &opts);
	if (!err) {
		app.out.ladder = opts.ladder;
		app.out.relative = opts.relative;
		app.out.color = app.tty;
		if (!app.summary)
			app.out.fmt->header(&app.out);
		ob_flush(&app.out.ob);
		fprintf(stderr, "Tracing TCP connections... Hit Ctrl-C to end.\n");
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
