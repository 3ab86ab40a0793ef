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

const char *time_wait_name(const struct conn *c)
{
	if (c->close_flags & SF_CLOSE_TIME_WAIT)
		return "entered";
	if (c->close_flags & SF_CLOSE_TW_FIN_WAIT2)
		return "fin_wait2";
	return NULL;
}

const char *tw_end_name(enum tw_end how)
{
	static const char *const names[] = { NULL, "expired", "early", "unseen" };

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

void output_init(struct output *o, int fd, bool json, bool life_only)
{
	struct timespec mono, real;

	ob_init(&o->ob, fd);
	o->life_only = life_only;
	o->fmt = json ? &json_formatter : &text_formatter;
	memset(&o->ts_hi, 0, sizeof(o->ts_hi));
	memset(&o->netns, 0, sizeof(o->netns));
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	o->mono_to_real_ns = (int64_t)(real.tv_sec - mono.tv_sec) * 1000000000 +
			     (real.tv_nsec - mono.tv_nsec);
}

int output_transition(struct output *o, const struct synfin_event *e, const struct transition *tr)
{
	if (!o->life_only) {
		o->fmt->state(o, e, tr);
		ob_record_done(&o->ob);
	}
	if (tr->ended) {
		o->fmt->conn(o, tr->ended);
		return ob_record_done(&o->ob);
	}
	return o->ob.err ? -o->ob.err : 0;
}

