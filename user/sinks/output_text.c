/* Readable columns for people, in the spirit of tcpstates/tcplife. */
#include "output.h"
#include <string.h>
#include <time.h>
#include "names.h"

#define W_PID 8
#define W_COMM 16
#define W_ENDPOINT 23
#define W_ROLE 8
#define W_ENDING 34 /* "reset by remote: timewait socket" */

/* HH:MM:SS.uuuuuu local time; localtime_r only when the second changes. */
static void text_time(struct output *o, uint64_t ts_ns)
{
	static time_t cached_sec = -1;
	static char hms[9] = "??:??:??";
	/* Unsigned: a wrapped value prints a wrong time, never undefined behaviour. */
	uint64_t real = ts_ns + (uint64_t)o->mono_to_real_ns;
	time_t sec = (time_t)(real / 1000000000);
	char frac[8];
	uint64_t us = real % 1000000000 / 1000;

	if (sec != cached_sec) {
		struct tm tm;

		if (localtime_r(&sec, &tm))
			strftime(hms, sizeof(hms), "%H:%M:%S", &tm);
		cached_sec = sec;
	}
	ob_write(&o->ob, hms, 8);
	frac[0] = '.';
	for (int i = 6; i >= 1; i--, us /= 10)
		frac[i] = (char)('0' + us % 10);
	frac[7] = ' ';
	ob_write(&o->ob, frac, 8);
}

static void text_endpoint(struct output *o, uint8_t family, const uint8_t *addr, uint16_t port)
{
	size_t mark = o->ob.len;

	if (family != 2)
		ob_putc(&o->ob, '[');
	ob_addr(&o->ob, family, addr);
	if (family != 2)
		ob_putc(&o->ob, ']');
	ob_putc(&o->ob, ':');
	ob_u64(&o->ob, port);
	ob_pad_from(&o->ob, mark, W_ENDPOINT);
	ob_putc(&o->ob, ' ');
}

static void text_owner(struct output *o, uint32_t pid, const char *comm)
{
	size_t mark = o->ob.len;

	if (pid)
		ob_u64(&o->ob, pid);
	else
		ob_putc(&o->ob, '-');
	ob_pad_from(&o->ob, mark, W_PID);
	mark = o->ob.len;
	if (pid && comm[0])
		ob_text_str(&o->ob, comm, SYNFIN_COMM_LEN);
	else
		ob_putc(&o->ob, '-');
	ob_pad_from(&o->ob, mark, W_COMM);
	ob_putc(&o->ob, ' ');
}

static void text_ms(struct output *o, int64_t us)
{
	if (us < 0)
		ob_putc(&o->ob, '-');
	else
		ob_fixed(&o->ob, (uint64_t)us, 3);
}

static void text_ms_unit(struct output *o, int64_t us)
{
	text_ms(o, us);
	if (us >= 0)
		ob_puts(&o->ob, "ms");
}

static void text_header(struct output *o)
{
	if (o->mode == OUTPUT_LIFE)
		ob_puts(&o->ob, "TIME            PID     COMM             ROLE     LOCAL                   "
				"REMOTE                  HS_MS     LIFE_MS   END                       "
				"         STATES\n");
	else
		ob_puts(&o->ob, "TIME            PID     COMM             LOCAL                   "
				"REMOTE                  TRANSITION                 MS\n");
	ob_record_done(&o->ob);
}

static void text_state(struct output *o, const struct synfin_event *e, const struct transition *tr)
{
	size_t mark;

	text_time(o, e->ts_ns);
	text_owner(o, tr->pid, tr->comm);
	text_endpoint(o, e->family, e->saddr, e->sport);
	text_endpoint(o, e->family, e->daddr, e->dport);
	mark = o->ob.len;
	ob_puts(&o->ob, state_name(e->oldstate));
	ob_puts(&o->ob, " -> ");
	ob_puts(&o->ob, state_name(e->newstate));
	ob_pad_from(&o->ob, mark, 26);
	ob_putc(&o->ob, ' ');
	text_ms(o, tr->delta_us);
	ob_putc(&o->ob, '\n');
}

static void text_states(struct output *o, const struct conn *c)
{
	for (int i = 0; i < c->nstates; i++) {
		if (i)
			ob_putc(&o->ob, '>');
		ob_puts(&o->ob, state_name(c->states[i]));
	}
	if (c->partial)
		ob_puts(&o->ob, " (partial)");
	if (c->flags & CONN_CLOSE_INFERRED)
		ob_puts(&o->ob, " (close inferred)");
}

/* A kernel reason as words: "tcp_abort_on_close" -> "abort on close". */
static void text_reason(struct output *o, const char *reason)
{
	if (!strncmp(reason, "tcp_", 4))
		reason += 4;
	for (; *reason; reason++)
		ob_putc(&o->ob, *reason == '_' ? ' ' : *reason);
}

static const char *time_wait_words(const char *time_wait)
{
	if (!strcmp(time_wait, "entered"))
		return "TIME_WAIT";
	if (!strcmp(time_wait, "fin_wait2"))
		return "FIN_WAIT2, no FIN back yet";
	return "no TIME_WAIT (table full)";
}

/* ", 3 SYN sent dropped (netfilter_drop)" for each kind of drop. */
static void text_drops(struct output *o, const struct lifecycle *l)
{
	for (uint8_t i = 0; i < l->ndrops; i++) {
		const struct conn_drop *d = &l->drops[i];
		const char *reason = drop_reason_name(d->reason);

		ob_puts(&o->ob, ", ");
		ob_u64(&o->ob, d->count);
		ob_putc(&o->ob, ' ');
		ob_puts(&o->ob, drop_segment_name(d->segment));
		ob_puts(&o->ob, d->sent ? " sent dropped" : " received dropped");
		if (reason) {
			ob_puts(&o->ob, " (");
			ob_puts(&o->ob, reason);
			ob_putc(&o->ob, ')');
		}
	}
}

/* ", 3 SYN dropped at full listener :8080 (queue 2/1)" */
static void text_full_listener(struct output *o, const struct lifecycle *l)
{
	if (!l->full_listener)
		return;
	ob_puts(&o->ob, ", ");
	ob_u64(&o->ob, l->full_listener_syns);
	ob_puts(&o->ob, " SYN dropped at full listener :");
	ob_u64(&o->ob, l->full_listener->port);
	ob_puts(&o->ob, " (queue ");
	ob_u64(&o->ob, l->full_listener->queue);
	ob_putc(&o->ob, '/');
	ob_u64(&o->ob, l->full_listener->backlog);
	ob_putc(&o->ob, ')');
}

/* How it ended, as a person says it: "closed, local first, TIME_WAIT",
 * "reset by local: abort on close". */
static void text_ending(struct output *o, const struct lifecycle *l)
{
	const char *closer = closer_name(l->closer);

	ob_puts(&o->ob, outcome_name(l->outcome) ?: "ended");
	if (l->reset_by) {
		/* "reset by remote: ...", or "timeout, reset by local: keepalive timeout" */
		ob_puts(&o->ob, l->outcome == OUTCOME_RESET ? " by " : ", reset by ");
		ob_puts(&o->ob, l->reset_by);
		if (l->reset_reason) {
			ob_puts(&o->ob, ": ");
			text_reason(o, l->reset_reason);
		}
	} else if (closer) {
		ob_puts(&o->ob, ", ");
		ob_puts(&o->ob, l->closer == CLOSER_BOTH ? "both at once" : closer);
		if (l->closer != CLOSER_BOTH)
			ob_puts(&o->ob, " first");
	}
	if (l->time_wait) {
		ob_puts(&o->ob, ", ");
		ob_puts(&o->ob, time_wait_words(l->time_wait));
	}
	text_drops(o, l);
	text_full_listener(o, l);
}

static void text_padded_ms(struct output *o, int64_t us, size_t width)
{
	size_t mark = o->ob.len;

	text_ms(o, us);
	ob_pad_from(&o->ob, mark, width);
	ob_putc(&o->ob, ' ');
}

static void text_conn(struct output *o, const struct lifecycle *l)
{
	const struct conn *c = l->c;
	bool life_only = o->mode == OUTPUT_LIFE;
	size_t mark;

	text_time(o, c->state_ns);
	text_owner(o, c->pid, c->comm);
	if (life_only) {
		mark = o->ob.len;
		ob_puts(&o->ob, role_name(c->role));
		ob_pad_from(&o->ob, mark, W_ROLE);
		ob_putc(&o->ob, ' ');
	}
	text_endpoint(o, c->family, c->saddr, c->sport);
	text_endpoint(o, c->family, c->daddr, c->dport);
	if (life_only) {
		text_padded_ms(o, l->handshake_us, 9);
		text_padded_ms(o, l->duration_us, 9);
		mark = o->ob.len;
		text_ending(o, l);
		ob_pad_from(&o->ob, mark, W_ENDING);
		ob_putc(&o->ob, ' ');
		text_states(o, c);
		ob_putc(&o->ob, '\n');
		return;
	}
	ob_puts(&o->ob, "= ");
	ob_puts(&o->ob, role_name(c->role));
	ob_putc(&o->ob, ' ');
	text_ending(o, l);
	ob_puts(&o->ob, ": ");
	text_states(o, c);
	ob_puts(&o->ob, " handshake=");
	text_ms_unit(o, l->handshake_us);
	ob_puts(&o->ob, " life=");
	text_ms_unit(o, l->duration_us);
	ob_putc(&o->ob, '\n');
}

static void text_lost(struct output *o, uint64_t ts_ns, const struct loss *l)
{
	text_time(o, ts_ns);
	ob_puts(&o->ob, "LOST ");
	ob_u64(&o->ob, l->count);
	ob_puts(&o->ob, " events (");
	ob_u64(&o->ob, l->total);
	ob_puts(&o->ob, " so far: ");
	ob_u64(&o->ob, l->total - l->skipped - l->unseen);
	ob_puts(&o->ob, " ring buffer full, try a larger --ringbuf-size; ");
	ob_u64(&o->ob, l->skipped);
	ob_puts(&o->ob, " skipped by the kernel, a run nested on one CPU; ");
	ob_u64(&o->ob, l->unseen);
	ob_puts(&o->ob, " never handed to synfin by the kernel)\n");
}

static void text_stuck(struct output *o, const struct conn *c, uint64_t now_ns)
{
	text_time(o, now_ns);
	text_owner(o, c->pid, c->comm);
	text_endpoint(o, c->family, c->saddr, c->sport);
	text_endpoint(o, c->family, c->daddr, c->dport);
	ob_puts(&o->ob, "! stuck in ");
	ob_puts(&o->ob, state_name(c->states[c->nstates - 1]));
	ob_puts(&o->ob, " for ");
	ob_fixed(&o->ob, (now_ns - c->state_ns) / 1000000, 3);
	ob_puts(&o->ob, "s\n");
}

static void text_tw_end(struct output *o, const struct tw_entry *e, enum tw_end how,
			uint64_t now_ns)
{
	text_time(o, now_ns);
	text_owner(o, e->pid, e->comm);
	text_endpoint(o, e->family, e->saddr, e->sport);
	text_endpoint(o, e->family, e->daddr, e->dport);
	ob_puts(&o->ob, "~ TIME_WAIT ");
	ob_puts(&o->ob, tw_end_name(how));
	if (how != TW_END_UNSEEN) {
		ob_puts(&o->ob, " after ");
		ob_fixed(&o->ob, (now_ns - e->entered_ns) / 1000000, 3);
		ob_putc(&o->ob, 's');
	}
	ob_putc(&o->ob, '\n');
}

/* The wire view of a lifecycle is the ladder, which is drawn once per flow. */
/* One segment, in the spirit of tcpdump -S. */
static void text_packet(struct output *o, const struct synfin_segment *s, const char *ifname)
{
	char flags[10];

	text_time(o, s->ts_ns);
	ob_text_str(&o->ob, ifname, 16);
	ob_puts(&o->ob, s->dir ? " out " : " in  ");
	text_endpoint(o, s->family, s->saddr, s->sport);
	ob_puts(&o->ob, "> ");
	text_endpoint(o, s->family, s->daddr, s->dport);
	ob_puts(&o->ob, "Flags [");
	ob_puts(&o->ob, tcp_flags_str(s->flags, flags));
	ob_puts(&o->ob, "], seq ");
	ob_u64(&o->ob, s->seq);
	if (s->flags & SF_TCPF_ACK) {
		ob_puts(&o->ob, ", ack ");
		ob_u64(&o->ob, s->ack);
	}
	ob_puts(&o->ob, ", win ");
	ob_u64(&o->ob, s->win);
	ob_puts(&o->ob, ", length ");
	ob_u64(&o->ob, s->len);
	ob_putc(&o->ob, '\n');
}

/* A record of a segment with no socket of its own: "! WHAT (reason)". */
static void text_segment_note(struct output *o, const struct synfin_event *e, const char *what,
			      const char *suffix, const char *reason)
{
	text_time(o, e->ts_ns);
	text_owner(o, 0, "");
	text_endpoint(o, e->family, e->saddr, e->sport);
	text_endpoint(o, e->family, e->daddr, e->dport);
	ob_puts(&o->ob, "! ");
	ob_puts(&o->ob, what);
	ob_puts(&o->ob, suffix);
	if (reason) {
		ob_puts(&o->ob, " (");
		ob_puts(&o->ob, reason);
		ob_putc(&o->ob, ')');
	}
	ob_putc(&o->ob, '\n');
}

static void text_reset(struct output *o, const struct synfin_event *e)
{
	text_segment_note(o, e, "RST sent, no socket", "", rst_reason_name(e->rst_reason));
}

static void text_drop(struct output *o, const struct synfin_event *e)
{
	text_segment_note(o, e, drop_segment_name((uint8_t)drop_segment_of(e->close_flags)),
			  " dropped", drop_reason_name(e->drop_reason));
}

const struct formatter text_formatter = {
	.header = text_header,
	.state = text_state,
	.conn = text_conn,
	.packet = text_packet,
	.lost = text_lost,
	.stuck = text_stuck,
	.tw_end = text_tw_end,
	.reset = text_reset,
	.drop = text_drop,
};
