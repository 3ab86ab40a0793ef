#include "bigmem.h"
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE (2u << 20)

void *big_zalloc(size_t bytes)
{
	void *p;

	if (bytes < HUGE_PAGE)
		return calloc(1, bytes ? bytes : 1);
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Advice only: without THP (never, or no huge page free) it is 4 KiB pages as before. */
	madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

void big_free(void *p, size_t bytes)
{
	if (!p)
		return;
	if (bytes < HUGE_PAGE)
		free(p);
	else
		munmap(p, bytes);
}
