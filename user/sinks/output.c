/* Output plumbing shared by every format. */
#include "output.h"
#include "names.h"
#include <string.h>
#include <time.h>

const char *role_name(uint8_t role)
{
	switch (role) {
	case ROLE_CLIENT:
		return "client";
	case ROLE_SERVER:
		return "server";
	case ROLE_LISTENER:
		return "listener";
	default:
		return "?";
	}
}

const char *closer_name(enum conn_closer closer)
{
	return closer == CLOSER_NONE ? NULL : closer_label(closer);
}

const char *outcome_name(enum conn_outcome outcome)
{
	return outcome == OUTCOME_UNKNOWN ? NULL : outcome_label(outcome);
}

const char *tw_end_name(enum tw_end how)
{
	static const char *const names[] = { NULL, "expired", "early", "unseen", "netns_gone" };

	return names[how];
}

const char *tcp_flags_str(uint8_t flags, char *buf)
{
	static const struct {
		uint8_t bit;
		char letter;
	} order[] = { { SF_TCPF_FIN, 'F' }, { SF_TCPF_SYN, 'S' }, { SF_TCPF_RST, 'R' }, { SF_TCPF_PSH, 'P' },
		      { 0x20, 'U' },     { 0x40, 'E' },     { 0x80, 'W' },     { SF_TCPF_ACK, '.' } };
	int n = 0;

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (flags & order[i].bit)
			buf[n++] = order[i].letter;
	if (!n)
		return strcpy(buf, "none");
	buf[n] = 0;
	return buf;
}

/* Every record is followed by ob_record_done(): a flush when the buffer is nearly full. */
static struct output *of(struct sink *s)
{
	return (struct output *)s;
}

static void out_start(struct sink *s)
{
	struct output *o = of(s);

	if (o->mode != OUTPUT_NOTICES) /* --summary prints its own headers */
		o->fmt->header(o);
	ob_flush(&o->ob);
}

static void out_state(struct sink *s, const struct synfin_event *e, const struct transition *tr)
{
	struct output *o = of(s);

	if (o->mode == OUTPUT_ALL) {
		o->fmt->state(o, e, tr);
		ob_record_done(&o->ob);
	}
}

static void out_conn(struct sink *s, const struct lifecycle *l)
{
	struct output *o = of(s);

	if (o->mode != OUTPUT_NOTICES) {
		o->fmt->conn(o, l);
		ob_record_done(&o->ob);
	}
}

static void out_packet(struct sink *s, const struct synfin_segment *seg, const char *ifname)
{
	struct output *o = of(s);

	if (o->mode == OUTPUT_ALL) {
		o->fmt->packet(o, seg, ifname);
		ob_record_done(&o->ob);
	}
}

static void out_lost(struct sink *s, uint64_t ts_ns, const struct loss *l)
{
	struct output *o = of(s);

	o->fmt->lost(o, ts_ns, l);
	ob_record_done(&o->ob);
}

static void out_stuck(struct sink *s, const struct conn *c, uint64_t now_ns)
{
	struct output *o = of(s);

	o->fmt->stuck(o, c, now_ns);
	ob_record_done(&o->ob);
}

static void out_tw_end(struct sink *s, const struct tw_entry *e, enum tw_end how, uint64_t now_ns)
{
	struct output *o = of(s);

	if (o->mode != OUTPUT_NOTICES) {
		o->fmt->tw_end(o, e, how, now_ns);
		ob_record_done(&o->ob);
	}
}

static void out_reset(struct sink *s, const struct synfin_event *e)
{
	struct output *o = of(s);

	if (o->mode != OUTPUT_NOTICES) {
		o->fmt->reset(o, e);
		ob_record_done(&o->ob);
	}
}

static void out_drop(struct sink *s, const struct synfin_event *e)
{
	struct output *o = of(s);

	if (o->mode == OUTPUT_ALL) { /* --life: the lifecycle's drops say it */
		o->fmt->drop(o, e);
		ob_record_done(&o->ob);
	}
}

static void out_report(struct sink *s, uint64_t now_ns, bool final)
{
	(void)now_ns;
	(void)final;
	ob_flush(&of(s)->ob);
}

static const struct sink_ops output_ops = {
	.start = out_start,
	.state = out_state,
	.conn = out_conn,
	.packet = out_packet,
	.lost = out_lost,
	.stuck = out_stuck,
	.tw_end = out_tw_end,
	.reset = out_reset,
	.drop = out_drop,
	.report = out_report,
};

void output_init(struct output *o, int fd, bool json, enum output_mode mode)
{
	struct timespec mono, real;

	o->sink.ops = &output_ops;
	ob_init(&o->ob, fd);
	o->mode = mode;
	o->relative = o->color = false;
	o->fmt = json ? &json_formatter : &text_formatter;
	memset(&o->ts_hi, 0, sizeof(o->ts_hi));
	memset(&o->netns, 0, sizeof(o->netns));
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	o->mono_to_real_ns = (int64_t)(real.tv_sec - mono.tv_sec) * 1000000000 +
			     (real.tv_nsec - mono.tv_nsec);
}

int output_error(const struct output *o)
{
	return o->ob.err;
}
