/*
 * Every process's TCP sockets, found as `ss -p` finds them: /proc/PID/fd for
 * the socket inodes each process holds, a sock_diag dump of each network
 * namespace (through a process in it) for their tuples. Run at start, when a
 * process that held tracked sockets exits and when a holder closes its copy of
 * a shared one. The dump leaves TIME_WAIT out but the kernel still walks past
 * it: a scan costs milliseconds, about 12 more per 60,000 TIME_WAIT sockets in
 * the namespace (README: owners).
 */
#ifndef SYNFIN_PROCSCAN_H
#define SYNFIN_PROCSCAN_H
#include <stdint.h>
#include "holders.h"

/* Refills out; skip_pid (an exiting process, 0: none) is never named a holder.
 * Returns 0, or -1 when /proc cannot be read or memory runs out (out is then
 * empty). *fatal gets errno if synfin could not step back into its own
 * network namespace. */
int procscan(struct holders *out, const char *proc_root, uint32_t skip_pid, int *fatal);

#endif
