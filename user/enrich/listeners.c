#include "listeners.h"
#include <fcntl.h>
#include <stdlib.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "netnsdiag.h"

#define TCP_LISTEN_STATE 10

void listeners_init(struct listener_table *t)
{
	memset(t, 0, sizeof(*t));
	t->self_netns = netns_inode("/proc/self/ns/net");
}

void listeners_watch(struct listener_table *t, uint32_t netns)
{
	for (uint32_t i = 0; i < t->nnetns; i++)
		if (t->ns[i].netns == netns)
			return;
	if (t->nnetns < LISTENER_NETNS_MAX)
		t->ns[t->nnetns++] = (struct listener_netns){ .netns = netns };
}

/* The value under name in a netstat "Prefix: names..." line and the "Prefix: values" after it. */
static bool netstat_value(const char *names, const char *values, const char *name, uint64_t *v)
{
	size_t len = strlen(name);
	const char *n = names, *x = values;

	while (*n && *n != '\n' && *x && *x != '\n') {
		n += strcspn(n, " \n");
		x += strcspn(x, " \n");
		if (*n != ' ' || *x != ' ')
			return false;
		n++;
		x++;
		if (!strncmp(n, name, len) && (n[len] == ' ' || n[len] == '\n' || !n[len])) {
			*v = strtoull(x, NULL, 10);
			return true;
		}
	}
	return false;
}

bool netstat_cookies(const char *text, uint64_t out[COOKIE_COUNTERS])
{
	static const char *const names[COOKIE_COUNTERS] = { "SyncookiesSent", "SyncookiesRecv",
							     "SyncookiesFailed" };
	const char *names_line = strstr(text, "TcpExt: "), *values_line;

	if (!names_line || !(values_line = strchr(names_line, '\n')) ||
	    strncmp(++values_line, "TcpExt: ", 8))
		return false;
	for (int i = 0; i < COOKIE_COUNTERS; i++)
		if (!netstat_value(names_line, values_line, names[i], &out[i]))
			return false;
	return true;
}

uint64_t listener_netns_cookies(const struct listener_netns *n, enum syncookie_counter which)
{
	return n->cookies[which] >= n->cookies_first[which] ?
	       n->cookies[which] - n->cookies_first[which] : 0;
}

uint64_t listener_drops(const struct listener_health *l)
{
	return l->drops >= l->drops_first ? l->drops - l->drops_first : 0;
}

static struct listener_health *entry_for(struct listener_table *t, uint32_t netns, uint64_t ino)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (t->l[i].ino == ino && t->l[i].netns == netns)
			return &t->l[i];
	if (t->n == LISTENERS_MAX) {
		t->untracked++;
		return NULL;
	}
	memset(&t->l[t->n], 0, sizeof(t->l[0]));
	t->l[t->n].synack_retrans = -1;
	return &t->l[t->n++];
}

/* The listener's sk_drops, from INET_DIAG_SKMEMINFO; false if the reply has none. */
static bool meminfo_drops(const struct inet_diag_msg *m, size_t len, uint64_t *drops)
{
	const struct nlattr *a = (const void *)(m + 1);
	size_t left = len - NLMSG_ALIGN(sizeof(*m));

	while (left >= sizeof(*a) && a->nla_len >= sizeof(*a) && a->nla_len <= left) {
		if (a->nla_type == INET_DIAG_SKMEMINFO &&
		    a->nla_len >= NLA_HDRLEN + (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t)) {
			uint32_t v;

			memcpy(&v, (const char *)a + NLA_HDRLEN + SK_MEMINFO_DROPS * sizeof(v), sizeof(v));
			*drops = v;
			return true;
		}
		size_t step = (size_t)NLA_ALIGN(a->nla_len);

		if (step >= left)
			break;
		left -= step;
		a = (const void *)((const char *)a + step);
	}
	return false;
}

static void take_listener(struct listener_table *t, uint32_t netns, const struct inet_diag_msg *m,
			  size_t len, uint64_t now_ns)
{
	struct listener_health *l;
	uint64_t drops = 0;
	bool fresh;

	if (t->only_port && ntohs(m->id.idiag_sport) != t->only_port)
		return;
	l = entry_for(t, netns, m->idiag_inode);
	if (!l)
		return;
	fresh = !l->ino;
	l->ino = m->idiag_inode;
	l->netns = netns;
	l->port = ntohs(m->id.idiag_sport);
	l->family = m->idiag_family;
	memcpy(l->addr, m->id.idiag_src, sizeof(l->addr));
	l->queue = m->idiag_rqueue;   /* a listener's: its accept queue now */
	l->backlog = m->idiag_wqueue; /* and its backlog (listen()'s, capped by somaxconn) */
	l->gone = 0;
	if (l->queue > l->peak)
		l->peak = l->queue;
	if (meminfo_drops(m, len, &drops)) {
		if (fresh)
			l->drops_first = t->born_since_start &&
					 t->born_since_start(t->ctx, netns, l->port) ? 0 : drops;
		l->drops = drops;
	}
	/* Full: the kernel refuses the next child once the queue exceeds the backlog. */
	if (l->queue > l->backlog && !l->full_since_ns)
		l->full_since_ns = now_ns;
	else if (l->queue <= l->backlog) {
		l->full_since_ns = 0;
		l->stuck_reported = 0;
	}
}

static bool any_address(const uint8_t *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i])
			return false;
	return true;
}

static bool full_since(const struct listener_health *l, uint64_t since_ns)
{
	return !l->gone && l->full_since_ns && l->full_since_ns <= since_ns + LISTENER_POLL_NS;
}

/* Bound to daddr or to any address of its family (a dual-stack [::] takes IPv4 too). */
static bool reached_by(const struct listener_health *l, uint8_t family, const uint8_t *daddr)
{
	if (l->family != family)
		return family == AF_INET && l->family == AF_INET6 && any_address(l->addr, 16);
	return any_address(l->addr, family == AF_INET ? 4 : 16) ||
	       !memcmp(l->addr, daddr, family == AF_INET ? 4 : 16);
}

const struct listener_health *listeners_full_for(const struct listener_table *t, uint32_t netns,
						 uint8_t family, const uint8_t *daddr,
						 uint16_t dport, uint64_t since_ns)
{
	const struct listener_health *here = NULL, *elsewhere = NULL;
	bool all_here_full = true;
	uint32_t others = 0;

	for (uint32_t i = 0; i < t->n; i++) {
		const struct listener_health *l = &t->l[i];

		if (l->port != dport || l->gone || !reached_by(l, family, daddr))
			continue;
		if (l->netns == netns) { /* the same namespace's (SO_REUSEPORT twins: all full) */
			here = here ?: l;
			all_here_full = all_here_full && full_since(l, since_ns);
		} else {
			others++;
			elsewhere = l;
		}
	}
	if (here)
		return all_here_full ? here : NULL;
	return others == 1 && full_since(elsewhere, since_ns) ? elsewhere : NULL;
}

void listeners_take_dump(struct listener_table *t, uint32_t netns, const void *buf, size_t len,
			 uint64_t now_ns)
{
	for (const struct nlmsghdr *h = buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
		if (!diag_is_socket(h))
			continue;
		take_listener(t, netns, NLMSG_DATA(h), h->nlmsg_len - NLMSG_HDRLEN, now_ns);
	}
}

struct dump_args {
	struct listener_table *t;
	uint32_t netns;
	uint64_t now_ns;
};

static void take_dump(void *ctx, const void *buf, size_t len)
{
	const struct dump_args *a = ctx;

	listeners_take_dump(a->t, a->netns, buf, len, a->now_ns);
}

/* One family's listeners in the namespace fd belongs to; false if the dump failed. */
static bool dump_family(struct listener_table *t, int fd, uint32_t netns, uint8_t family,
			uint64_t now_ns)
{
	struct dump_args a = { t, netns, now_ns };

	return diag_dump(fd, family, 1 << TCP_LISTEN_STATE, 1 << (INET_DIAG_SKMEMINFO - 1),
			 take_dump, &a);
}

static void mark_gone(struct listener_table *t, uint32_t netns)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (t->l[i].netns == netns)
			t->l[i].gone = 1;
}

/* What a look opens inside the namespace: a diag socket, and its MIB counters' file. */
struct look {
	int diag, netstat;
};

static void open_look(void *ctx)
{
	struct look *k = ctx;

	k->diag = diag_socket();
	/* thread-self: the namespace this thread stepped into */
	k->netstat = open("/proc/thread-self/net/netstat", O_RDONLY | O_CLOEXEC);
}

static void read_cookies(struct listener_netns *n, int fd)
{
	static char text[16384];
	uint64_t now[COOKIE_COUNTERS];
	ssize_t len = read(fd, text, sizeof(text) - 1);

	if (len <= 0)
		return;
	text[len] = 0;
	if (!netstat_cookies(text, now))
		return;
	if (!n->cookies_known)
		memcpy(n->cookies_first, now, sizeof(now));
	memcpy(n->cookies, now, sizeof(now));
	n->cookies_known = true;
}

/* False when the namespace is gone (nothing holds it): it is no longer watched. */
static bool look_at(struct listener_table *t, struct listener_netns *n, uint64_t now_ns)
{
	struct look k = { -1, -1 };

	if (n->netns == t->self_netns)
		open_look(&k);
	else
		in_netns(n->netns, open_look, &k, &t->fatal);
	if (k.netstat >= 0) {
		read_cookies(n, k.netstat);
		close(k.netstat);
	}
	if (k.diag < 0)
		return false;
	mark_gone(t, n->netns); /* those the dumps list again are back */
	dump_family(t, k.diag, n->netns, AF_INET, now_ns);
	dump_family(t, k.diag, n->netns, AF_INET6, now_ns);
	close(k.diag);
	return true;
}

bool listeners_poll(struct listener_table *t, uint64_t now_ns, bool force)
{
	if (!t->nnetns || (!force && now_ns < t->next_ns))
		return false;
	t->next_ns = now_ns + LISTENER_POLL_NS;
	for (uint32_t i = t->nnetns; i-- > 0;) {
		if (look_at(t, &t->ns[i], now_ns))
			continue;
		mark_gone(t, t->ns[i].netns);
		t->ns[i] = t->ns[--t->nnetns];
	}
	return true;
}
