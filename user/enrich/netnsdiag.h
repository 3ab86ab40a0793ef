/*
 * sock_diag sockets in any network namespace, for the parts that look at
 * sockets the kernel does not trace (TIME_WAIT through sock_diag, listeners'
 * queues): a netlink socket belongs to the namespace it was created in.
 */
#ifndef SYNFIN_NETNSDIAG_H
#define SYNFIN_NETNSDIAG_H
#include <stdbool.h>
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

#endif
