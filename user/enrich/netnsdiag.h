/*
 * sock_diag sockets in any network namespace, for the parts that look at
 * sockets the kernel does not trace (TIME_WAIT through sock_diag, listeners'
 * queues): a netlink socket belongs to the namespace it was created in.
 */
#ifndef SYNFIN_NETNSDIAG_H
#define SYNFIN_NETNSDIAG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The namespace inode of a namespace file (/proc/PID/ns/net, /run/netns/NAME); 0 if none. */
uint32_t netns_inode(const char *path);
/* A NETLINK_SOCK_DIAG socket in synfin's own namespace; -1 on error. */
int diag_socket(void);
/*
 * Calls fn(ctx, inode, path) for each namespace file that holds a network
 * namespace (the bind mounts in /run/netns, then each process's
 * /proc/PID/ns/net); stops when fn returns true.
 */
void each_netns_file(bool (*fn)(void *ctx, uint32_t inode, const char *path), void *ctx);
/* fn(ctx) inside namespace netns (setns in, and back after); false when nothing reachable
 * holds it. *fatal gets errno if synfin could not step back into its own namespace. */
bool in_netns(uint32_t netns, void (*fn)(void *ctx), void *ctx, int *fatal);
/* A diag socket inside namespace netns (setns in and back); -1 when nothing reachable holds
 * it. *fatal gets errno if synfin could not step back into its own namespace. */
int diag_socket_in(uint32_t netns, int *fatal);
/* The same through a namespace file known to hold it (/proc/PID/ns/net); -1 if it cannot. */
int diag_socket_at(const char *ns_path, int *fatal);
/*
 * Dumps the TCP sockets of one family (AF_UNSPEC: both, in one walk) whose
 * state is in states (a mask of 1 << TCP state) in fd's namespace, with
 * extensions ext (1 << (INET_DIAG_x - 1)); take() gets each buffer of netlink
 * messages as it comes. False if it failed.
 */
bool diag_dump(int fd, uint8_t family, uint32_t states, uint8_t ext,
	       void (*take)(void *ctx, const void *buf, size_t len), void *ctx);

/* A message of a dump that carries a socket (struct inet_diag_msg). */
struct nlmsghdr;
bool diag_is_socket(const struct nlmsghdr *h);

#endif
