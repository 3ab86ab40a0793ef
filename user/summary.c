#include "summary.h"
#include <stdlib.h>
#include <string.h>
#include "names.h"
#include "output.h"

static const char *const hist_names[SH_COUNT] = {
	"handshake_us_client", "handshake_us_server", "lifetime_us",
	"close_wait_us",       "fin_wait2_us",        "time_wait_us",
};
static const char *const hist_titles[SH_COUNT] = {
	"client handshake (SYN_SENT -> ESTABLISHED)", "server handshake (SYN-ACK -> final ACK)",
	"connection lifetime", "time in CLOSE_WAIT", "time in FIN_WAIT2", "time in TIME_WAIT",
};

int hist_bucket(uint64_t value)
{
	int b = 0;

	while (value > 1 && b < HIST_BUCKETS - 1) {
		value >>= 1;
		b++;
	}
	return b;
}

void hist_add(struct hist *h, uint64_t value)
{
	h->bucket[hist_bucket(value)]++;
	h->count++;
}

void summary_reset(struct summary *s)
{
	memset(s, 0, sizeof(*s));
}

static void count_port(struct summary *s, uint16_t port, uint8_t role)
{
	for (uint32_t i = 0; i < s->nports; i++) {
		if (s->ports[i].port == port && s->ports[i].role == role) {
			s->ports[i].count++;
			return;
		}
	}
	if (s->nports == SUMMARY_PORTS) {
		s->other_ports++;
		return;
	}
	s->ports[s->nports++] = (struct port_count){ .port = port, .role = role, .count = 1 };
}

static void count_talker(struct summary *s, uint8_t family, const uint8_t *addr)
{
	for (uint32_t i = 0; i < s->ntalkers; i++) {
		if (s->talkers[i].family == family && !memcmp(s->talkers[i].addr, addr, 16)) {
			s->talkers[i].count++;
			return;
		}
	}
	if (s->ntalkers == SUMMARY_TALKERS) {
		s->other_talkers++;
		return;
	}
	s->talkers[s->ntalkers].family = family;
	memcpy(s->talkers[s->ntalkers].addr, addr, 16);
	s->talkers[s->ntalkers++].count = 1;
}

static void add_state_times(struct summary *s, const struct conn *c)
{
	for (int i = 0; i < c->nstates; i++) {
		if (c->state_us[i] == TRACKER_UNKNOWN_US)
			continue;
		if (c->states[i] == SF_TCP_CLOSE_WAIT)
			hist_add(&s->hist[SH_CLOSE_WAIT], c->state_us[i]);
		else if (c->states[i] == SF_TCP_FIN_WAIT2)
			hist_add(&s->hist[SH_FIN_WAIT2], c->state_us[i]);
	}
}

void summary_add_conn(struct summary *s, const struct conn *c)
{
	int64_t hs = conn_handshake_us(c);

	s->connections++;
	s->outcome[conn_outcome(c)]++;
	s->closer[conn_closer(c)]++;
	if (hs >= 0)
		hist_add(&s->hist[c->role == ROLE_SERVER ? SH_HANDSHAKE_SERVER : SH_HANDSHAKE_CLIENT],
			 (uint64_t)hs);
	hist_add(&s->hist[SH_LIFETIME], (uint64_t)conn_duration_us(c));
	add_state_times(s, c);
	/* Clients: the service they reach; servers: the service they offer. */
	if (c->role == ROLE_CLIENT)
		count_port(s, c->dport, ROLE_CLIENT);
	else if (c->role == ROLE_SERVER)
		count_port(s, c->sport, ROLE_SERVER);
	count_talker(s, c->family, c->daddr);
}

void summary_add_time_wait(struct summary *s, uint64_t time_wait_us)
{
	hist_add(&s->hist[SH_TIME_WAIT], time_wait_us);
}

static int cmp_ports(const void *a, const void *b)
{
	const struct port_count *x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 : x->port - y->port;
}

static int cmp_talkers(const void *a, const void *b)
{
	const struct talker_count *x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 : memcmp(x->addr, y->addr, 16);
}

/* The top entries, most frequent first (a sorted copy: the summary keeps counting). */
static uint32_t top_ports(const struct summary *s, struct port_count *out)
{
	memcpy(out, s->ports, s->nports * sizeof(*out));
	qsort(out, s->nports, sizeof(*out), cmp_ports);
	return s->nports < SUMMARY_TOP ? s->nports : SUMMARY_TOP;
}

static uint32_t top_talkers(const struct summary *s, struct talker_count *out)
{
	memcpy(out, s->talkers, s->ntalkers * sizeof(*out));
	qsort(out, s->ntalkers, sizeof(*out), cmp_talkers);
	return s->ntalkers < SUMMARY_TOP ? s->ntalkers : SUMMARY_TOP;
}

static uint64_t bucket_lo(int b)
{
	return b ? 1ull << b : 0;
}

static uint64_t bucket_hi(int b)
{
	return (1ull << (b + 1)) - 1;
}

static int digits(uint64_t v)
{
	int n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

static int last_used_bucket(const struct hist *h)
{
	int last = -1;

	for (int b = 0; b < HIST_BUCKETS; b++)
		if (h->bucket[b])
			last = b;
	return last;
}

/* Like bcc's print_log2_hist: a row per bucket up to the last used, bars scaled to 40. */
static void text_hist(struct outbuf *ob, const struct hist *h, const char *title)
{
	uint64_t max = 0;
	int last = last_used_bucket(h);

	ob_puts(ob, "\n");
	ob_puts(ob, title);
	ob_puts(ob, "\n     usecs               : count     distribution\n");
	for (int b = 0; b <= last; b++)
		if (h->bucket[b] > max)
			max = h->bucket[b];
	for (int b = 0; b <= last; b++) {
		size_t mark = ob->len;
		int stars = max ? (int)(h->bucket[b] * 40 / max) : 0;

		for (int w = digits(bucket_lo(b)); w < 10; w++)
			ob_putc(ob, ' ');
		ob_u64(ob, bucket_lo(b));
		ob_puts(ob, " -> ");
		ob_u64(ob, bucket_hi(b));
		ob_pad_from(ob, mark, 24);
		ob_puts(ob, ": ");
		mark = ob->len;
		ob_u64(ob, h->bucket[b]);
		ob_pad_from(ob, mark, 10);
		ob_puts(ob, "|");
		for (int i = 0; i < 40; i++)
			ob_putc(ob, i < stars ? '*' : ' ');
		ob_puts(ob, "|\n");
		ob_record_done(ob);
	}
}

static const char *const outcomes[] = { "unknown", "closed", "reset", "refused", "timeout", "aborted" };
static const char *const closers[] = { "none", "local", "remote", "both" };

static void text_counts(const struct summary *s, struct outbuf *ob)
{
	ob_puts(ob, "connections: ");
	ob_u64(ob, s->connections);
	ob_puts(ob, "\noutcome:");
	for (int i = 0; i < 6; i++) {
		ob_putc(ob, ' ');
		ob_puts(ob, outcomes[i]);
		ob_putc(ob, '=');
		ob_u64(ob, s->outcome[i]);
	}
	ob_puts(ob, "\ncloser: ");
	for (int i = 0; i < 4; i++) {
		ob_putc(ob, ' ');
		ob_puts(ob, closers[i]);
		ob_putc(ob, '=');
		ob_u64(ob, s->closer[i]);
	}
	ob_putc(ob, '\n');
}

static void text_tops(const struct summary *s, struct outbuf *ob)
{
	static struct port_count ports[SUMMARY_PORTS];
	static struct talker_count talkers[SUMMARY_TALKERS];
	uint32_t np = top_ports(s, ports), nt = top_talkers(s, talkers);

	ob_puts(ob, "\nPORT   ROLE     CONNECTIONS\n");
	for (uint32_t i = 0; i < np; i++) {
		size_t mark = ob->len;

		ob_u64(ob, ports[i].port);
		ob_pad_from(ob, mark, 7);
		ob_puts(ob, role_name(ports[i].role));
		ob_pad_from(ob, mark, 16);
		ob_u64(ob, ports[i].count);
		ob_putc(ob, '\n');
	}
	ob_puts(ob, "\nREMOTE                                   CONNECTIONS\n");
	for (uint32_t i = 0; i < nt; i++) {
		size_t mark = ob->len;

		ob_addr(ob, talkers[i].family, talkers[i].addr);
		ob_pad_from(ob, mark, 41);
		ob_u64(ob, talkers[i].count);
		ob_putc(ob, '\n');
		ob_record_done(ob);
	}
}

static void json_hist(struct outbuf *ob, const struct hist *h)
{
	int last = last_used_bucket(h);

	ob_putc(ob, '[');
	for (int b = 0; b <= last; b++) {
		ob_puts(ob, b ? ",{\"lo\":" : "{\"lo\":");
		ob_u64(ob, bucket_lo(b));
		ob_puts(ob, ",\"hi\":");
		ob_u64(ob, bucket_hi(b));
		ob_puts(ob, ",\"count\":");
		ob_u64(ob, h->bucket[b]);
		ob_putc(ob, '}');
	}
	ob_putc(ob, ']');
}

static void json_counts(const struct summary *s, struct outbuf *ob)
{
	ob_puts(ob, ",\"connections\":");
	ob_u64(ob, s->connections);
	ob_puts(ob, ",\"outcome\":{");
	for (int i = 0; i < 6; i++) {
		ob_puts(ob, i ? ",\"" : "\"");
		ob_puts(ob, outcomes[i]);
		ob_puts(ob, "\":");
		ob_u64(ob, s->outcome[i]);
	}
	ob_puts(ob, "},\"closer\":{");
	for (int i = 0; i < 4; i++) {
		ob_puts(ob, i ? ",\"" : "\"");
		ob_puts(ob, closers[i]);
		ob_puts(ob, "\":");
		ob_u64(ob, s->closer[i]);
	}
	ob_putc(ob, '}');
}

static void json_tops(const struct summary *s, struct outbuf *ob)
{
	static struct port_count ports[SUMMARY_PORTS];
	static struct talker_count talkers[SUMMARY_TALKERS];
	uint32_t np = top_ports(s, ports), nt = top_talkers(s, talkers);

	ob_puts(ob, ",\"top_ports\":[");
	for (uint32_t i = 0; i < np; i++) {
		ob_puts(ob, i ? ",{\"port\":" : "{\"port\":");
		ob_u64(ob, ports[i].port);
		ob_puts(ob, ",\"role\":\"");
		ob_puts(ob, role_name(ports[i].role));
		ob_puts(ob, "\",\"count\":");
		ob_u64(ob, ports[i].count);
		ob_putc(ob, '}');
	}
	ob_puts(ob, "],\"other_ports\":");
	ob_u64(ob, s->other_ports);
	ob_puts(ob, ",\"top_talkers\":[");
	for (uint32_t i = 0; i < nt; i++) {
		ob_puts(ob, i ? ",{\"addr\":\"" : "{\"addr\":\"");
		ob_addr(ob, talkers[i].family, talkers[i].addr);
		ob_puts(ob, "\",\"count\":");
		ob_u64(ob, talkers[i].count);
		ob_putc(ob, '}');
	}
	ob_puts(ob, "],\"other_talkers\":");
	ob_u64(ob, s->other_talkers);
}

void summary_write(const struct summary *s, struct outbuf *ob, bool json, uint64_t ts_ns,
		   uint64_t interval_ns)
{
	if (json) {
		ob_puts(ob, "{\"type\":\"summary\",\"v\":1,\"ts_ns\":");
		ob_u64(ob, ts_ns);
		ob_puts(ob, ",\"interval_ns\":");
		ob_u64(ob, interval_ns);
		json_counts(s, ob);
		ob_puts(ob, ",\"hist\":{");
		for (int h = 0; h < SH_COUNT; h++) {
			ob_puts(ob, h ? ",\"" : "\"");
			ob_puts(ob, hist_names[h]);
			ob_puts(ob, "\":");
			json_hist(ob, &s->hist[h]);
		}
		ob_putc(ob, '}');
		json_tops(s, ob);
		ob_puts(ob, "}\n");
		ob_record_done(ob);
		return;
	}
	text_counts(s, ob);
	for (int h = 0; h < SH_COUNT; h++)
		if (s->hist[h].count)
			text_hist(ob, &s->hist[h], hist_titles[h]);
	text_tops(s, ob);
	ob_putc(ob, '\n');
	ob_record_done(ob);
}
