/*
 * NDJSON: one object per line, every object with "type" and "ts_ns".
 * Hand-written rather than printf-based: this is the hot path of a storm.
 */
#include "output.h"
#include "names.h"

#define KEY(o, lit) ob_write(&(o)->ob, "," lit ":", sizeof(lit) + 1)

static void json_nullable_i64(struct output *o, int64_t v)
{
	if (v < 0)
		ob_write(&o->ob, "null", 4);
	else
		ob_i64(&o->ob, v);
}

static void json_owner(struct output *o, uint32_t pid, const char *comm)
{
	KEY(o, "\"pid\"");
	if (!pid) {
		ob_puts(&o->ob, "null,\"comm\":null");
		return;
	}
	ob_u64(&o->ob, pid);
	KEY(o, "\"comm\"");
	ob_json_str(&o->ob, comm, SYNFIN_COMM_LEN);
}

static void json_str_field(struct output *o, const char *s)
{
	ob_putc(&o->ob, '"');
	ob_puts(&o->ob, s);
	ob_putc(&o->ob, '"');
}

static void json_tuple(struct output *o, uint8_t family, const uint8_t *saddr, uint16_t sport,
		       const uint8_t *daddr, uint16_t dport)
{
	KEY(o, "\"family\"");
	json_str_field(o, family_name(family));
	KEY(o, "\"saddr\"");
	ob_putc(&o->ob, '"');
	ob_addr(&o->ob, family, saddr);
	ob_putc(&o->ob, '"');
	KEY(o, "\"sport\"");
	ob_u64(&o->ob, sport);
	KEY(o, "\"daddr\"");
	ob_putc(&o->ob, '"');
	ob_addr(&o->ob, family, daddr);
	ob_putc(&o->ob, '"');
	KEY(o, "\"dport\"");
	ob_u64(&o->ob, dport);
}

static void json_begin(struct output *o, const char *type, uint64_t ts_ns)
{
	ob_write(&o->ob, "{\"type\":\"", 9);
	ob_puts(&o->ob, type);
	ob_write(&o->ob, "\",\"ts_ns\":", 10);
	ob_u64(&o->ob, ts_ns);
}

static void json_header(struct output *o)
{
	(void)o;
}

static void json_state(struct output *o, const struct synfin_event *e, const struct transition *tr)
{
	json_begin(o, "state", e->ts_ns);
	json_owner(o, tr->pid, tr->comm);
	json_tuple(o, e->family, e->saddr, e->sport, e->daddr, e->dport);
	KEY(o, "\"old\"");
	json_str_field(o, state_name(e->oldstate));
	KEY(o, "\"new\"");
	json_str_field(o, state_name(e->newstate));
	KEY(o, "\"delta_us\"");
	json_nullable_i64(o, tr->delta_us);
	KEY(o, "\"netns\"");
	ob_u64(&o->ob, e->netns);
	KEY(o, "\"cgroup_id\"");
	ob_u64(&o->ob, e->cgroup_id);
	KEY(o, "\"sk\"");
	ob_putc(&o->ob, '"');
	ob_hex(&o->ob, e->skaddr);
	ob_write(&o->ob, "\"}\n", 3);
}

static bool is_teardown_state(uint8_t s)
{
	return s == SF_TCP_FIN_WAIT1 || s == SF_TCP_FIN_WAIT2 || s == SF_TCP_CLOSE_WAIT ||
	       s == SF_TCP_LAST_ACK || s == SF_TCP_CLOSING || s == SF_TCP_TIME_WAIT;
}

static void json_states(struct output *o, const struct conn *c)
{
	bool first = true;

	KEY(o, "\"states\"");
	ob_putc(&o->ob, '[');
	for (int i = 0; i < c->nstates; i++) {
		if (i)
			ob_putc(&o->ob, ',');
		json_str_field(o, state_name(c->states[i]));
	}
	ob_putc(&o->ob, ']');
	KEY(o, "\"state_us\"");
	ob_putc(&o->ob, '[');
	for (int i = 0; i < c->nstates; i++) {
		if (i)
			ob_putc(&o->ob, ',');
		json_nullable_i64(o, c->state_us[i] == TRACKER_UNKNOWN_US ? -1 : (int64_t)c->state_us[i]);
	}
	ob_putc(&o->ob, ']');
	KEY(o, "\"teardown_us\"");
	ob_putc(&o->ob, '{');
	for (int i = 0; i < c->nstates; i++) {
		if (!is_teardown_state(c->states[i]) || c->state_us[i] == TRACKER_UNKNOWN_US)
			continue;
		if (!first)
			ob_putc(&o->ob, ',');
		first = false;
		json_str_field(o, state_name(c->states[i]));
		ob_putc(&o->ob, ':');
		ob_u64(&o->ob, c->state_us[i]);
	}
	ob_putc(&o->ob, '}');
}

static void json_conn(struct output *o, const struct conn *c)
{
	json_begin(o, "conn", c->state_ns);
	KEY(o, "\"role\"");
	if (c->role == ROLE_UNKNOWN)
		ob_write(&o->ob, "null", 4);
	else
		json_str_field(o, role_name(c->role));
	json_owner(o, c->pid, c->comm);
	json_tuple(o, c->family, c->saddr, c->sport, c->daddr, c->dport);
	KEY(o, "\"netns\"");
	ob_u64(&o->ob, c->netns);
	KEY(o, "\"cgroup_id\"");
	ob_u64(&o->ob, c->cgroup_id);
	json_states(o, c);
	KEY(o, "\"handshake_us\"");
	json_nullable_i64(o, conn_handshake_us(c));
	KEY(o, "\"duration_us\"");
	ob_i64(&o->ob, conn_duration_us(c));
	KEY(o, "\"partial\"");
	ob_puts(&o->ob, c->partial ? "true" : "false");
	ob_write(&o->ob, "}\n", 2);
}

static void json_lost(struct output *o, uint64_t ts_ns, uint64_t lost, uint64_t total)
{
	json_begin(o, "lost", ts_ns);
	KEY(o, "\"count\"");
	ob_u64(&o->ob, lost);
	KEY(o, "\"total\"");
	ob_u64(&o->ob, total);
	ob_write(&o->ob, "}\n", 2);
}

const struct formatter json_formatter = {
	.header = json_header,
	.state = json_state,
	.conn = json_conn,
	.lost = json_lost,
};
