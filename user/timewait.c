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

#define FIRST_LOOK_NS 50000000ull   /* confirm soon after the close */
#define AFTER_DUE_NS 200000000ull   /* the timer wheel fires a little late */
#define RECHECK_NS 250000000ull
/* A time-wait socket lives TCP_TIMEWAIT_LEN (60 s); gone much sooner means something ended it. */
#define EARLY_MARGIN_NS 1000000000ull
#define MAX_NETNS 16

struct netns_sock {
	uint32_t netns;
	int fd;
};

struct tw_table {
	uint32_t cap, used;
	uint64_t untracked;
	uint32_t seq;
	uint32_t self_netns;
	struct netns_sock socks[MAX_NETNS];
	uint32_t nsocks;
	struct tw_entry *entries;
};

static uint32_t netns_inode(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (uint32_t)st.st_ino;
}

struct tw_table *tw_new(uint32_t cap)
{
	struct tw_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->entries = calloc(cap, sizeof(*t->entries));
	if (!t->entries) {
		free(t);
		return NULL;
	}
	t->cap = cap;
	t->self_netns = netns_inode("/proc/self/ns/net");
	return t;
}

static void close_netns_socks(struct tw_table *t)
{
	for (uint32_t i = 0; i < t->nsocks; i++)
		close(t->socks[i].fd);
	t->nsocks = 0;
}

void tw_free(struct tw_table *t)
{
	if (!t)
		return;
	close_netns_socks(t);
	free(t->entries);
	free(t);
}

uint32_t tw_held(const struct tw_table *t)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < t->cap; i++)
		n += t->entries[i].in_use && t->entries[i].substate;
	return n;
}

uint64_t tw_untracked(const struct tw_table *t)
{
	return t->untracked;
}

void tw_add(struct tw_table *t, const struct conn *c)
{
	struct tw_entry *e = NULL;

	for (uint32_t i = 0; i < t->cap && !e; i++)
		if (!t->entries[i].in_use)
			e = &t->entries[i];
	if (!e) {
		t->untracked++;
		return;
	}
	memset(e, 0, sizeof(*e));
	e->in_use = 1;
	e->entered_ns = c->state_ns;
	e->next_check_ns = c->state_ns + FIRST_LOOK_NS;
	memcpy(e->saddr, c->saddr, sizeof(e->saddr));
	memcpy(e->daddr, c->daddr, sizeof(e->daddr));
	e->netns = c->netns;
	e->pid = c->pid;
	memcpy(e->comm, c->comm, sizeof(e->comm));
	e->sport = c->sport;
	e->dport = c->dport;
	e->family = c->family;
	t->used++;
}

static int diag_socket(void)
{
	return socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
}

/* A namespace file for inode: /run/netns/NAME or some process's /proc/PID/ns/net. */
static int open_netns(uint32_t netns)
{
	static const char *const dirs[] = { "/run/netns", "/proc" };
	char path[300];

	for (int d = 0; d < 2; d++) {
		DIR *dir = opendir(dirs[d]);
		struct dirent *de;

		if (!dir)
			continue;
		while ((de = readdir(dir))) {
			if (de->d_name[0] == '.' || (d == 1 && (de->d_name[0] < '0' || de->d_name[0] > '9')))
				continue;
			snprintf(path, sizeof(path), d ? "%s/%s/ns/net" : "%s/%s", dirs[d], de->d_name);
			if (netns_inode(path) == netns) {
				closedir(dir);
				return open(path, O_RDONLY | O_CLOEXEC);
			}
		}
		closedir(dir);
	}
	return -1;
}

/* A netlink socket lives in the namespace it was created in: step in, create, step back. */
static int diag_socket_in(uint32_t netns)
{
	int target = open_netns(netns), self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int fd = -1;

	if (target >= 0 && self >= 0 && !setns(target, CLONE_NEWNET)) {
		fd = diag_socket();
		if (setns(self, CLONE_NEWNET)) {
			perror("synfin: cannot return to our own network namespace");
			exit(1);
		}
	}
	if (target >= 0)
		close(target);
	if (self >= 0)
		close(self);
	return fd;
}

static int socket_for(struct tw_table *t, uint32_t netns)
{
	int fd;

	for (uint32_t i = 0; i < t->nsocks; i++)
		if (t->socks[i].netns == netns)
			return t->socks[i].fd;
	if (t->nsocks == MAX_NETNS)
		return -1;
	fd = netns == t->self_netns ? diag_socket() : diag_socket_in(netns);
	if (fd < 0)
		return -1;
	t->socks[t->nsocks++] = (struct netns_sock){ .netns = netns, .fd = fd };
	return fd;
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
	if (nh->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
		return -1;
	const struct inet_diag_msg *msg = NLMSG_DATA(nh);

	out->found = 1;
	out->state = msg->idiag_state;
	out->expires_ms = msg->idiag_expires;
	return 0;
}

static void fill_request(const struct tw_entry *e, struct inet_diag_req_v2 *req)
{
	memset(req, 0, sizeof(*req));
	req->sdiag_family = e->family;
	req->sdiag_protocol = IPPROTO_TCP;
	req->idiag_states = ~0u;
	req->id.idiag_sport = htons(e->sport);
	req->id.idiag_dport = htons(e->dport);
	memcpy(req->id.idiag_src, e->saddr, e->family == AF_INET ? 4 : 16);
	memcpy(req->id.idiag_dst, e->daddr, e->family == AF_INET ? 4 : 16);
	req->id.idiag_cookie[0] = req->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
}

/* One exact lookup: does this 4-tuple still have a socket, and in what state? */
static struct tw_lookup lookup(struct tw_table *t, const struct tw_entry *e)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 req;
	} msg = { .nh = { .nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			  .nlmsg_flags = NLM_F_REQUEST, .nlmsg_seq = ++t->seq } };
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct tw_lookup res = { .found = -1 };
	char buf[8192];
	int fd = socket_for(t, e->netns);
	ssize_t n;

	if (fd < 0)
		return res;
	fill_request(e, &msg.req);
	if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return res;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n <= 0 || tw_parse_reply(buf, (size_t)n, &res))
		res.found = -1;
	return res;
}

static bool is_time_wait_state(uint8_t state)
{
	return state == SF_TCP_TIME_WAIT || state == SF_TCP_FIN_WAIT2;
}

static void finish(struct tw_table *t, struct tw_entry *e, enum tw_end how, uint64_t now_ns,
		   tw_end_fn fn, void *ctx)
{
	fn(ctx, e, how, now_ns);
	e->in_use = 0;
	t->used--;
}

static void check_entry(struct tw_table *t, struct tw_entry *e, uint64_t now_ns, tw_end_fn fn,
			void *ctx)
{
	struct tw_lookup res = lookup(t, e);

	if (res.found == 1 && is_time_wait_state(res.state)) {
		e->substate = res.state;
		e->due_ns = now_ns + res.expires_ms * 1000000ull;
		e->next_check_ns = res.expires_ms ? e->due_ns + AFTER_DUE_NS : now_ns + RECHECK_NS;
		return;
	}
	if (!e->substate)
		finish(t, e, TW_END_UNSEEN, now_ns, fn, ctx);
	else
		finish(t, e, now_ns + EARLY_MARGIN_NS < e->due_ns ? TW_END_EARLY : TW_END_EXPIRED,
		       now_ns, fn, ctx);
}

void tw_poll(struct tw_table *t, uint64_t now_ns, tw_end_fn fn, void *ctx)
{
	if (!t->used) {
		close_netns_socks(t); /* a socket pins its namespace: let deleted ones go */
		return;
	}
	for (uint32_t i = 0; i < t->cap; i++) {
		struct tw_entry *e = &t->entries[i];

		if (e->in_use && e->next_check_ns <= now_ns)
			check_entry(t, e, now_ns, fn, ctx);
	}
}
