#include "netnsdiag.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

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

bool in_netns(uint32_t netns, void (*fn)(void *ctx), void *ctx, int *fatal)
{
	int target = open_netns(netns), self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
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
