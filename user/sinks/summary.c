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

struct summary *summary_new(void)
{
	return calloc(1, sizeof(struct summary));
}

void summary_free(struct summary *s)
{
	free(s);
}

void summary_reset(struct summary *s)
{
	memset(s, 0, sizeof(*s));
}

/* ---- bounded top-N tables (Space-Saving, see summary.h) ---------------- */

/* One table of either size, seen through pointers into the summary. */
struct top_view {
	struct top_entry *e;
	uint16_t *heap, *where, *index;
	uint32_t cap, *n;
	uint64_t *other;
};

#define TOP_VIEW(t, n_, other_)                                                         \
	((struct top_view){ (t).e, (t).heap, (t).where, (t).index,                      \
			    sizeof((t).e) / sizeof((t).e[0]), (n_), (other_) })

static uint32_t key_hash(const uint8_t *key, uint32_t mask)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (int i = 0; i < TOP_KEY_LEN; i++)
		h = (h ^ key[i]) * 16777619u;
	return h & mask;
}

/* The index position holding slot + 1 for key, or of the empty cell where it would go. */
static uint32_t index_probe(const struct top_view *v, const uint8_t *key)
{
	uint32_t mask = 2 * v->cap - 1, i = key_hash(key, mask);

	while (v->index[i] && memcmp(v->e[v->index[i] - 1].key, key, TOP_KEY_LEN))
		i = (i + 1) & mask;
	return i;
}

/* Linear-probing deletion by backward shift: no tombstones to pile up. */
static void index_remove(const struct top_view *v, const uint8_t *key)
{
	uint32_t mask = 2 * v->cap - 1, hole = index_probe(v, key), j = hole;

	for (;;) {
		uint32_t home;

		j = (j + 1) & mask;
		if (!v->index[j])
			break;
		home = key_hash(v->e[v->index[j] - 1].key, mask);
		/* Moves into the hole unless its home lies cyclically in (hole, j]. */
		if (hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)) {
			v->index[hole] = v->index[j];
			hole = j;
		}
	}
	v->index[hole] = 0;
}

static void heap_swap(const struct top_view *v, uint32_t a, uint32_t b)
{
	uint16_t t = v->heap[a];

	v->heap[a] = v->heap[b];
	v->heap[b] = t;
	v->where[v->heap[a]] = (uint16_t)a;
	v->where[v->heap[b]] = (uint16_t)b;
}

static uint64_t heap_count(const struct top_view *v, uint32_t i)
{
	return v->e[v->heap[i]].count;
}

/* A new entry (count 1, the least there is) rises above the larger counts. */
static void heap_up(const struct top_view *v, uint32_t i)
{
	while (i > 0 && heap_count(v, (i - 1) / 2) > heap_count(v, i)) {
		heap_swap(v, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

/* A count went up: the entry sinks below the smaller counts. */
static void heap_down(const struct top_view *v, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, min = i;

		if (l < *v->n && heap_count(v, l) < heap_count(v, min))
			min = l;
		if (r < *v->n && heap_count(v, r) < heap_count(v, min))
			min = r;
		if (min == i)
			return;
		heap_swap(v, i, min);
		i = min;
	}
}

static void top_add(const struct top_view *v, const uint8_t *key)
{
	uint32_t pos = index_probe(v, key), slot;

	if (v->index[pos]) {
		slot = v->index[pos] - 1u;
		v->e[slot].count++;
		heap_down(v, v->where[slot]);
		return;
	}
	if (*v->n < v->cap) {
		slot = (*v->n)++;
		v->e[slot] = (struct top_entry){ .count = 1 };
		v->heap[slot] = v->where[slot] = (uint16_t)slot;
		heap_up(v, slot);
	} else {
		/* Full: the least counted entry makes room and hands on its count. */
		slot = v->heap[0];
		*v->other += v->e[slot].count - v->e[slot].err;
		index_remove(v, v->e[slot].key);
		v->e[slot].err = v->e[slot].count++;
		pos = index_probe(v, key);
		heap_down(v, 0);
	}
	memcpy(v->e[slot].key, key, TOP_KEY_LEN);
	v->index[pos] = (uint16_t)(slot + 1);
}

static uint64_t certain(const struct top_entry *e)
{
	return e->count - e->err;
}

/* Before: more connections certain, then the smaller key (a stable order for tests and diffs). */
static bool ranks_before(const struct top_entry *a, const struct top_entry *b)
{
	if (certain(a) != certain(b))
		return certain(a) > certain(b);
	return memcmp(a->key, b->key, TOP_KEY_LEN) < 0;
}

/* The n best entries by insertion into a short sorted list: O(cap * n), n is 10. */
static uint32_t top_best(const struct top_view *v, const struct top_entry **best, uint32_t n)
{
	uint32_t got = 0;

	if (!n)
		return 0;
	for (uint32_t s = 0; s < *v->n; s++) {
		uint32_t i = got < n ? got++ : n;

		if (i == n && !ranks_before(&v->e[s], best[n - 1]))
			continue;
		if (i == n)
			i = n - 1;
		while (i > 0 && ranks_before(&v->e[s], best[i - 1])) {
			best[i] = best[i - 1];
			i--;
		}
		best[i] = &v->e[s];
	}
	return got;
}

static struct top_view port_view(const struct summary *s)
{
	struct summary *m = (struct summary *)s; /* views of a const summary only read */

	return TOP_VIEW(m->port_top, &m->nports, &m->other_ports);
}

static struct top_view talker_view(const struct summary *s)
{
	struct summary *m = (struct summary *)s;

	return TOP_VIEW(m->talker_top, &m->ntalkers, &m->other_talkers);
}

uint32_t summary_top_ports(const struct summary *s, struct top_item *out, uint32_t n)
{
	const struct top_entry *best[SUMMARY_PORTS];
	struct top_view v = port_view(s);
	uint32_t got = top_best(&v, best, n < SUMMARY_PORTS ? n : SUMMARY_PORTS);

	for (uint32_t i = 0; i < got; i++) {
		out[i] = (struct top_item){ .count = certain(best[i]), .role = best[i]->key[2] };
		memcpy(&out[i].port, best[i]->key, sizeof(out[i].port));
	}
	return got;
}

uint32_t summary_top_talkers(const struct summary *s, struct top_item *out, uint32_t n)
{
	const struct top_entry *best[SUMMARY_TALKERS];
	struct top_view v = talker_view(s);
	uint32_t got = top_best(&v, best, n < SUMMARY_TALKERS ? n : SUMMARY_TALKERS);

	for (uint32_t i = 0; i < got; i++) {
		out[i] = (struct top_item){ .count = certain(best[i]), .family = best[i]->key[0] };
		memcpy(out[i].addr, best[i]->key + 1, sizeof(out[i].addr));
	}
	return got;
}

static void count_port(struct summary *s, uint16_t port, uint8_t role)
{
	uint8_t key[TOP_KEY_LEN] = { 0 };
	struct top_view v = port_view(s);

	memcpy(key, &port, sizeof(port));
	key[2] = role;
	top_add(&v, key);
}

static void count_talker(struct summary *s, uint8_t family, const uint8_t *addr)
{
	uint8_t key[TOP_KEY_LEN] = { family };
	struct top_view v = talker_view(s);

	memcpy(key + 1, addr, 16);
	top_add(&v, key);
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

void summary_add_conn(struct summary *s, const struct lifecycle *l)
{
	const struct conn *c = l->c;

	s->connections++;
	s->outcome[l->outcome]++;
	s->closer[l->closer]++;
	if (l->handshake_us >= 0)
		hist_add(&s->hist[c->role == ROLE_SERVER ? SH_HANDSHAKE_SERVER : SH_HANDSHAKE_CLIENT],
			 (uint64_t)l->handshake_us);
	hist_add(&s->hist[SH_LIFETIME], (uint64_t)l->duration_us);
	add_state_times(s, c);
	/* Clients: the service they reach; servers: the service they offer. */
	if (c->role == ROLE_CLIENT)
		count_port(s, c->dport, ROLE_CLIENT);
	else if (c->role == ROLE_SERVER)
		count_port(s, c->sport, ROLE_SERVER);
	count_talker(s, c->family, c->daddr);
}

void summary_add_refusal(struct summary *s, uint16_t port)
{
	count_port(s, port, SUMMARY_ROLE_REFUSED);
}

static const char *port_role_name(uint8_t role)
{
	return role == SUMMARY_ROLE_REFUSED ? "refused" : role_name(role);
}

void summary_add_time_wait(struct summary *s, uint64_t time_wait_us)
{
	hist_add(&s->hist[SH_TIME_WAIT], time_wait_us);
}

static uint64_t bucket_lo(int b)
{
	return b ? 1ull << b : 0;
}

static uint64_t bucket_hi(int b)
{
	return b >= 63 ? UINT64_MAX : (1ull << (b + 1)) - 1;
}

static int last_used_bucket(const struct hist *h)
{
	int last = -1;

	for (int b = 0; b < HIST_BUCKETS; b++)
		if (h->bucket[b])
			last = b;
	return last;
}

static void pad(struct outbuf *ob, int n)
{
	while (n-- > 0)
		ob_putc(ob, ' ');
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

/* bcc's "%*d -> %-*d : %-8d |%-40s|": width 10, or 20 once values pass 2^32. */
static void text_hist_row(struct outbuf *ob, int b, uint64_t count, uint64_t max, int width)
{
	int stars = max ? (int)((double)count * 40 / (double)max) : 0;

	pad(ob, width - digits(bucket_lo(b)));
	ob_u64(ob, bucket_lo(b));
	ob_puts(ob, " -> ");
	ob_u64(ob, bucket_hi(b));
	pad(ob, width - digits(bucket_hi(b)));
	ob_puts(ob, " : ");
	ob_u64(ob, count);
	pad(ob, 8 - digits(count));
	ob_puts(ob, " |");
	for (int i = 0; i < 40; i++)
		ob_putc(ob, i < stars ? '*' : ' ');
	ob_puts(ob, "|\n");
}

/* Like bcc's print_log2_hist: a row per bucket up to the last used, bars scaled to 40. */
static void text_hist(struct outbuf *ob, const struct hist *h, const char *title)
{
	uint64_t max = 0;
	int last = last_used_bucket(h), wide = last > 32;

	ob_putc(ob, '\n');
	ob_puts(ob, title);
	ob_putc(ob, '\n');
	pad(ob, wide ? 15 : 5);
	ob_puts(ob, "usecs");
	pad(ob, (wide ? 29 : 19) - 5);
	ob_puts(ob, " : count     distribution\n");
	for (int b = 0; b <= last; b++)
		if (h->bucket[b] > max)
			max = h->bucket[b];
	for (int b = 0; b <= last; b++) {
		text_hist_row(ob, b, h->bucket[b], max, wide ? 20 : 10);
		ob_record_done(ob);
	}
}

static void text_counts(const struct summary *s, struct outbuf *ob)
{
	ob_puts(ob, "connections: ");
	ob_u64(ob, s->connections);
	ob_puts(ob, "\noutcome:");
	for (int i = 0; i < OUTCOME_COUNT; i++) {
		ob_putc(ob, ' ');
		ob_puts(ob, outcome_label(i));
		ob_putc(ob, '=');
		ob_u64(ob, s->outcome[i]);
	}
	ob_puts(ob, "\ncloser: ");
	for (int i = 0; i < CLOSER_COUNT; i++) {
		ob_putc(ob, ' ');
		ob_puts(ob, closer_label(i));
		ob_putc(ob, '=');
		ob_u64(ob, s->closer[i]);
	}
	ob_putc(ob, '\n');
}

static void text_tops(const struct summary *s, struct outbuf *ob)
{
	struct top_item ports[SUMMARY_TOP], talkers[SUMMARY_TOP];
	uint32_t np = summary_top_ports(s, ports, SUMMARY_TOP);
	uint32_t nt = summary_top_talkers(s, talkers, SUMMARY_TOP);

	ob_puts(ob, "\nPORT   ROLE     CONNECTIONS\n");
	for (uint32_t i = 0; i < np; i++) {
		size_t mark = ob->len;

		ob_u64(ob, ports[i].port);
		ob_pad_from(ob, mark, 7);
		ob_puts(ob, port_role_name(ports[i].role));
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
	for (int i = 0; i < OUTCOME_COUNT; i++) {
		ob_puts(ob, i ? ",\"" : "\"");
		ob_puts(ob, outcome_label(i));
		ob_puts(ob, "\":");
		ob_u64(ob, s->outcome[i]);
	}
	ob_puts(ob, "},\"closer\":{");
	for (int i = 0; i < CLOSER_COUNT; i++) {
		ob_puts(ob, i ? ",\"" : "\"");
		ob_puts(ob, closer_label(i));
		ob_puts(ob, "\":");
		ob_u64(ob, s->closer[i]);
	}
	ob_putc(ob, '}');
}

static void json_tops(const struct summary *s, struct outbuf *ob)
{
	struct top_item ports[SUMMARY_TOP], talkers[SUMMARY_TOP];
	uint32_t np = summary_top_ports(s, ports, SUMMARY_TOP);
	uint32_t nt = summary_top_talkers(s, talkers, SUMMARY_TOP);

	ob_puts(ob, ",\"top_ports\":[");
	for (uint32_t i = 0; i < np; i++) {
		ob_puts(ob, i ? ",{\"port\":" : "{\"port\":");
		ob_u64(ob, ports[i].port);
		ob_puts(ob, ",\"role\":\"");
		ob_puts(ob, port_role_name(ports[i].role));
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

/* Listening sockets: the port, its accept queue now, at its peak and its backlog, its drops. */
static void text_listeners(const struct listener_table *t, struct outbuf *ob)
{
	if (!t || !t->n)
		return;
	ob_puts(ob, "\nLISTEN PORT  QUEUE  PEAK  BACKLOG  DROPS  SYNACK_RETRANS  NETNS\n");
	for (uint32_t i = 0; i < t->n; i++) {
		const struct listener_health *l = &t->l[i];
		size_t mark = ob->len;

		ob_u64(ob, l->port);
		ob_pad_from(ob, mark, 13);
		ob_u64(ob, l->queue);
		ob_pad_from(ob, mark, 20);
		ob_u64(ob, l->peak);
		ob_pad_from(ob, mark, 26);
		ob_u64(ob, l->backlog);
		ob_pad_from(ob, mark, 35);
		ob_u64(ob, listener_drops(l));
		ob_pad_from(ob, mark, 42);
		if (l->synack_retrans < 0)
			ob_putc(ob, '-');
		else
			ob_u64(ob, (uint64_t)l->synack_retrans);
		ob_pad_from(ob, mark, 58);
		ob_u64(ob, l->netns);
		ob_puts(ob, l->gone ? " (closed)\n" : "\n");
	}
}

static void json_listeners(const struct listener_table *t, struct outbuf *ob)
{
	ob_puts(ob, ",\"listeners\":[");
	for (uint32_t i = 0; t && i < t->n; i++) {
		const struct listener_health *l = &t->l[i];

		ob_puts(ob, i ? ",{\"port\":" : "{\"port\":");
		ob_u64(ob, l->port);
		ob_puts(ob, ",\"netns\":");
		ob_u64(ob, l->netns);
		ob_puts(ob, ",\"family\":");
		ob_puts(ob, l->family == 10 ? "\"ipv6\"" : "\"ipv4\"");
		ob_puts(ob, ",\"queue\":");
		ob_u64(ob, l->queue);
		ob_puts(ob, ",\"queue_peak\":");
		ob_u64(ob, l->peak);
		ob_puts(ob, ",\"backlog\":");
		ob_u64(ob, l->backlog);
		ob_puts(ob, ",\"drops\":");
		ob_u64(ob, listener_drops(l));
		ob_puts(ob, ",\"synack_retrans\":");
		if (l->synack_retrans < 0)
			ob_puts(ob, "null");
		else
			ob_u64(ob, (uint64_t)l->synack_retrans);
		ob_puts(ob, l->gone ? ",\"closed\":true}" : ",\"closed\":false}");
	}
	ob_putc(ob, ']');
}

/* SYN cookies per namespace (the kernel counts no finer): those with any, as a table. */
static void text_syncookies(const struct listener_table *t, struct outbuf *ob)
{
	bool header = false;

	for (uint32_t i = 0; t && i < t->nnetns; i++) {
		const struct listener_netns *n = &t->ns[i];
		size_t mark;

		if (!listener_netns_cookies(n, COOKIES_SENT) &&
		    !listener_netns_cookies(n, COOKIES_VALIDATED) &&
		    !listener_netns_cookies(n, COOKIES_FAILED))
			continue;
		if (!header)
			ob_puts(ob, "\nSYN COOKIES  NETNS       SENT  VALIDATED  FAILED\n");
		header = true;
		mark = ob->len;
		ob_pad_from(ob, mark, 13);
		ob_u64(ob, n->netns);
		ob_pad_from(ob, mark, 25);
		ob_u64(ob, listener_netns_cookies(n, COOKIES_SENT));
		ob_pad_from(ob, mark, 31);
		ob_u64(ob, listener_netns_cookies(n, COOKIES_VALIDATED));
		ob_pad_from(ob, mark, 42);
		ob_u64(ob, listener_netns_cookies(n, COOKIES_FAILED));
		ob_putc(ob, '\n');
	}
}

/* [{"netns":…,"sent":…,"validated":…,"failed":…}] for each namespace looked at. */
static void json_syncookies(const struct listener_table *t, struct outbuf *ob)
{
	uint32_t shown = 0;

	ob_puts(ob, ",\"syncookies\":[");
	for (uint32_t i = 0; t && i < t->nnetns; i++) {
		const struct listener_netns *n = &t->ns[i];

		if (!n->cookies_known)
			continue;
		ob_puts(ob, shown++ ? ",{\"netns\":" : "{\"netns\":");
		ob_u64(ob, n->netns);
		ob_puts(ob, ",\"sent\":");
		ob_u64(ob, listener_netns_cookies(n, COOKIES_SENT));
		ob_puts(ob, ",\"validated\":");
		ob_u64(ob, listener_netns_cookies(n, COOKIES_VALIDATED));
		ob_puts(ob, ",\"failed\":");
		ob_u64(ob, listener_netns_cookies(n, COOKIES_FAILED));
		ob_putc(ob, '}');
	}
	ob_putc(ob, ']');
}

void summary_write(const struct summary *s, const struct listener_table *listeners,
		   struct outbuf *ob, bool json, uint64_t ts_ns, uint64_t interval_ns)
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
		json_listeners(listeners, ob);
		json_syncookies(listeners, ob);
		ob_puts(ob, "}\n");
		ob_record_done(ob);
		return;
	}
	text_counts(s, ob);
	for (int h = 0; h < SH_COUNT; h++)
		if (s->hist[h].count)
			text_hist(ob, &s->hist[h], hist_titles[h]);
	text_tops(s, ob);
	text_listeners(listeners, ob);
	text_syncookies(listeners, ob);
	ob_putc(ob, '\n');
	ob_record_done(ob);
}

/* ---- the summary sink ---------------------------------------------------- */

static struct summary_sink *ss_of(struct sink *s)
{
	return (struct summary_sink *)s;
}

static void ss_conn(struct sink *s, const struct lifecycle *l)
{
	summary_add_conn(&ss_of(s)->sum, l);
}

static void ss_reset(struct sink *s, const struct synfin_event *e)
{
	summary_add_refusal(&ss_of(s)->sum, e->sport);
}

static void ss_tw_end(struct sink *s, const struct tw_entry *e, enum tw_end how, uint64_t now_ns)
{
	if (how != TW_END_UNSEEN)
		summary_add_time_wait(&ss_of(s)->sum, (now_ns - e->entered_ns) / 1000);
}

/*
 * Writes the interval that ends now and starts the next. Out at once, not
 * with the next block a pipe gets: its reader is waiting for it now.
 */
static void ss_write(struct summary_sink *ss, uint64_t now_ns)
{
	summary_write(&ss->sum, ss->listeners, ss->ob, ss->json, now_ns, now_ns - ss->last_ns);
	ob_record_done(ss->ob);
	ob_flush(ss->ob);
	summary_reset(&ss->sum);
	ss->last_ns = now_ns;
	ss->next_ns = now_ns + ss->interval_ns;
}

static void ss_tick(struct sink *s, uint64_t now_ns, const struct sink_status *st)
{
	struct summary_sink *ss = ss_of(s);

	(void)st;
	if (ss->interval_ns && now_ns >= ss->next_ns)
		ss_write(ss, now_ns);
}

static void ss_report(struct sink *s, uint64_t now_ns, bool final)
{
	(void)final;
	ss_write(ss_of(s), now_ns);
}

static const struct sink_ops summary_ops = {
	.conn = ss_conn,
	.tw_end = ss_tw_end,
	.reset = ss_reset,
	.tick = ss_tick,
	.report = ss_report,
};

void summary_sink_init(struct summary_sink *ss, struct outbuf *ob, bool json, uint64_t interval_ns,
		       uint64_t now_ns)
{
	memset(&ss->sum, 0, sizeof(ss->sum));
	ss->sink.ops = &summary_ops;
	ss->ob = ob;
	ss->json = json;
	ss->interval_ns = interval_ns;
	ss->last_ns = now_ns;
	ss->next_ns = now_ns + interval_ns;
}
