#include "bigmem.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE (2u << 20)
/* Ask for the next huge page when use comes this close to the end of those faulted in. */
#define AHEAD_LEAD (1u << 20)
#define AHEAD_SLOTS 8

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

/* The helper's view of a watched region: written under helper.lock. */
struct ahead_region {
	char *base;
	size_t want, done; /* bytes from base: asked for, faulted in */
	bool live;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work, idle;
	pthread_t thread;
	bool running, stopping;
	int busy; /* the slot being faulted in outside the lock, or -1 */
	struct ahead_region regions[AHEAD_SLOTS];
} helper = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
	     .busy = -1 };

static int pending_slot(void)
{
	for (int i = 0; i < AHEAD_SLOTS; i++)
		if (helper.regions[i].live && helper.regions[i].want > helper.regions[i].done)
			return i;
	return -1;
}

/* Faults in one slot's asked-for pages with the lock dropped (it takes milliseconds). */
static void fault_in(int i)
{
	struct ahead_region *r = &helper.regions[i];
	size_t from = r->done, to = r->want;
	int failed;

	helper.busy = i;
	pthread_mutex_unlock(&helper.lock);
	/* Fails (EINVAL) on a kernel without the advice: then the pages fault on first touch. */
	failed = madvise(r->base + from, to - from, MADV_POPULATE_WRITE);
	pthread_mutex_lock(&helper.lock);
	r->done = to;
	if (failed && errno == EINVAL)
		r->live = false;
	helper.busy = -1;
	pthread_cond_broadcast(&helper.idle);
}

static void *helper_loop(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&helper.lock);
	while (!helper.stopping) {
		int i = pending_slot();

		if (i < 0)
			pthread_cond_wait(&helper.work, &helper.lock);
		else
			fault_in(i);
	}
	pthread_mutex_unlock(&helper.lock);
	return NULL;
}

bool big_ahead_start(void)
{
	sigset_t all, old;
	int err;

	if (helper.running)
		return true;
	/* Signals stay with the main thread, whose loop acts on them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&helper.thread, NULL, helper_loop, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		return false;
	pthread_setname_np(helper.thread, "synfin-prefault"); /* for top -H, /proc */
	helper.running = true;
	return true;
}

void big_ahead_stop(void)
{
	if (!helper.running)
		return;
	pthread_mutex_lock(&helper.lock);
	helper.stopping = true;
	pthread_cond_signal(&helper.work);
	pthread_mutex_unlock(&helper.lock);
	pthread_join(helper.thread, NULL);
	helper.running = helper.stopping = false;
}

void big_ahead_watch(struct big_ahead *a, void *p, size_t bytes)
{
	*a = (struct big_ahead){ .bytes = bytes, .slot = -1 };
	/* Smaller regions are calloc()ed: not page-aligned, and a few pages at most. */
	if (!p || bytes < HUGE_PAGE || !helper.running)
		return;
	pthread_mutex_lock(&helper.lock);
	for (int i = 0; i < AHEAD_SLOTS && a->slot < 0; i++)
		if (!helper.regions[i].live && helper.busy != i) {
			helper.regions[i] = (struct ahead_region){ .base = p, .live = true };
			a->slot = i;
		}
	pthread_mutex_unlock(&helper.lock);
	big_ahead_used(a, 0);
}

void big_ahead_used(struct big_ahead *a, size_t used)
{
	size_t want = (used + AHEAD_LEAD + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;

	if (want > a->bytes)
		want = a->bytes;
	if (want <= a->asked || a->slot < 0)
		return; /* the common case: one comparison */
	a->asked = want;
	pthread_mutex_lock(&helper.lock);
	helper.regions[a->slot].want = want;
	pthread_cond_signal(&helper.work);
	pthread_mutex_unlock(&helper.lock);
}

void big_ahead_forget(struct big_ahead *a)
{
	if (a->slot < 0)
		return;
	pthread_mutex_lock(&helper.lock);
	helper.regions[a->slot].live = false;
	while (helper.busy == a->slot)
		pthread_cond_wait(&helper.idle, &helper.lock);
	pthread_mutex_unlock(&helper.lock);
	a->slot = -1;
}
