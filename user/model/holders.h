/*
 * Who holds which TCP socket, as a scan of every process's descriptors saw
 * it (the view `ss -p` prints; user/enrich/procscan.c makes it): the tracker
 * names a socket's holder from it where no event told, that is for sockets
 * that existed before synfin started and when a holder exits. Pure C.
 */
#ifndef SYNFIN_HOLDERS_H
#define SYNFIN_HOLDERS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "synfin.h"

/* One held socket and the process named its holder: of all that hold it, the
 * one that started first (a pre-forking server's master before its workers). */
struct held_socket {
	uint64_t start_ticks; /* the holder's start time (/proc/PID/stat), for that choice */
	uint8_t saddr[16];    /* network order, local side first, as synfin_event */
	uint8_t daddr[16];
	uint32_t netns, pid;
	uint16_t sport, dport;
	uint8_t family, state;
	char comm[SYNFIN_COMM_LEN];
};

struct holders {
	struct held_socket *v;
	size_t n, cap;
	bool sorted; /* holders_sort() since the last add: lookups take O(log n) */
};

void holders_clear(struct holders *h);
void holders_free(struct holders *h);
int holders_add(struct holders *h, const struct held_socket *s);
/* After the adds: the lookups below then search, not scan (a busy server holds thousands). */
void holders_sort(struct holders *h);
/* The holder of the connection with this tuple, other than skip_pid; NULL if none. */
const struct held_socket *holders_find_conn(const struct holders *h, uint32_t netns, uint8_t family,
					    const uint8_t *saddr, uint16_t sport,
					    const uint8_t *daddr, uint16_t dport, uint32_t skip_pid);
/* The holder of a socket listening on this port, other than skip_pid; NULL if none. */
const struct held_socket *holders_find_listener(const struct holders *h, uint32_t netns,
						uint16_t port, uint32_t skip_pid);

#endif
