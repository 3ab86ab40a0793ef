#include "procscan.h"
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include "netnsdiag.h"

/* One socket descriptor one process holds. */
struct fd_sock {
	uint64_t ino, start_ticks;
	uint32_t pid, netns;
	char comm[SYNFIN_COMM_LEN];
};

struct fd_socks {
	struct fd_sock *v;
	size_t n, cap;
};

struct proc_info {
	uint64_t start_ticks;
	uint32_t pid, netns;
	char comm[SYNFIN_COMM_LEN];
};

static int fd_socks_add(struct fd_socks *s, const struct fd_sock *one)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct fd_sock *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = *one;
	return 0;
}

/* comm and start time from /proc/PID/stat: "pid (comm) state ppid ... starttime (field 22)". */
static int read_stat(const char *proc_root, struct proc_info *p)
{
	char path[PATH_MAX], buf[1024], *open_paren, *close_paren, *field;
	FILE *f;
	size_t len;
	int i;

	snprintf(path, sizeof(path), "%s/%u/stat", proc_root, p->pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = 0;
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -1;
	len = (size_t)(close_paren - open_paren - 1);
	if (len >= SYNFIN_COMM_LEN)
		len = SYNFIN_COMM_LEN - 1;
	memcpy(p->comm, open_paren + 1, len);
	p->comm[len] = 0;
	field = close_paren + 2; /* field 3, the state */
	for (i = 3; i < 22 && field; i++) {
		field = strchr(field, ' ');
		if (field)
			field++;
	}
	p->start_ticks = field ? strtoull(field, NULL, 10) : 0;
	return 0;
}

/* The inode in a link "PREFIX[N]" ("net:[4026531840]", "socket:[123]"), 0 if another kind. */
static uint64_t link_inode(const char *path, const char *prefix)
{
	char target[64];
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	size_t plen = strlen(prefix);

	if (n <= 0)
		return 0;
	target[n] = 0;
	if (strncmp(target, prefix, plen) || target[plen] != '[')
		return 0;
	return strtoull(target + plen + 1, NULL, 10);
}

static int scan_fds(const char *proc_root, const struct proc_info *p, struct fd_socks *out)
{
	char path[PATH_MAX];
	struct dirent *d;
	DIR *dir;
	int err = 0;

	snprintf(path, sizeof(path), "%s/%u/fd", proc_root, p->pid);
	dir = opendir(path);
	if (!dir)
		return 0; /* gone, or a kernel thread */
	while (!err && (d = readdir(dir))) {
		struct fd_sock one = { .start_ticks = p->start_ticks, .pid = p->pid, .netns = p->netns };

		if (!isdigit((unsigned char)d->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "%s/%u/fd/%s", proc_root, p->pid, d->d_name);
		one.ino = link_inode(path, "socket:");
		if (!one.ino)
			continue;
		memcpy(one.comm, p->comm, sizeof(one.comm));
		err = fd_socks_add(out, &one);
	}
	closedir(dir);
	return err;
}

/* By inode, then the earliest-started holder first: the first of each inode is its named holder. */
static int by_inode_then_age(const void *a, const void *b)
{
	const struct fd_sock *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->start_ticks != y->start_ticks)
		return x->start_ticks < y->start_ticks ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static int scan_processes(const char *proc_root, uint32_t skip_pid, struct fd_socks *out)
{
	char path[PATH_MAX];
	struct dirent *d;
	DIR *proc = opendir(proc_root);
	int err = 0;

	if (!proc)
		return -1;
	while (!err && (d = readdir(proc))) {
		struct proc_info p = { 0 };

		if (!isdigit((unsigned char)d->d_name[0]))
			continue;
		p.pid = (uint32_t)strtoul(d->d_name, NULL, 10);
		if (p.pid == skip_pid || read_stat(proc_root, &p))
			continue;
		snprintf(path, sizeof(path), "%s/%u/ns/net", proc_root, p.pid);
		p.netns = (uint32_t)link_inode(path, "net:");
		if (p.netns)
			err = scan_fds(proc_root, &p, out);
	}
	closedir(proc);
	return err;
}

static const struct fd_sock *find_inode(const struct fd_socks *s, uint64_t ino)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) { /* the first entry of ino: its earliest-started holder */
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->v[lo].ino == ino ? &s->v[lo] : NULL;
}

/*
 * The states a socket some process holds can be in: not TIME_WAIT or
 * NEW_SYN_RECV, the kernel's mini-sockets, which no descriptor holds. A
 * namespace's table can hold hundreds of thousands of those (a busy host's
 * TIME_WAIT table full); its /proc/PID/net/tcp, formatted line by line and
 * parsed back, cost the reader ~135 ms of kernel time per 100,000 and once,
 * rescans following one another, most of a storm's records.
 */
#define HELD_STATES (0xfffu & ~(1u << 6 | 1u << 12))

struct dump_ctx {
	const struct fd_socks *socks;
	struct holders *out;
	uint32_t netns;
};

static void take_socket(const struct dump_ctx *d, const struct inet_diag_msg *m)
{
	const struct fd_sock *holder = m->idiag_inode ? find_inode(d->socks, m->idiag_inode) : NULL;
	size_t addr_len = m->idiag_family == AF_INET ? 4 : 16;
	struct held_socket h = { .netns = d->netns, .family = m->idiag_family,
				 .state = m->idiag_state };

	if (!holder)
		return;
	memcpy(h.saddr, m->id.idiag_src, addr_len);
	memcpy(h.daddr, m->id.idiag_dst, addr_len);
	h.sport = ntohs(m->id.idiag_sport);
	h.dport = ntohs(m->id.idiag_dport);
	h.pid = holder->pid;
	h.start_ticks = holder->start_ticks;
	memcpy(h.comm, holder->comm, sizeof(h.comm));
	holders_add(d->out, &h);
}

static void take_sockets(void *ctx, const void *buf, size_t len)
{
	for (const struct nlmsghdr *h = buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
		if (diag_is_socket(h))
			take_socket(ctx, NLMSG_DATA(h));
}

/* holder's namespace's TCP sockets, through sock_diag as `ss -p` lists them; false when the
 * namespace could not be entered through holder (gone since its descriptors were read). */
static bool read_tcp_table(const char *proc_root, const struct fd_sock *holder, uint32_t self_netns,
			   const struct fd_socks *s, struct holders *out, int *fatal)
{
	struct dump_ctx d = { s, out, holder->netns };
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%u/ns/net", proc_root, holder->pid);
	fd = holder->netns == self_netns ? diag_socket() : diag_socket_at(path, fatal);
	if (fd < 0)
		return false;
	diag_dump(fd, AF_UNSPEC, HELD_STATES, 0, take_sockets, &d);
	close(fd);
	return true;
}

static int by_netns(const void *a, const void *b)
{
	const struct fd_sock *x = *(const struct fd_sock *const *)a;
	const struct fd_sock *y = *(const struct fd_sock *const *)b;

	return x->netns < y->netns ? -1 : x->netns > y->netns;
}

/* Each namespace's table once, through the first of its processes still there: however many
 * namespaces (a container host has hundreds), no table is dumped twice. */
static int read_tcp_tables(const char *proc_root, const struct fd_socks *s, struct holders *out,
			   int *fatal)
{
	const struct fd_sock **by_ns = malloc((s->n ? s->n : 1) * sizeof(*by_ns));
	uint32_t self_netns = netns_inode("/proc/self/ns/net");

	if (!by_ns)
		return -1;
	for (size_t i = 0; i < s->n; i++)
		by_ns[i] = &s->v[i];
	if (s->n)
		qsort(by_ns, s->n, sizeof(*by_ns), by_netns);
	for (size_t i = 0, next; i < s->n; i = next) {
		bool dumped = false;

		for (next = i; next < s->n && by_ns[next]->netns == by_ns[i]->netns; next++)
			if (!dumped && !*fatal)
				dumped = read_tcp_table(proc_root, by_ns[next], self_netns, s, out,
							fatal);
	}
	free(by_ns);
	return 0;
}

int procscan(struct holders *out, const char *proc_root, uint32_t skip_pid, int *fatal)
{
	struct fd_socks socks = { 0 };
	int err = scan_processes(proc_root, skip_pid, &socks);

	holders_clear(out);
	if (!err) {
		if (socks.n) /* qsort() takes no NULL array, even empty */
			qsort(socks.v, socks.n, sizeof(*socks.v), by_inode_then_age);
		err = read_tcp_tables(proc_root, &socks, out, fatal);
		holders_sort(out);
	}
	free(socks.v);
	return err;
}
