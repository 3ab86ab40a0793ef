/*
 * NDJSON: one object per line, every object with "type" and "ts_ns".
 * Hand-written rather than printf-based: this is the hot path of a storm.
 */
#include "output.h"
#include <sys/socket.h>
#include "names.h"

#define KEY(o, lit) ob_write(&(o)->ob, "," lit ":", sizeof(lit) + 1)

static void json_nullable_i64(struct output *o, int64_t v)
{
	if (v < 0)
		ob_write(&o->ob, "null", 4);
	else
		ob_i64(&o->ob, v);
}

static void json_str_field(struct output *o, const char *s)
{
	ob_putc(&o->ob, '"');
	ob_puts(&o->ob, s);
	ob_putc(&o->ob, '"');
}

static void json_nullable_str(struct output *o, const char *s)
{
	if (s)
		json_str_field(o, s);
	else
		ob_write(&o->ob, "null", 4);
}

/* The socket's holder, or null and why not (owner_unknown). */
static void json_owner(struct output *o, uint32_t pid, const char *comm, uint8_t why)
{
	KEY(o, "\"pid\"");
	if (!pid) {
		ob_puts(&o->ob, "null,\"comm\":null,\"owner_unknown\":");
		json_nullable_str(o, owner_unknown_name(why ? why : OWNER_NOT_SEEN));
		return;
	}
	ob_u64(&o->ob, pid);
	KEY(o, "\"comm\"");
	ob_json_comm(&o->ob, comm);
	ob_puts(&o->ob, ",\"owner_unknown\":null");
}

static void json_state_name(struct output *o, uint8_t state)
{
	size_t len;
	const char *name = state_name16(state, &len);

	ob_putc(&o->ob, '"');
	ob_write16(&o->ob, name, len);
	ob_putc(&o->ob, '"');
}

static void json_tuple(struct output *o, uint8_t family, const uint8_t *saddr, uint16_t sport,
		       const uint8_t *daddr, uint16_t dport)
{
	if (family == AF_INET) { /* the usual case as one literal */
		ob_write(&o->ob, ",\"family\":\"ipv4\"", 16);
	} else {
		KEY(o, "\"family\"");
		json_str_field(o, family_name(family));
	}
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

/* Every record: its type, the schema version (docs/schema), the kernel time. */
#define json_begin_v(o, type, v, ts_ns)                                                  \
	do {                                                                             \
		static const char head_[] = "{\"type\":\"" type "\",\"v\":" v ",\"ts_ns\":";  \
		ob_write(&(o)->ob, head_, sizeof(head_) - 1);                           \
		ob_u64_split(&(o)->ob, &(o)->ts_hi, ts_ns);                              \
	} while (0)
#define json_begin(o, type, ts_ns) json_begin_v(o, type, "1", ts_ns)
/*
 * conn v2: duration_us and FIN_WAIT2's time run to TIME_WAIT (a FIN_WAIT2
 * mini-socket's, at the peer's FIN), "fin_wait2" means that FIN had not come
 * within the wait, reset_reason and reset_at_us are new.
 */
#define CONN_RECORD_VERSION "2"

static void json_header(struct output *o)
{
	(void)o;
}

static void json_state(struct output *o, const struct synfin_event *e, const struct transition *tr)
{
	json_begin(o, "state", e->ts_ns);
	json_owner(o, tr->pid, tr->comm, tr->owner_unknown);
	json_tuple(o, e->family, e->saddr, e->sport, e->daddr, e->dport);
	KEY(o, "\"old\"");
	json_state_name(o, e->oldstate);
	KEY(o, "\"new\"");
	json_state_name(o, e->newstate);
	KEY(o, "\"delta_us\"");
	json_nullable_i64(o, tr->delta_us);
	KEY(o, "\"netns\"");
	ob_u64_memo(&o->ob, &o->netns, e->netns);
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
		json_state_name(o, c->states[i]);
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
		json_state_name(o, c->states[i]);
		ob_putc(&o->ob, ':');
		ob_u64(&o->ob, c->state_us[i]);
	}
	ob_putc(&o->ob, '}');
}


/* [{"reason":"netfilter_drop","segment":"SYN","direction":"sent","count":3}], or null. */
static void json_drops(struct output *o, const struct lifecycle *l)
{
	if (!l->drops_known) {
		ob_write(&o->ob, "null", 4);
		return;
	}
	ob_putc(&o->ob, '[');
	for (uint8_t i = 0; i < l->ndrops; i++) {
		const struct conn_drop *d = &l->drops[i];

		ob_puts(&o->ob, i ? ",{\"reason\":" : "{\"reason\":");
		json_nullable_str(o, drop_reason_name(d->reason));
		KEY(o, "\"segment\"");
		json_str_field(o, drop_segment_name(d->segment));
		KEY(o, "\"direction\"");
		json_str_field(o, d->sent ? "sent" : "received");
		KEY(o, "\"count\"");
		ob_u64(&o->ob, d->count);
		ob_putc(&o->ob, '}');
	}
	ob_putc(&o->ob, ']');
}

/* {"netns":…,"port":8080,"queue":2,"backlog":1,"syns_dropped":3}, or null. */
static void json_full_listener(struct output *o, const struct lifecycle *l)
{
	const struct listener_health *h = l->full_listener;

	if (!h) {
		ob_write(&o->ob, "null", 4);
		return;
	}
	ob_puts(&o->ob, "{\"netns\":");
	ob_u64(&o->ob, h->netns);
	KEY(o, "\"port\"");
	ob_u64(&o->ob, h->port);
	KEY(o, "\"queue\"");
	ob_u64(&o->ob, h->queue);
	KEY(o, "\"backlog\"");
	ob_u64(&o->ob, h->backlog);
	KEY(o, "\"syns_dropped\"");
	ob_u64(&o->ob, l->full_listener_syns);
	ob_putc(&o->ob, '}');
}

static void json_close_facts(struct output *o, const struct lifecycle *l)
{
	KEY(o, "\"closer\"");
	json_nullable_str(o, closer_name(l->closer));
	KEY(o, "\"outcome\"");
	json_nullable_str(o, outcome_name(l->outcome));
	KEY(o, "\"reset_by\"");
	json_nullable_str(o, l->reset_by);
	KEY(o, "\"reset_reason\"");
	json_nullable_str(o, l->reset_reason);
	KEY(o, "\"reset_at_us\"");
	json_nullable_i64(o, l->reset_at_us);
	KEY(o, "\"accept_wait_us\"");
	json_nullable_i64(o, l->accept_wait_us);
	KEY(o, "\"drops\"");
	json_drops(o, l);
	KEY(o, "\"full_listener\"");
	json_full_listener(o, l);
	KEY(o, "\"sk_err\"");
	json_nullable_i64(o, l->c->sk_err ? l->c->sk_err : -1);
	KEY(o, "\"time_wait\"");
	json_nullable_str(o, l->time_wait);
	KEY(o, "\"syn_retrans\"");
	json_nullable_i64(o, l->syn_retrans);
	KEY(o, "\"synack_retrans\"");
	json_nullable_i64(o, l->synack_retrans);
	KEY(o, "\"local_isn\"");
	json_nullable_i64(o, l->local_isn);
	KEY(o, "\"remote_isn\"");
	json_nullable_i64(o, l->remote_isn);
	KEY(o, "\"tx_bytes\"");
	json_nullable_i64(o, l->tx_bytes);
	KEY(o, "\"rx_bytes\"");
	json_nullable_i64(o, l->rx_bytes);
}

static void json_conn_fields(struct output *o, const struct lifecycle *l)
{
	const struct conn *c = l->c;

	json_begin_v(o, "conn", CONN_RECORD_VERSION, c->state_ns);
	KEY(o, "\"role\"");
	if (c->role == ROLE_UNKNOWN)
		ob_write(&o->ob, "null", 4);
	else
		json_str_field(o, role_name(c->role));
	json_owner(o, c->pid, c->comm, c->owner_unknown);
	json_tuple(o, c->family, c->saddr, c->sport, c->daddr, c->dport);
	KEY(o, "\"netns\"");
	ob_u64_memo(&o->ob, &o->netns, c->netns);
	KEY(o, "\"cgroup_id\"");
	ob_u64(&o->ob, c->cgroup_id);
	json_states(o, c);
	KEY(o, "\"handshake_us\"");
	json_nullable_i64(o, l->handshake_us);
	KEY(o, "\"duration_us\"");
	ob_i64(&o->ob, l->duration_us);
	json_close_facts(o, l);
	KEY(o, "\"partial\"");
	ob_puts(&o->ob, c->partial ? "true" : "false");
	KEY(o, "\"close_inferred\"");
	ob_puts(&o->ob, c->flags & CONN_CLOSE_INFERRED ? "true" : "false");
}

/* The SYN options, present ones only. */
static void json_options(struct output *o, const struct synfin_segment *s)
{
	bool first = true;

	ob_putc(&o->ob, '{');
	if (s->opts & SF_OPT_MSS) {
		ob_puts(&o->ob, "\"mss\":");
		ob_u64(&o->ob, s->mss);
		first = false;
	}
	if (s->opts & SF_OPT_WSCALE) {
		ob_puts(&o->ob, first ? "\"wscale\":" : ",\"wscale\":");
		ob_u64(&o->ob, s->wscale);
		first = false;
	}
	if (s->opts & SF_OPT_SACK_OK) {
		ob_puts(&o->ob, first ? "\"sack_ok\":true" : ",\"sack_ok\":true");
		first = false;
	}
	if (s->opts & SF_OPT_TS) {
		ob_puts(&o->ob, first ? "\"ts_val\":" : ",\"ts_val\":");
		ob_u64(&o->ob, s->ts_val);
		ob_puts(&o->ob, ",\"ts_ecr\":");
		ob_u64(&o->ob, s->ts_ecr);
	}
	ob_putc(&o->ob, '}');
}

static void json_segment_core(struct output *o, const struct synfin_segment *s)
{
	char flags[10];

	KEY(o, "\"flags\"");
	json_str_field(o, tcp_flags_str(s->flags, flags));
	KEY(o, "\"seq\"");
	ob_u64(&o->ob, s->seq);
	KEY(o, "\"ack\"");
	ob_u64(&o->ob, s->ack);
	KEY(o, "\"win\"");
	ob_u64(&o->ob, s->win);
	KEY(o, "\"len\"");
	ob_u64(&o->ob, s->len);
	KEY(o, "\"options\"");
	json_options(o, s);
}

static void json_packet(struct output *o, const struct synfin_segment *s, const char *ifname)
{
	json_begin(o, "packet", s->ts_ns);
	KEY(o, "\"iface\"");
	ob_json_str(&o->ob, ifname, 16);
	KEY(o, "\"dir\"");
	json_str_field(o, s->dir ? "out" : "in");
	json_tuple(o, s->family, s->saddr, s->sport, s->daddr, s->dport);
	json_segment_core(o, s);
	ob_write(&o->ob, "}\n", 2);
}

static void json_anomalies(struct output *o, uint32_t bits)
{
	bool first = true;

	KEY(o, "\"anomalies\"");
	ob_putc(&o->ob, '[');
	for (int b = 0; b < ANOM_COUNT; b++) {
		if (!(bits & (1u << b)))
			continue;
		if (!first)
			ob_putc(&o->ob, ',');
		first = false;
		json_str_field(o, anomaly_name(b));
	}
	ob_putc(&o->ob, ']');
}

/* The wire view: handshake timing and options from the segments, then the segments. */
static void json_wire(struct output *o, const struct lifecycle *l)
{
	const struct wire_facts *w = &l->wire;
	const struct flow *f = l->flow;

	KEY(o, "\"wire\"");
	ob_puts(&o->ob, "{\"syn_ts_ns\":");
	json_nullable_i64(o, w->syn_ns);
	KEY(o, "\"synack_ts_ns\"");
	json_nullable_i64(o, w->synack_ns);
	KEY(o, "\"ack_ts_ns\"");
	json_nullable_i64(o, w->ack_ns);
	KEY(o, "\"handshake_rtt_us\"");
	json_nullable_i64(o, w->syn_ns >= 0 && w->ack_ns >= 0 ? (w->ack_ns - w->syn_ns) / 1000 : -1);
	KEY(o, "\"syns\"");
	ob_u64(&o->ob, w->syns);
	KEY(o, "\"synacks\"");
	ob_u64(&o->ob, w->synacks);
	KEY(o, "\"syn_options\"");
	if (w->syn_idx >= 0)
		json_options(o, &f->seg[w->syn_idx]);
	else
		ob_puts(&o->ob, "null");
	KEY(o, "\"synack_options\"");
	if (w->synack_idx >= 0)
		json_options(o, &f->seg[w->synack_idx]);
	else
		ob_puts(&o->ob, "null");
	ob_putc(&o->ob, '}');
	json_anomalies(o, w->anomalies);
	KEY(o, "\"segments\"");
	ob_putc(&o->ob, '[');
	for (int i = 0, n = 0; i < f->nseg; i++) {
		if (flow_is_duplicate(f, i))
			continue;
		ob_puts(&o->ob, n++ ? ",{\"ts_ns\":" : "{\"ts_ns\":");
		ob_u64(&o->ob, f->seg[i].ts_ns);
		KEY(o, "\"from\"");
		json_str_field(o, flow_segment_side(f, i) == l->side ? "local" : "remote");
		json_segment_core(o, &f->seg[i]);
		ob_putc(&o->ob, '}');
	}
	ob_putc(&o->ob, ']');
	KEY(o, "\"segments_truncated\"");
	ob_puts(&o->ob, f->truncated ? "true" : "false");
}

static void json_conn(struct output *o, const struct lifecycle *l)
{
	json_conn_fields(o, l);
	if (l->flow)
		json_wire(o, l);
	ob_write(&o->ob, "}\n", 2);
}

static void json_lost(struct output *o, uint64_t ts_ns, const struct loss *l)
{
	json_begin(o, "lost", ts_ns);
	KEY(o, "\"count\"");
	ob_u64(&o->ob, l->count);
	KEY(o, "\"total\"");
	ob_u64(&o->ob, l->total);
	KEY(o, "\"kernel_skipped\"");
	ob_u64(&o->ob, l->skipped);
	KEY(o, "\"kernel_unseen\"");
	ob_u64(&o->ob, l->unseen);
	ob_write(&o->ob, "}\n", 2);
}

static void json_stuck(struct output *o, const struct conn *c, uint64_t now_ns)
{
	json_begin(o, "stuck", now_ns);
	KEY(o, "\"state\"");
	json_str_field(o, state_name(c->states[c->nstates - 1]));
	KEY(o, "\"since_us\"");
	ob_u64(&o->ob, (now_ns - c->state_ns) / 1000);
	KEY(o, "\"role\"");
	json_nullable_str(o, c->role == ROLE_UNKNOWN ? NULL : role_name(c->role));
	json_owner(o, c->pid, c->comm, c->owner_unknown);
	json_tuple(o, c->family, c->saddr, c->sport, c->daddr, c->dport);
	KEY(o, "\"netns\"");
	ob_u64_memo(&o->ob, &o->netns, c->netns);
	ob_write(&o->ob, "}\n", 2);
}

static void json_tw_end(struct output *o, const struct tw_entry *e, enum tw_end how,
			uint64_t now_ns)
{
	json_begin(o, "time_wait_end", now_ns);
	json_owner(o, e->pid, e->comm, e->owner_unknown);
	json_tuple(o, e->family, e->saddr, e->sport, e->daddr, e->dport);
	KEY(o, "\"netns\"");
	ob_u64_memo(&o->ob, &o->netns, e->netns);
	KEY(o, "\"end\"");
	json_str_field(o, tw_end_name(how));
	KEY(o, "\"substate\"");
	json_nullable_str(o, e->substate ? state_name(e->substate) : NULL);
	KEY(o, "\"time_wait_us\"");
	json_nullable_i64(o, how == TW_END_UNSEEN ? -1 : (int64_t)((now_ns - e->entered_ns) / 1000));
	ob_write(&o->ob, "}\n", 2);
}


/* A segment's own record: its tuple and namespace (after json_begin()). */
static void json_segment_tuple(struct output *o, const struct synfin_event *e)
{
	json_tuple(o, e->family, e->saddr, e->sport, e->daddr, e->dport);
	KEY(o, "\"netns\"");
	ob_u64_memo(&o->ob, &o->netns, e->netns);
}

static void json_reset(struct output *o, const struct synfin_event *e)
{
	json_begin(o, "rst", e->ts_ns);
	json_segment_tuple(o, e);
	KEY(o, "\"reason\"");
	json_nullable_str(o, rst_reason_name(e->rst_reason));
	ob_write(&o->ob, "}\n", 2);
}

/* saddr/sport: the segment's source, as on the wire (either end may be local). */
static void json_drop(struct output *o, const struct synfin_event *e)
{
	json_begin(o, "drop", e->ts_ns);
	json_segment_tuple(o, e);
	KEY(o, "\"segment\"");
	json_str_field(o, drop_segment_name((uint8_t)drop_segment_of(e->close_flags)));
	KEY(o, "\"reason\"");
	json_nullable_str(o, drop_reason_name(e->drop_reason));
	ob_write(&o->ob, "}\n", 2);
}

const struct formatter json_formatter = {
	.header = json_header,
	.state = json_state,
	.conn = json_conn,
	.packet = json_packet,
	.lost = json_lost,
	.stuck = json_stuck,
	.tw_end = json_tw_end,
	.reset = json_reset,
	.drop = json_drop,
};
