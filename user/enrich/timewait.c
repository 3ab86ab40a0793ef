#include "timewait.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bigmem.h"
#include "index.h"
#include "netnsdiag.h"

#define FIRST_LOOK_NS 50000000ull   /* confirm soon after the close */
#define AFTER_DUE_NS 200000000ull   /* the timer wheel fires a little late */
#define RECHECK_NS 250000000ull
#define DUMP_INTERVAL_NS 1000000000ull
/* A time-wait socket lives TCP_TIMEWAIT_LEN (60 s); gone much sooner means something ended it. */
#define EARLY_MARGIN_NS 1000000000ull
/*
 * Namespaces with a diag socket open at once. A socket pins its namespace:
 * each is closed as soon as nothing of its namespace is followed, and a
 * namespace that nothing else holds any more (no process in it, no bind
 * mount of it) ends its followed sockets at once.
 */
#define MAX_NETNS 32
#define REACHABLE_CHECK_NS 1000000000ull
/* sock_diag can fail for a moment (its modules load on first use): retry before giving up. */
#define MAX_LOOKUP_ERRORS 8
/* Filtered dumps a second per namespace, while learning whether exact lookups see time-wait sockets. */
#define PROBES_PER_SECOND 10
/*
 * TW_VIA_TIMERS: a cancel is an end unless the same mini-socket's timer is
 * armed again right after (a FIN re-arms it: cancel and arm in one call of
 * the kernel's, microseconds apart). Waiting this long settles which.
 */
#define REARM_WAIT_NS 20000000ull
/*
 * A followed mini-socket whose end never came (its record lost with a full
 * ring): a TIME_WAIT lasts TCP_TIMEWAIT_LEN, a FIN_WAIT2 substate up to
 * tcp_fin_timeout more, plus the timer wheel's slack; past this it is "unseen".
 */
#define END_NOT_SEEN_NS 180000000000ull

/* TW_VIA_TIMERS: a lifecycle waiting for its FIN_WAIT2 mini-socket's FIN (tw_hold_conn()). */
struct held {
	struct conn c;
	uint32_t entry; /* index of its tw_entry */
	uint64_t until_ns;
};

struct netns_sock {
	uint32_t netns;
	int fd;
	bool dump_mode;     /* exact lookups do not see time-wait sockets here */
	bool exact_works;   /* an exact lookup has found a time-wait socket here */
	uint64_t last_dump_ns; /* the last full dump */
	uint64_t probe_second_ns;
	uint32_t probes_this_second;
	/* Counts this namespace's dumps: another namespace's dump says nothing about ours. */
	uint32_t dump_gen;
	bool followed;  /* an entry of this namespace is in the table (this poll) */
	bool reachable; /* the last look found it held by a process or a bind mount */
};

struct tw_table {
	enum tw_mode mode;
	uint32_t cap, used, nfree;
	uint32_t fresh; /* entries [fresh, cap) never used yet: taken in order, pages touched as used */
	uint64_t untracked, skipped;
	uint32_t attached;     /* TW_VIA_TIMERS: entries with their connection */
	uint32_t *cancels;     /* TW_VIA_TIMERS: entries whose timer was cancelled, to settle */
	/* TW_VIA_TIMERS: entries in the order they were attached, to find ends never seen */
	struct aged { uint32_t idx; uint64_t entered_ns; } *aged;
	uint32_t aged_cap, aged_first, aged_count;
	uint32_t ncancels, cancels_cap;
	struct held *held; /* TW_VIA_TIMERS: lifecycles waiting for a FIN, in no order */
	uint32_t nheld, held_cap;
	tw_conn_fn release;
	void *release_ctx;
	uint32_t seq;
	uint32_t self_netns;
	uint64_t second_start_ns;
	uint32_t added_this_second;
	struct netns_sock socks[MAX_NETNS];
	uint32_t nsocks;
	uint64_t reach_check_ns; /* the last look for namespaces gone */
	int fatal; /* errno of a failure that must end tracing (stuck in another namespace) */
	struct index by_key;
	struct index by_tw; /* TW_VIA_TIMERS: entries whose mini-socket's address is known */
	uint32_t *free;
	struct tw_entry *entries;
	/* Each used from its start up: faulted in ahead of use, off the reader (bigmem.h). */
	struct big_ahead entries_ahead, free_ahead, aged_ahead;
};

static uint64_t entry_key(const void *entry)
{
	return ((const struct tw_entry *)entry)->key;
}

static uint64_t entry_tw(const void *entry)
{
	return ((const struct tw_entry *)entry)->tw;
}

/* An SF_TW_EXPIRED record fills a ring slot as a synfin_event does, and is told by the same bytes. */
_Static_assert(sizeof(struct synfin_tw_expiries) == sizeof(struct synfin_event) &&
		       offsetof(struct synfin_tw_expiries, type) ==
			       offsetof(struct synfin_event, type) &&
		       offsetof(struct synfin_tw_expiries, tw_kind) ==
			       offsetof(struct synfin_event, tw_kind),
	       "struct synfin_tw_expiries must overlay struct synfin_event");

/* FNV-1a of the namespace and the tuple as sock_diag reports it (local side first). */
static uint64_t tuple_hash(uint32_t netns, uint8_t family, const uint8_t *saddr, uint16_t sport,
			   const uint8_t *daddr, uint16_t dport)
{
	size_t n = family == AF_INET ? 4 : 16;
	uint64_t h = (1469598103934665603ull ^ netns) * 1099511628211ull ^ family;
	const uint8_t *parts[2] = { saddr, daddr };

	for (int p = 0; p < 2; p++)
		for (size_t i = 0; i < n; i++)
			h = (h ^ parts[p][i]) * 1099511628211ull;
	return (h ^ ((uint64_t)sport << 16 | dport)) * 1099511628211ull;
}

struct tw_table *tw_new(uint32_t cap, enum tw_mode mode)
{
	struct tw_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->mode = mode;
	t->cap = cap;
	t->aged_cap = mode == TW_VIA_TIMERS ? 2 * cap : 0;
	t->aged = t->aged_cap ? big_zalloc((size_t)t->aged_cap * sizeof(*t->aged)) : NULL;
	t->entries = big_zalloc((size_t)cap * sizeof(*t->entries));
	t->free = big_zalloc((size_t)cap * sizeof(*t->free));
	if (!t->entries || !t->free || (t->aged_cap && !t->aged) ||
	    index_init(&t->by_key, 2 * cap, t->entries, sizeof(*t->entries), entry_key) ||
	    (mode == TW_VIA_TIMERS &&
	     index_init(&t->by_tw, 2 * cap, t->entries, sizeof(*t->entries), entry_tw))) {
		tw_free(t);
		return NULL;
	}
	big_ahead_watch(&t->entries_ahead, t->entries, (size_t)cap * sizeof(*t->entries));
	big_ahead_watch(&t->free_ahead, t->free, (size_t)cap * sizeof(*t->free));
	big_ahead_watch(&t->aged_ahead, t->aged, (size_t)t->aged_cap * sizeof(*t->aged));
	t->self_netns = netns_inode("/proc/self/ns/net");
	return t;
}

static void close_netns_socks(struct tw_table *t)
{
	for (uint32_t i = 0; i < t->nsocks; i++)
		close(t->socks[i].fd);
	t->nsocks = 0;
}

/* Closes socks[i]: its namespace is free to go. */
static void drop_netns_sock(struct tw_table *t, uint32_t i)
{
	close(t->socks[i].fd);
	t->socks[i] = t->socks[--t->nsocks];
}

void tw_free(struct tw_table *t)
{
	if (!t)
		return;
	close_netns_socks(t);
	big_ahead_forget(&t->entries_ahead);
	big_ahead_forget(&t->free_ahead);
	big_ahead_forget(&t->aged_ahead);
	index_free(&t->by_key);
	index_free(&t->by_tw);
	free(t->cancels);
	free(t->held);
	big_free(t->aged, (size_t)t->aged_cap * sizeof(*t->aged));
	big_free(t->free, (size_t)t->cap * sizeof(*t->free));
	big_free(t->entries, (size_t)t->cap * sizeof(*t->entries));
	free(t);
}

uint32_t tw_held(const struct tw_table *t)
{
	uint32_t n = 0;

	if (t->mode == TW_VIA_TIMERS)
		return t->attached;
	for (uint32_t i = 0; i < t->fresh; i++)
		n += t->entries[i].in_use && t->entries[i].substate;
	return n;
}

uint64_t tw_untracked(const struct tw_table *t)
{
	return t->untracked;
}

uint64_t tw_skipped(const struct tw_table *t)
{
	return t->skipped;
}

enum tw_mode tw_mode_of(const struct tw_table *t)
{
	return t->mode;
}

static bool over_rate(struct tw_table *t, uint64_t now_ns)
{
	if (now_ns - t->second_start_ns >= 1000000000ull) {
		t->second_start_ns = now_ns;
		t->added_this_second = 0;
	}
	return ++t->added_this_second > TW_MAX_NEW_PER_SECOND;
}

static bool has_free(const struct tw_table *t)
{
	return t->nfree || t->fresh < t->cap;
}

static struct tw_entry *new_entry(struct tw_table *t)
{
	struct tw_entry *e = &t->entries[t->nfree ? t->free[--t->nfree] : t->fresh++];

	big_ahead_used(&t->entries_ahead, (size_t)t->fresh * sizeof(*t->entries));
	memset(e, 0, sizeof(*e));
	e->in_use = 1;
	t->used++;
	return e;
}

static void copy_conn(struct tw_entry *e, const struct conn *c)
{
	e->entered_ns = e->fin_ns ? e->fin_ns : c->state_ns;
	e->pid = c->pid;
	e->owner_unknown = c->owner_unknown;
	memcpy(e->comm, c->comm, sizeof(e->comm));
}

static void index_entry(struct tw_table *t, struct tw_entry *e)
{
	e->key = tuple_hash(e->netns, e->family, e->saddr, e->sport, e->daddr, e->dport);
	/* A repeated key (the same tuple again) is found through the first: fine. */
	index_add(&t->by_key, index_find(&t->by_key, e->key), (uint32_t)(e - t->entries));
}

/* The entry following this namespace and tuple, or NULL. */
static struct tw_entry *find_entry(struct tw_table *t, uint32_t netns, uint8_t family,
				   const uint8_t *saddr, uint16_t sport, const uint8_t *daddr,
				   uint16_t dport)
{
	uint64_t key = tuple_hash(netns, family, saddr, sport, daddr, dport);
	int64_t at = index_at(&t->by_key, index_find(&t->by_key, key));
	struct tw_entry *e = at < 0 ? NULL : &t->entries[at];

	if (!e || e->netns != netns || e->family != family || e->sport != sport ||
	    e->dport != dport)
		return NULL;
	return e;
}

/* The key an entry is indexed and matched by: the connection's tuple in its namespace. */
static void copy_tuple(struct tw_entry *e, const struct conn *c)
{
	memcpy(e->saddr, c->saddr, sizeof(e->saddr));
	memcpy(e->daddr, c->daddr, sizeof(e->daddr));
	e->netns = c->netns;
	e->sport = c->sport;
	e->dport = c->dport;
	e->family = c->family;
}

static enum tw_fate add_diag(struct tw_table *t, const struct conn *c)
{
	struct tw_entry *e;

	if (!has_free(t) || over_rate(t, c->state_ns)) {
		t->untracked++;
		return TW_UNTRACKED;
	}
	e = new_entry(t);
	copy_conn(e, c);
	e->next_check_ns = c->state_ns + FIRST_LOOK_NS;
	copy_tuple(e, c);
	index_entry(t, e);
	return TW_FOLLOWED;
}

/* Past aged_cap waiting at once (ends came early, in bulk), an entry is not watched for. */
static void remember_age(struct tw_table *t, const struct tw_entry *e)
{
	uint32_t at = (t->aged_first + t->aged_count) % t->aged_cap;

	if (t->aged_count == t->aged_cap)
		return;
	big_ahead_used(&t->aged_ahead, (size_t)(at + 1) * sizeof(*t->aged));
	t->aged[at] = (struct aged){ (uint32_t)(e - t->entries), e->entered_ns };
	t->aged_count++;
}

static void finish(struct tw_table *t, struct tw_entry *e, enum tw_end how, uint64_t now_ns,
		   tw_end_fn fn, void *ctx);

static void attach(struct tw_table *t, struct tw_entry *e, const struct conn *c)
{
	copy_conn(e, c);
	e->attached = 1;
	t->attached++;
	remember_age(t, e);
}

/* A follow-up entry made from the connection: its mini-socket's records are still to come. */
static struct tw_entry *entry_of_conn(struct tw_table *t, const struct conn *c)
{
	struct tw_entry *e;

	if (!has_free(t) || !index_has_room(&t->by_key))
		return NULL;
	e = new_entry(t);
	copy_tuple(e, c);
	e->substate = c->close_flags & SF_CLOSE_TIME_WAIT ? SF_TCP_TIME_WAIT : SF_TCP_FIN_WAIT2;
	index_entry(t, e);
	return e;
}

/*
 * The BPF program says whether the mini-socket was armed (SF_CLOSE_TW_MADE).
 * Its arm record usually came just before and waits unattached; it comes
 * after when the task moved to another CPU in between.
 */
static enum tw_fate add_timed(struct tw_table *t, const struct conn *c, tw_end_fn fn, void *ctx)
{
	struct tw_entry *e;

	if (!(c->close_flags & SF_CLOSE_TW_MADE)) {
		t->skipped++;
		return TW_SKIPPED;
	}
	e = find_entry(t, c->netns, c->family, c->saddr, c->sport, c->daddr, c->dport);
	if (e && e->attached) { /* the tuple's previous TIME_WAIT ended before this began */
		finish(t, e, TW_END_EARLY, e->cancel_ns ? e->cancel_ns : c->state_ns, fn, ctx);
		e = NULL;
	}
	if (!e)
		e = entry_of_conn(t, c);
	if (!e) {
		t->untracked++;
		return TW_UNTRACKED;
	}
	attach(t, e, c);
	return TW_FOLLOWED;
}

enum tw_fate tw_add(struct tw_table *t, const struct conn *c, tw_end_fn fn, void *ctx)
{
	return t->mode == TW_VIA_TIMERS ? add_timed(t, c, fn, ctx) : add_diag(t, c);
}

static struct netns_sock *socket_for(struct tw_table *t, uint32_t netns)
{
	int fd;

	for (uint32_t i = 0; i < t->nsocks; i++)
		if (t->socks[i].netns == netns)
			return &t->socks[i];
	if (t->nsocks == MAX_NETNS)
		return NULL;
	fd = netns == t->self_netns ? diag_socket() : diag_socket_in(netns, &t->fatal);
	if (fd < 0)
		return NULL;
	t->socks[t->nsocks] = (struct netns_sock){ .netns = netns, .fd = fd };
	return &t->socks[t->nsocks++];
}

int tw_parse_reply(const void *buf, size_t len, struct tw_lookup *out)
{
	const struct nlmsghdr *nh = buf;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(*nh) || nh->nlmsg_len < sizeof(*nh) || nh->nlmsg_len > len)
		return -1;
	if (nh->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *err = NLMSG_DATA(nh);

		if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*err)))
			return -1;
		out->found = err->error == -ENOENT ? 0 : -1;
		return 0;
	}
	if (!diag_is_socket(nh))
		return -1;
	const struct inet_diag_msg *msg = NLMSG_DATA(nh);

	out->found = 1;
	out->state = msg->idiag_state;
	out->expires_ms = msg->idiag_expires;
	return 0;
}

static void to_tw_socket(const struct inet_diag_msg *m, struct tw_socket *s)
{
	memset(s, 0, sizeof(*s));
	s->family = m->idiag_family;
	s->state = m->idiag_state;
	s->sport = ntohs(m->id.idiag_sport);
	s->dport = ntohs(m->id.idiag_dport);
	memcpy(s->saddr, m->id.idiag_src, 16);
	memcpy(s->daddr, m->id.idiag_dst, 16);
	s->expires_ms = m->idiag_expires;
}

int tw_parse_dump(const void *buf, size_t len, void (*fn)(void *ctx, const struct tw_socket *s),
		  void *ctx)
{
	const char *p = buf;

	while (len >= sizeof(struct nlmsghdr)) {
		const struct nlmsghdr *nh = (const void *)p;
		struct tw_socket s;
		size_t step;

		if (nh->nlmsg_len < sizeof(*nh) || nh->nlmsg_len > len)
			return -1;
		if (nh->nlmsg_type == NLMSG_DONE)
			return 1;
		if (!diag_is_socket(nh))
			return -1;
		to_tw_socket(NLMSG_DATA(nh), &s);
		fn(ctx, &s);
		step = NLMSG_ALIGN(nh->nlmsg_len);
		if (step >= len)
			break;
		p += step;
		len -= step;
	}
	return 0;
}

static void fill_id(struct inet_diag_sockid *id, const struct tw_entry *e)
{
	id->idiag_sport = htons(e->sport);
	id->idiag_dport = htons(e->dport);
	memcpy(id->idiag_src, e->saddr, e->family == AF_INET ? 4 : 16);
	memcpy(id->idiag_dst, e->daddr, e->family == AF_INET ? 4 : 16);
	id->idiag_cookie[0] = id->idiag_cookie[1] = INET_DIAG_NOCOOKIE;
}

/*
 * inet_diag bytecode that keeps only sockets with these ports: each test is
 * an op and a second op whose `no` holds the port; a failed test jumps past
 * the end (rejected), passing them all reaches the end (kept). The kernel
 * still walks every socket, but copies out only the matches.
 */
struct port_filter {
	struct nlattr nla;
	struct inet_diag_bc_op ops[4];
};

static void fill_port_filter(struct port_filter *f, uint16_t sport, uint16_t dport)
{
	f->nla.nla_len = sizeof(*f);
	f->nla.nla_type = INET_DIAG_REQ_BYTECODE;
	f->ops[0] = (struct inet_diag_bc_op){ INET_DIAG_BC_S_EQ, 8, 16 + 4 };
	f->ops[1] = (struct inet_diag_bc_op){ 0, 0, sport };
	f->ops[2] = (struct inet_diag_bc_op){ INET_DIAG_BC_D_EQ, 8, 8 + 4 };
	f->ops[3] = (struct inet_diag_bc_op){ 0, 0, dport };
}

/* e: the exact tuple to look up (no NLM_F_DUMP), or the ports a dump keeps (NULL: all). */
static int send_request(int fd, uint32_t seq, uint16_t flags, uint8_t family, uint32_t states,
			const struct tw_entry *e)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 req;
		struct port_filter filter;
	} msg = { .nh = { .nlmsg_len = sizeof(struct nlmsghdr) + sizeof(struct inet_diag_req_v2), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			  .nlmsg_flags = flags, .nlmsg_seq = seq },
		  .req = { .sdiag_family = family, .sdiag_protocol = IPPROTO_TCP,
			   .idiag_states = states } };
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	if (e && !(flags & NLM_F_DUMP))
		fill_id(&msg.req.id, e);
	if (e && (flags & NLM_F_DUMP)) {
		fill_port_filter(&msg.filter, e->sport, e->dport);
		msg.nh.nlmsg_len = sizeof(msg);
	}
	return sendto(fd, &msg, msg.nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0 ?
		       -1 : 0;
}

ssize_t tw_recv_reply(int fd, uint32_t seq, void *buf, size_t size)
{
	for (;;) {
		ssize_t n = recv(fd, buf, size, 0);
		const struct nlmsghdr *nh = buf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < (ssize_t)sizeof(*nh) || nh->nlmsg_seq == seq)
			return n;
	}
}

/* One exact lookup: does this 4-tuple still have a socket, and in what state? */
static struct tw_lookup lookup(struct tw_table *t, int fd, const struct tw_entry *e)
{
	struct tw_lookup res = { .found = -1 };
	char buf[8192];
	ssize_t n;

	if (send_request(fd, ++t->seq, NLM_F_REQUEST, e->family, ~0u, e))
		return res;
	n = tw_recv_reply(fd, t->seq, buf, sizeof(buf));
	if (n <= 0 || tw_parse_reply(buf, (size_t)n, &res))
		res.found = -1;
	return res;
}

static bool is_time_wait_state(uint8_t state)
{
	return state == SF_TCP_TIME_WAIT || state == SF_TCP_FIN_WAIT2;
}

struct dump_ctx {
	struct tw_table *t;
	const struct netns_sock *ns;
	uint64_t now_ns;
};

/* A dumped socket: mark the entry that follows it as seen in this dump. */
static void on_dumped(void *ctx, const struct tw_socket *s)
{
	struct dump_ctx *d = ctx;
	struct tw_table *t = d->t;
	int64_t at;
	struct tw_entry *e;

	at = index_at(&t->by_key, index_find(&t->by_key, tuple_hash(d->ns->netns, s->family,
								     s->saddr, s->sport, s->daddr,
								     s->dport)));
	if (at < 0)
		return;
	e = &t->entries[at];
	if (e->netns != d->ns->netns || e->sport != s->sport || e->dport != s->dport ||
	    !is_time_wait_state(s->state))
		return;
	e->dump_gen = d->ns->dump_gen;
	e->substate = s->state;
	e->due_ns = d->now_ns + s->expires_ms * 1000000ull;
}

/* Lists the namespace's time-wait sockets (both families; with only, those with
 * its ports); false on failure. */
static bool dump_netns(struct tw_table *t, struct netns_sock *ns, uint64_t now_ns,
		       const struct tw_entry *only)
{
	static const uint8_t families[] = { AF_INET, AF_INET6 };
	struct dump_ctx ctx = { .t = t, .ns = ns, .now_ns = now_ns };
	static char buf[65536];

	ns->dump_gen++;
	for (size_t f = 0; f < sizeof(families); f++) {
		int done = 0;

		if (send_request(ns->fd, ++t->seq, NLM_F_REQUEST | NLM_F_DUMP, families[f],
				 (1u << SF_TCP_TIME_WAIT) | (1u << SF_TCP_FIN_WAIT2), only))
			return false;
		while (!done) {
			ssize_t n = tw_recv_reply(ns->fd, t->seq, buf, sizeof(buf));

			done = n <= 0 ? -1 : tw_parse_dump(buf, (size_t)n, on_dumped, &ctx);
			if (done < 0)
				return false;
		}
	}
	if (!only)
		ns->last_dump_ns = now_ns;
	return true;
}

static void release(struct tw_table *t, struct tw_entry *e);

static void finish(struct tw_table *t, struct tw_entry *e, enum tw_end how, uint64_t now_ns,
		   tw_end_fn fn, void *ctx)
{
	if (e->held)
		release(t, e); /* its lifecycle before its end */
	if (t->mode == TW_VIA_SOCK_DIAG || e->attached)
		fn(ctx, e, how, now_ns);
	if (e->attached)
		t->attached--;
	if (e->tw)
		index_clear(&t->by_tw, index_slot_of(&t->by_tw, (uint32_t)(e - t->entries)));
	index_clear(&t->by_key, index_slot_of(&t->by_key, (uint32_t)(e - t->entries)));
	e->in_use = 0;
	big_ahead_used(&t->free_ahead, (size_t)(t->nfree + 1) * sizeof(*t->free));
	t->free[t->nfree++] = (uint32_t)(e - t->entries);
	t->used--;
}

/* Not (or no longer) there: how did its TIME_WAIT end? */
static void finish_gone(struct tw_table *t, struct tw_entry *e, uint64_t now_ns, tw_end_fn fn,
			void *ctx)
{
	if (!e->substate)
		finish(t, e, TW_END_UNSEEN, now_ns, fn, ctx);
	else
		finish(t, e, now_ns + EARLY_MARGIN_NS < e->due_ns ? TW_END_EARLY : TW_END_EXPIRED,
		       now_ns, fn, ctx);
}

static void schedule_next(struct tw_entry *e, uint64_t now_ns)
{
	e->next_check_ns = e->due_ns > now_ns ? e->due_ns + AFTER_DUE_NS : now_ns + RECHECK_NS;
}

/*
 * An exact lookup found nothing: does this kernel hide time-wait sockets from
 * exact lookups (6.1 does), or is the socket really gone (reused, or never
 * made because net.ipv4.tcp_max_tw_buckets was reached)? A dump that keeps
 * only this entry's ports tells. The kernel walks the whole table for it, so
 * at most PROBES_PER_SECOND; past that the entry counts as gone. True when the
 * entry is still followed (the kernel hides them: dump mode from now on).
 */
static bool probe_by_dump(struct tw_table *t, struct netns_sock *ns, struct tw_entry *e,
			  uint64_t now_ns)
{
	if (now_ns - ns->probe_second_ns >= 1000000000ull) {
		ns->probe_second_ns = now_ns;
		ns->probes_this_second = 0;
	}
	if (ns->probes_this_second >= PROBES_PER_SECOND)
		return false;
	ns->probes_this_second++;
	if (!dump_netns(t, ns, now_ns, e) || e->dump_gen != ns->dump_gen)
		return false;
	ns->dump_mode = true;
	schedule_next(e, now_ns);
	return true;
}

/* Exact lookup; the first ENOENT for a fresh entry asks a dump whether this kernel hides time-wait sockets from exact lookups. */
static void check_exact(struct tw_table *t, struct netns_sock *ns, struct tw_entry *e,
			uint64_t now_ns, tw_end_fn fn, void *ctx)
{
	struct tw_lookup res = lookup(t, ns->fd, e);

	if (res.found < 0 && ++e->lookup_errors < MAX_LOOKUP_ERRORS) {
		e->next_check_ns = now_ns + RECHECK_NS;
		return;
	}
	if (res.found == 1 && is_time_wait_state(res.state)) {
		ns->exact_works = true;
		e->substate = res.state;
		e->due_ns = now_ns + res.expires_ms * 1000000ull;
		schedule_next(e, now_ns);
		return;
	}
	if (res.found == 0 && !e->substate && !ns->exact_works && probe_by_dump(t, ns, e, now_ns))
		return;
	finish_gone(t, e, now_ns, fn, ctx);
}

/* Dump mode: one dump a second answers for every due entry of the namespace. */
static void check_dumped(struct tw_table *t, struct netns_sock *ns, struct tw_entry *e,
			 uint64_t now_ns, tw_end_fn fn, void *ctx)
{
	uint64_t next_dump = ns->last_dump_ns + DUMP_INTERVAL_NS;

	if (now_ns >= next_dump) {
		if (!dump_netns(t, ns, now_ns, NULL)) {
			e->next_check_ns = now_ns + RECHECK_NS;
			return;
		}
		next_dump = now_ns + DUMP_INTERVAL_NS;
	}
	if (e->dump_gen == ns->dump_gen)
		schedule_next(e, now_ns);
	else if (ns->last_dump_ns > e->entered_ns) /* the latest dump should have listed it */
		finish_gone(t, e, now_ns, fn, ctx);
	else
		e->next_check_ns = next_dump;
}

static void check_entry(struct tw_table *t, struct tw_entry *e, uint64_t now_ns, tw_end_fn fn,
			void *ctx)
{
	struct netns_sock *ns = socket_for(t, e->netns);

	if (!ns)
		finish(t, e, TW_END_UNSEEN, now_ns, fn, ctx);
	else if (ns->dump_mode)
		check_dumped(t, ns, e, now_ns, fn, ctx);
	else
		check_exact(t, ns, e, now_ns, fn, ctx);
}

static bool mark_reachable(void *ctx, uint32_t inode, const char *path)
{
	struct tw_table *t = ctx;

	(void)path;
	for (uint32_t i = 0; i < t->nsocks; i++)
		if (t->socks[i].netns == inode)
			t->socks[i].reachable = true;
	return false;
}

/* Every entry of a namespace that went away: its time-wait sockets went with it. */
static void end_namespace(struct tw_table *t, uint32_t netns, uint64_t now_ns, tw_end_fn fn,
			  void *ctx)
{
	for (uint32_t i = 0; i < t->fresh && t->used; i++) {
		struct tw_entry *e = &t->entries[i];

		if (e->in_use && e->netns == netns)
			finish_gone(t, e, now_ns, fn, ctx);
	}
}

/* SF_TW_NETNS_GONE: the kernel purged the namespace's mini-sockets, all at once. */
static void end_purged_namespace(struct tw_table *t, uint32_t netns, uint64_t ts_ns, tw_end_fn fn,
				 void *ctx)
{
	for (uint32_t i = 0; i < t->fresh && t->used; i++) {
		struct tw_entry *e = &t->entries[i];

		if (e->in_use && e->netns == netns)
			finish(t, e, TW_END_NETNS_GONE, ts_ns, fn, ctx);
	}
}

/*
 * Once a second, while another namespace is followed: is each still held by
 * something other than our socket? One scan of /run/netns and /proc answers
 * for all of them.
 */
static void end_gone_namespaces(struct tw_table *t, uint64_t now_ns, tw_end_fn fn, void *ctx)
{
	bool others = false;

	for (uint32_t i = 0; i < t->nsocks; i++) {
		t->socks[i].reachable = t->socks[i].netns == t->self_netns;
		others |= !t->socks[i].reachable;
	}
	if (!others || now_ns - t->reach_check_ns < REACHABLE_CHECK_NS)
		return;
	t->reach_check_ns = now_ns;
	each_netns_file(mark_reachable, t);
	for (uint32_t i = t->nsocks; i-- > 0;) {
		if (t->socks[i].reachable)
			continue;
		end_namespace(t, t->socks[i].netns, now_ns, fn, ctx);
		drop_netns_sock(t, i);
	}
}

/* Marks the namespaces that still have entries (stopping once all are); closes
 * the sockets of the others. */
static void close_unfollowed_socks(struct tw_table *t)
{
	uint32_t marked = 0;

	for (uint32_t i = 0; i < t->nsocks; i++)
		t->socks[i].followed = false;
	for (uint32_t i = 0; i < t->fresh && marked < t->nsocks; i++) {
		const struct tw_entry *e = &t->entries[i];

		if (!e->in_use)
			continue;
		for (uint32_t k = 0; k < t->nsocks; k++) {
			if (t->socks[k].netns == e->netns && !t->socks[k].followed) {
				t->socks[k].followed = true;
				marked++;
			}
		}
	}
	for (uint32_t i = t->nsocks; i-- > 0;)
		if (!t->socks[i].followed)
			drop_netns_sock(t, i);
}

/* ---- TW_VIA_TIMERS ---- */

static void entry_of_event(struct tw_entry *e, const struct synfin_event *ev)
{
	e->substate = e->armed_as = ev->newstate;
	e->entered_ns = e->armed_ns = ev->ts_ns;
	memcpy(e->saddr, ev->saddr, sizeof(e->saddr));
	memcpy(e->daddr, ev->daddr, sizeof(e->daddr));
	e->netns = ev->netns;
	e->sport = ev->sport;
	e->dport = ev->dport;
	e->family = ev->family;
}

static struct tw_entry *find_by_tw(struct tw_table *t, uint64_t tw)
{
	int64_t at = index_at(&t->by_tw, index_find(&t->by_tw, tw));

	return at < 0 ? NULL : &t->entries[at];
}

/*
 * e's mini-socket is at address tw. An entry still there with the same
 * address is of a mini-socket freed since (the memory was reused): cancelled
 * (a cancel waiting for REARM_WAIT_NS to settle), or its end's record lost.
 */
static void set_tw(struct tw_table *t, struct tw_entry *e, uint64_t tw, tw_end_fn fn, void *ctx)
{
	struct tw_entry *stale;

	if (!tw) /* no address (malformed record): found by its tuple only */
		return;
	stale = find_by_tw(t, tw);
	if (stale && stale->cancel_ns)
		finish(t, stale, TW_END_EARLY, stale->cancel_ns, fn, ctx);
	else if (stale)
		finish(t, stale, TW_END_UNSEEN, e->armed_ns ? e->armed_ns : e->entered_ns, fn, ctx);
	e->tw = tw;
	index_add(&t->by_tw, index_find(&t->by_tw, tw), (uint32_t)(e - t->entries));
}

/* A mini-socket armed for the first time: waits for its connection's CLOSE (add_timed()). */
static void on_armed(struct tw_table *t, const struct synfin_event *ev, tw_end_fn fn, void *ctx)
{
	struct tw_entry *e;

	if (!has_free(t) || !index_has_room(&t->by_key))
		return; /* its connection's close counts it as not followed */
	e = new_entry(t);
	entry_of_event(e, ev);
	index_entry(t, e);
	set_tw(t, e, ev->skaddr, fn, ctx);
}

bool tw_unclaimed(const struct tw_table *t)
{
	/* Timed entries are made either at an arm (unattached) or at a CLOSE, attached at once. */
	return t->mode == TW_VIA_TIMERS && t->used > t->attached;
}

bool tw_arm_of(struct tw_table *t, const struct conn *c, uint64_t now_ns,
	       struct mini_socket_arm *out)
{
	const struct tw_entry *e = find_entry(t, c->netns, c->family, c->saddr, c->sport, c->daddr,
					      c->dport);

	if (t->mode != TW_VIA_TIMERS || !e || e->attached || !e->armed_ns ||
	    e->armed_ns < c->state_ns || now_ns < e->armed_ns + TW_CLAIM_WAIT_NS)
		return false;
	out->ts_ns = e->armed_ns;
	out->substate = e->armed_as;
	return true;
}

static bool remember_cancel(struct tw_table *t, struct tw_entry *e, uint64_t ts_ns)
{
	if (t->ncancels == t->cancels_cap) {
		uint32_t cap = t->cancels_cap ? 2 * t->cancels_cap : 256;
		uint32_t *grown = realloc(t->cancels, cap * sizeof(*grown));

		if (!grown)
			return false;
		t->cancels = grown;
		t->cancels_cap = cap;
	}
	e->cancel_ns = ts_ns;
	t->cancels[t->ncancels++] = (uint32_t)(e - t->entries);
	return true;
}

/* The lifecycle held for e to its fn; the last held takes its place in the array. */
static void release(struct tw_table *t, struct tw_entry *e)
{
	struct held *h = &t->held[e->held - 1];

	e->held = 0;
	t->release(t->release_ctx, &h->c);
	*h = t->held[--t->nheld];
	if (h != &t->held[t->nheld])
		t->entries[h->entry].held = (uint32_t)(h - t->held) + 1;
}

static bool grow_held(struct tw_table *t)
{
	uint32_t cap = t->held_cap ? 2 * t->held_cap : 256;
	struct held *grown;

	if (t->nheld < t->held_cap)
		return true;
	grown = realloc(t->held, cap * sizeof(*grown));
	if (!grown)
		return false;
	t->held = grown;
	t->held_cap = cap;
	return true;
}

bool tw_hold_conn(struct tw_table *t, const struct conn *c, uint64_t until_ns, tw_conn_fn fn,
		  void *ctx)
{
	struct tw_entry *e = find_entry(t, c->netns, c->family, c->saddr, c->sport, c->daddr,
					c->dport);

	if (t->mode != TW_VIA_TIMERS || !e || !e->attached || e->held || !grow_held(t))
		return false;
	t->release = fn;
	t->release_ctx = ctx;
	t->held[t->nheld] = (struct held){ .c = *c, .entry = (uint32_t)(e - t->entries),
					   .until_ns = until_ns };
	e->held = ++t->nheld;
	if (e->fin_ns) { /* its FIN came before its close was read */
		conn_enter_time_wait(&t->held[e->held - 1].c, e->fin_ns);
		release(t, e);
	}
	return true;
}

void tw_note_reset(struct tw_table *t, const struct synfin_event *e)
{
	struct tw_entry *en = find_entry(t, e->netns, e->family, e->saddr, e->sport, e->daddr,
					 e->dport);

	if (!en || !en->held)
		return;
	conn_note_reset_sent(&t->held[en->held - 1].c, e);
	release(t, en);
}

void tw_release_held(struct tw_table *t)
{
	while (t->nheld)
		release(t, &t->entries[t->held[t->nheld - 1].entry]);
}

static void release_overdue(struct tw_table *t, uint64_t now_ns)
{
	for (uint32_t i = t->nheld; i-- > 0;)
		if (now_ns >= t->held[i].until_ns)
			release(t, &t->entries[t->held[i].entry]);
}

/* The peer's FIN at a followed mini-socket in FIN_WAIT2: TIME_WAIT from now. */
static void on_fin_in(struct tw_table *t, const struct synfin_event *ev)
{
	struct tw_entry *e = find_entry(t, ev->netns, ev->family, ev->saddr, ev->sport, ev->daddr,
					ev->dport);

	if (!e || e->substate != SF_TCP_FIN_WAIT2)
		return; /* not ours, or a retransmitted FIN in TIME_WAIT */
	e->substate = SF_TCP_TIME_WAIT;
	e->fin_ns = e->entered_ns = ev->ts_ns;
	if (e->held) {
		conn_enter_time_wait(&t->held[e->held - 1].c, ev->ts_ns);
		release(t, e);
	}
}

/* A batch of expiries (struct synfin_tw_expiries): each followed one's natural end. */
static void on_expiries(struct tw_table *t, const struct synfin_event *ev, tw_end_fn fn,
			void *ctx)
{
	struct synfin_tw_expiries batch;

	memcpy(&batch, ev, sizeof(batch));
	for (uint32_t i = 0; i < batch.count && i < SF_TW_EXPIRY_BATCH; i++) {
		struct tw_entry *e = find_by_tw(t, batch.tw[i]);

		if (e)
			finish(t, e, TW_END_EXPIRED, batch.first_ns, fn, ctx);
	}
}

void tw_timer_event(struct tw_table *t, const struct synfin_event *ev, tw_end_fn fn, void *ctx)
{
	struct tw_entry *e;

	if (t->mode != TW_VIA_TIMERS) /* only the timer programs make these; by_tw is theirs */
		return;
	if (ev->tw_kind == SF_TW_FIN_IN) { /* no mini-socket address: its tuple only */
		on_fin_in(t, ev);
		return;
	}
	if (ev->tw_kind == SF_TW_NETNS_GONE) {
		end_purged_namespace(t, ev->netns, ev->ts_ns, fn, ctx);
		return;
	}
	if (ev->tw_kind == SF_TW_EXPIRED) {
		on_expiries(t, ev, fn, ctx);
		return;
	}
	e = find_entry(t, ev->netns, ev->family, ev->saddr, ev->sport, ev->daddr, ev->dport);
	if (e && e->tw && e->tw != ev->skaddr) { /* the tuple's previous mini-socket is gone */
		finish(t, e, TW_END_EARLY, e->cancel_ns ? e->cancel_ns : ev->ts_ns, fn, ctx);
		e = NULL;
	}
	if (e && !e->tw) /* its close came first */
		set_tw(t, e, ev->skaddr, fn, ctx);
	switch (ev->tw_kind) {
	case SF_TW_ARMED:
		if (!e)
			on_armed(t, ev, fn, ctx);
		else { /* re-armed: a FIN (the FIN_WAIT2 substate's end) or a retransmitted one */
			e->cancel_ns = 0;
			if (e->substate == SF_TCP_FIN_WAIT2 && ev->newstate == SF_TCP_TIME_WAIT)
				on_fin_in(t, ev);
			e->substate = ev->newstate;
		}
		break;
	case SF_TW_CANCELED:
		if (e && !remember_cancel(t, e, ev->ts_ns))
			finish(t, e, TW_END_EARLY, ev->ts_ns, fn, ctx);
		break;
	}
}

/* The oldest followed entries whose end should long have come: their records were lost. */
static void end_unseen(struct tw_table *t, uint64_t now_ns, tw_end_fn fn, void *ctx)
{
	while (t->aged_count) {
		const struct aged *a = &t->aged[t->aged_first];
		struct tw_entry *e = &t->entries[a->idx];
		bool same = e->in_use && e->attached && e->entered_ns == a->entered_ns;

		if (same && now_ns - a->entered_ns < END_NOT_SEEN_NS)
			return;
		if (same)
			finish(t, e, TW_END_UNSEEN, now_ns, fn, ctx);
		t->aged_first = (t->aged_first + 1) % t->aged_cap;
		t->aged_count--;
	}
}

/* Cancels not followed by an arm within REARM_WAIT_NS were ends. */
static void settle_cancels(struct tw_table *t, uint64_t now_ns, tw_end_fn fn, void *ctx)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < t->ncancels; i++) {
		struct tw_entry *e = &t->entries[t->cancels[i]];

		if (!e->in_use || !e->cancel_ns)
			continue;
		if (now_ns - e->cancel_ns < REARM_WAIT_NS) {
			t->cancels[kept++] = t->cancels[i];
			continue;
		}
		finish(t, e, TW_END_EARLY, e->cancel_ns, fn, ctx);
	}
	t->ncancels = kept;
}

int tw_fatal(const struct tw_table *t)
{
	return t->fatal;
}

void tw_poll(struct tw_table *t, uint64_t now_ns, tw_end_fn fn, void *ctx)
{
	if (t->mode == TW_VIA_TIMERS) {
		release_overdue(t, now_ns);
		settle_cancels(t, now_ns, fn, ctx);
		end_unseen(t, now_ns, fn, ctx);
		return;
	}
	if (t->fatal)
		return;
	if (!t->used) {
		close_netns_socks(t); /* a socket pins its namespace: let deleted ones go */
		return;
	}
	end_gone_namespaces(t, now_ns, fn, ctx);
	for (uint32_t i = 0; i < t->fresh; i++) {
		struct tw_entry *e = &t->entries[i];

		if (e->in_use && e->next_check_ns <= now_ns)
			check_entry(t, e, now_ns, fn, ctx);
	}
	close_unfollowed_socks(t);
}
