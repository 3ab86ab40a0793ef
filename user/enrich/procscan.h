/*
 * Every process's TCP sockets, read as `ss -p` reads them: /proc/PID/fd for
 * the socket inodes each process holds, /proc/PID/net/tcp and tcp6 (once per
 * network namespace) for their tuples. Run at start and when a process that
 * held tracked sockets exits; one scan costs milliseconds (README: owners).
 */
#ifndef SYNFIN_PROCSCAN_H
#define SYNFIN_PROCSCAN_H
#include <stdint.h>
#include "holders.h"

/* Refills out; skip_pid (an exiting process, 0: none) is never named a holder.
 * Returns 0, or -1 when /proc cannot be read (out is then empty). */
int procscan(struct holders *out, const char *proc_root, uint32_t skip_pid);

#endif
