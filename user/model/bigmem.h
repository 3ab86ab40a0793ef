/*
 * Zeroed memory for the large tables (indexes, the TIME_WAIT table), whose
 * pages are first touched in the middle of a storm, at random. Each first
 * touch of a 4 KiB page is a page fault, and on a virtual machine a fault
 * costs microseconds (measured: a third of synfin's CPU in a 40,000-connection
 * storm went to faults in the TIME_WAIT table's index). Regions of 2 MiB or
 * more are asked for transparent huge pages: one fault per 2 MiB, and memory
 * still committed only as it is used, 2 MiB at a time.
 */
#ifndef SYNFIN_BIGMEM_H
#define SYNFIN_BIGMEM_H
#include <stdbool.h>
#include <stddef.h>

void *big_zalloc(size_t bytes);
/* bytes: as given to big_zalloc(). NULL is fine. */
void big_free(void *p, size_t bytes);

/*
 * A big region used from its start up, in order (a table's never-used
 * entries, a ring's first lap). A huge page's first touch costs this VM
 * 0.1-3.5 ms, stalling the reader mid-storm while the rings fill; writing
 * the whole region at start would commit all of it (~100 MB). So a helper
 * thread faults in the next 2 MiB before use reaches it (MADV_POPULATE_WRITE,
 * which leaves the contents as they are): the stall is the helper's, not
 * the reader's. Without the helper (not started, or the kernel lacks the
 * advice) pages fault on first touch as before.
 */
struct big_ahead {
	size_t bytes;
	size_t asked; /* bytes from base asked to be faulted in so far */
	int slot;     /* the helper's, or -1: not watched */
};

/* The helper: once per process, before any watch; false if it cannot run. */
bool big_ahead_start(void);
void big_ahead_stop(void);
/* From now on the helper keeps [0, used + lead) of p faulted in. p: from big_zalloc(). */
void big_ahead_watch(struct big_ahead *a, void *p, size_t bytes);
/* The region is in use up to here (any order: the furthest mark counts). */
void big_ahead_used(struct big_ahead *a, size_t used);
/* Before the region is freed: returns once the helper no longer touches it. */
void big_ahead_forget(struct big_ahead *a);

#endif
