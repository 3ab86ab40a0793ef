#include "netnsdiag.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

uint32_t netns_inode(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (uint32_t)st.st_ino;
}

int diag_socket(void)
{
	return socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
}

void each_netns_file(bool (*fn)(void *ctx, uint32_t inode, const char *path), void *ctx)
{
	static const char *const dirs[] = { "/run/netns", "/proc" };
	char path[300];

	for (int d = 0; d < 2; d++) {
		DIR *dir = opendir(dirs[d]);
		struct dirent *de;
		bool stop = false;

		if (!dir)
			continue;
		while (!stop && (de = readdir(dir))) {
			if (de->d_name[0] == '.' || (d == 1 && (de->d_name[0] < '0' || de->d_name[0] > '9')))
				continue;
			snprintf(path, sizeof(path), d ? "%s/%s/ns/net" : "%s/%s", dirs[d], de->d_name);
			stop = fn(ctx, netns_inode(path), path);
		}
		closedir(dir);
		if (stop)
			return;
	}
}

struct netns_search {
	uint32_t inode;
	int fd;
};

static bool open_if_match(void *ctx, uint32_t inode, const char *path)
{
	struct netns_search *s = ctx;

	if (inode != s->inode)
		return false;
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	return true;
}

/* A namespace file for inode, opened; -1 when nothing reachable holds it. */
static int open_netns(uint32_t netns)
{
	struct netns_search s = { .inode = netns, .fd = -1 };

	each_netns_file(open_if_match, &s);
	return s.fd;
}

/* fn(ctx) inside the namespace of file target (closed after), and back. */
static bool in_netns_file(int target, void (*fn)(void *ctx), void *ctx, int *fatal)
{
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	bool entered = target >= 0 && self >= 0 && !setns(target, CLONE_NEWNET);

	if (entered) {
		fn(ctx);
		if (setns(self, CLONE_NEWNET))
			*fatal = errno; /* the loop ends, the caller detaches and says so */
	}
	if (target >= 0)
		close(target);
	if (self >= 0)
		close(self);
	return entered;
}

bool in_netns(uint32_t netns, void (*fn)(void *ctx), void *ctx, int *fatal)
{
	return in_netns_file(open_netns(netns), fn, ctx, fatal);
}

static void make_diag_socket(void *ctx)
{
	*(int *)ctx = diag_socket();
}

/* A netlink socket lives in the namespace it was created in: step in, create, step back. */
int diag_socket_in(uint32_t netns, int *fatal)
{
	int fd = -1;

	in_netns(netns, make_diag_socket, &fd, fatal);
	return fd;
}

int diag_socket_at(const char *ns_path, int *fatal)
{
	int fd = -1;

	in_netns_file(open(ns_path, O_RDONLY | O_CLOEXEC), make_diag_socket, &fd, fatal);
	return fd;
}

/*
 * A dump costs a walk of the kernel's whole established table, TIME_WAIT
 * sockets included whatever the states asked; both families in one walk
 * (AF_UNSPEC) only the older TCPDIAG_GETSOCK request can ask for.
 */
static bool request_dump(int fd, uint8_t family, uint32_t states, uint8_t ext)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 req;
	} v2 = { .nh = { .nlmsg_len = sizeof(v2), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
		 .req = { .sdiag_family = family, .sdiag_protocol = IPPROTO_TCP,
			  .idiag_ext = ext, .idiag_states = states } };
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req req;
	} v1 = { .nh = { .nlmsg_len = sizeof(v1), .nlmsg_type = TCPDIAG_GETSOCK,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
		 .req = { .idiag_ext = ext, .idiag_states = states } };
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	bool both = family == AF_UNSPEC;

	return sendto(fd, both ? (const void *)&v1 : (const void *)&v2,
		      both ? sizeof(v1) : sizeof(v2), 0, (struct sockaddr *)&kernel,
		      sizeof(kernel)) >= 0;
}

bool diag_is_socket(const struct nlmsghdr *h)
{
	return (h->nlmsg_type == SOCK_DIAG_BY_FAMILY || h->nlmsg_type == TCPDIAG_GETSOCK) &&
	       h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg));
}

bool diag_dump(int fd, uint8_t family, uint32_t states, uint8_t ext,
	       void (*take)(void *ctx, const void *buf, size_t len), void *ctx)
{
	static char buf[32768];

	if (!request_dump(fd, family, states, ext))
		return false;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		size_t left = (size_t)n;

		if (n <= 0)
			return false;
		take(ctx, buf, left);
		for (const struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left))
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
				return h->nlmsg_type == NLMSG_DONE;
	}
}
