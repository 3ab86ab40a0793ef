/* Output plumbing shared by every format. */
#include "output.h"
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

void output_init(struct output *o, int fd, bool json, bool life_only)
{
	struct timespec mono, real;

	ob_init(&o->ob, fd);
	o->life_only = life_only;
	o->fmt = json ? &json_formatter : &text_formatter;
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

