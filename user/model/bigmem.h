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
#include <stddef.h>

void *big_zalloc(size_t bytes);
/* bytes: as given to big_zalloc(). NULL is fine. */
void big_free(void *p, size_t bytes);

#endif
