/*
 * The textbook picture of one connection: both endpoints as columns, one
 * arrow per segment (flags, seq/ack as tcpdump -S prints them, or relative
 * to each side's ISN with --relative), the time offset, and the state each
 * side entered beside the arrow nearest in time.
 */
#include <string.h>
#include "names.h"
#include "output.h"

#define LADDER_WIDTH 46 /* between the two lifelines */
#define STATE_COL 13
#define MAX_STATE_MARKS 16

#define C_RESET "\033[0m"
#define C_A "\033[36m"     /* cyan: A -> B */
#define C_B "\033[33m"     /* yellow: B -> A */
#define C_STATE "\033[1;32m"

struct state_mark {
	uint64_t ts_ns;
	uint8_t side, state;
	int row; /* segment index it is printed beside */
};

/* The left column: the client when we know it, else whoever sent the first segment. */
static int left_side(const struct flow *f)
{
	for (int s = 0; s < 2; s++)
		if ((f->held_sides & (1 << s)) && f->conns[s].role == ROLE_CLIENT)
			return s;
	for (int s = 0; s < 2; s++)
		if ((f->held_sides & (1 << s)) && f->conns[s].role == ROLE_SERVER)
			return !s;
	return 0;
}

/* When each state was entered, from the lifecycle: first_ns plus the time spent before it. */
static int collect_marks(const struct flow *f, struct state_mark *marks)
{
	int n = 0;

	for (int side = 0; side < 2; side++) {
		const struct conn *c = &f->conns[side];
		uint64_t ts = c->first_ns;

		if (!(f->held_sides & (1 << side)))
			continue;
		for (int i = 0; i < c->nstates && n < MAX_STATE_MARKS - 2; i++) {
			marks[n++] = (struct state_mark){ .ts_ns = ts, .side = (uint8_t)side,
							  .state = c->states[i] };
			if (c->state_us[i] != TRACKER_UNKNOWN_US)
				ts += (uint64_t)c->state_us[i] * 1000;
		}
		/* A final CLOSED only when it did close: not in TIME_WAIT (still running), and
		 * not handed to a FIN_WAIT2 mini-socket whose peer's FIN never came in time. */
		if ((!c->nstates || c->states[c->nstates - 1] != SF_TCP_TIME_WAIT) &&
		    !(c->close_flags & SF_CLOSE_TW_FIN_WAIT2))
			marks[n++] = (struct state_mark){ .ts_ns = c->state_ns, .side = (uint8_t)side,
							  .state = SF_TCP_CLOSE };
	}
	return n;
}

static uint64_t abs_diff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/* TIME_WAIT is entered at the peer's FIN: the last FIN from the other side up to then. */
static int peer_fin_row(const struct flow *f, const struct state_mark *mark)
{
	int row = -1;

	for (int i = 0; i < f->nseg && f->seg[i].ts_ns <= mark->ts_ns; i++)
		if (!flow_is_duplicate(f, i) && (f->seg[i].flags & SF_TCPF_FIN) &&
		    flow_segment_side(f, i) != mark->side)
			row = i;
	return row;
}

/*
 * A side's states follow one another down the ladder: one placed below the
 * next (FIN_WAIT2 nearest the ACK after the FIN that also brought TIME_WAIT)
 * moves up to share the next one's row.
 */
static void keep_order(struct state_mark *marks, int n)
{
	for (int m = n - 2; m >= 0; m--)
		if (marks[m].side == marks[m + 1].side && marks[m + 1].row >= 0 &&
		    marks[m].row > marks[m + 1].row)
			marks[m].row = marks[m + 1].row;
}

/* Each state goes beside the segment closest in time (TIME_WAIT: beside the peer's FIN). */
static void place_marks(const struct flow *f, struct state_mark *marks, int n)
{
	for (int m = 0; m < n; m++) {
		uint64_t best = UINT64_MAX;

		marks[m].row = marks[m].state == SF_TCP_TIME_WAIT ? peer_fin_row(f, &marks[m]) : -1;
		if (marks[m].row >= 0)
			continue;
		for (int i = 0; i < f->nseg; i++) {
			uint64_t d = abs_diff(f->seg[i].ts_ns, marks[m].ts_ns);

			if (!flow_is_duplicate(f, i) && d < best) {
				best = d;
				marks[m].row = i;
			}
		}
	}
}

static const char *mark_label(const struct state_mark *m)
{
	return m->state == SF_TCP_CLOSE ? "CLOSED" : state_name(m->state);
}

/* The left column's width: its longest row of labels ("FIN_WAIT2,TIME_WAIT") and a space. */
static int state_col_width(const struct state_mark *marks, int n, int nrows, int side)
{
	int widest = STATE_COL;

	for (int row = 0; row < nrows; row++) {
		int width = 0;

		for (int m = 0; m < n; m++)
			if (marks[m].row == row && marks[m].side == side)
				width += (width ? 1 : 0) + (int)strlen(mark_label(&marks[m]));
		if (width + 1 > widest)
			widest = width + 1;
	}
	return widest;
}

/* The labels of one row's side, padded to width (colour codes take no column). */
static void write_marks(struct output *o, const struct state_mark *marks, int n, int row, int side,
			int width)
{
	int used = 0;

	for (int m = 0; m < n; m++) {
		if (marks[m].row != row || marks[m].side != side)
			continue;
		if (used) {
			ob_putc(&o->ob, ',');
			used++;
		}
		if (o->color)
			ob_puts(&o->ob, C_STATE);
		ob_puts(&o->ob, mark_label(&marks[m]));
		used += (int)strlen(mark_label(&marks[m]));
		if (o->color)
			ob_puts(&o->ob, C_RESET);
	}
	while (used++ < width)
		ob_putc(&o->ob, ' ');
}

/* ISN of each side: its SYN's seq, for --relative. */
static void find_isns(const struct flow *f, uint32_t isn[2], bool known[2])
{
	known[0] = known[1] = false;
	for (int i = 0; i < f->nseg; i++) {
		int side = flow_segment_side(f, i);

		if ((f->seg[i].flags & SF_TCPF_SYN) && !known[side]) {
			isn[side] = f->seg[i].seq;
			known[side] = true;
		}
	}
}

static void arrow_label(struct output *o, const struct flow *f, int i, const uint32_t isn[2],
			const bool known[2])
{
	const struct synfin_segment *s = &f->seg[i];
	int side = flow_segment_side(f, i);
	bool rel = o->relative && known[side] && known[!side];
	char flags[10];

	ob_puts(&o->ob, tcp_flags_str(s->flags, flags));
	ob_puts(&o->ob, " seq=");
	ob_u64(&o->ob, rel ? s->seq - isn[side] : s->seq);
	if (s->flags & SF_TCPF_ACK) {
		ob_puts(&o->ob, " ack=");
		ob_u64(&o->ob, rel ? s->ack - isn[!side] : s->ack);
	}
	if (s->len) {
		ob_puts(&o->ob, " len=");
		ob_u64(&o->ob, s->len);
	}
}

static void write_arrow(struct output *o, const struct flow *f, int i, int left,
			const uint32_t isn[2], const bool known[2])
{
	bool rightward = flow_segment_side(f, i) == left;
	size_t start;

	if (o->color)
		ob_puts(&o->ob, rightward ? C_A : C_B);
	ob_puts(&o->ob, rightward ? "|-- " : "|<- ");
	start = o->ob.len;
	arrow_label(o, f, i, isn, known);
	ob_putc(&o->ob, ' ');
	while (o->ob.len >= start && o->ob.len - start < LADDER_WIDTH - 8)
		ob_putc(&o->ob, '-');
	ob_puts(&o->ob, rightward ? "-->|" : "---|");
	if (o->color)
		ob_puts(&o->ob, C_RESET);
}

static void write_endpoint(struct output *o, const struct flow *f, int side)
{
	const struct conn *c = &f->conns[side];

	if (f->held_sides & (1 << side))
		ob_puts(&o->ob, role_name(c->role));
	else
		ob_puts(&o->ob, "peer");
	ob_putc(&o->ob, ' ');
	if (f->family != 2)
		ob_putc(&o->ob, '[');
	ob_addr(&o->ob, f->family, f->addr[side]);
	if (f->family != 2)
		ob_putc(&o->ob, ']');
	ob_putc(&o->ob, ':');
	ob_u64(&o->ob, f->port[side]);
}

static void write_header(struct output *o, const struct flow *f, int left, int state_col)
{
	size_t mark;

	ob_puts(&o->ob, "\n    ms    ");
	mark = o->ob.len;
	write_endpoint(o, f, left);
	ob_pad_from(&o->ob, mark, (size_t)state_col + LADDER_WIDTH - 4);
	ob_puts(&o->ob, "    ");
	write_endpoint(o, f, !left);
	ob_putc(&o->ob, '\n');
	ob_record_done(&o->ob);
}

void ladder_write(struct output *o, const struct flow *f)
{
	struct state_mark marks[MAX_STATE_MARKS];
	int left = left_side(f), nmarks = collect_marks(f, marks);
	uint64_t t0 = f->nseg ? f->seg[0].ts_ns : 0;
	uint32_t isn[2] = { 0, 0 };
	bool known[2];

	int state_col;

	place_marks(f, marks, nmarks);
	keep_order(marks, nmarks);
	state_col = state_col_width(marks, nmarks, f->nseg, left);
	find_isns(f, isn, known);
	for (int m = 0; m < nmarks; m++)
		if (marks[m].ts_ns < t0)
			t0 = marks[m].ts_ns;
	write_header(o, f, left, state_col);
	for (int i = 0; i < f->nseg; i++) {
		size_t mark = o->ob.len;

		if (flow_is_duplicate(f, i))
			continue;
		ob_fixed(&o->ob, (f->seg[i].ts_ns - t0) / 1000, 3);
		ob_pad_from(&o->ob, mark, 10);
		write_marks(o, marks, nmarks, i, left, state_col);
		write_arrow(o, f, i, left, isn, known);
		ob_putc(&o->ob, ' ');
		write_marks(o, marks, nmarks, i, !left, 0);
		ob_putc(&o->ob, '\n');
		ob_record_done(&o->ob);
	}
	if (f->truncated)
		ob_puts(&o->ob, "          (more segments than a ladder keeps)\n");
}

/* Drawn once per flow, after the lifecycle records of both its sides. */
static void ladder_conn(struct sink *s, const struct lifecycle *l)
{
	struct ladder_sink *ls = (struct ladder_sink *)s;

	if (l->flow && l->ends_flow) {
		ladder_write(ls->out, l->flow);
		ob_record_done(&ls->out->ob);
	}
}

static const struct sink_ops ladder_ops = { .conn = ladder_conn };

void ladder_sink_init(struct ladder_sink *l, struct output *out)
{
	l->sink.ops = &ladder_ops;
	l->out = out;
}
