/*
 * The fault-ahead helper (bigmem.h), against the kernel's own accounts: which
 * pages are resident (mincore) and how many page faults the calling thread
 * took (getrusage RUSAGE_THREAD). The point of the helper is that the reader
 * thread takes no first-touch fault in what it watches.
 */
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include "bigmem.h"
#include "check.h"

#define MIB (1u << 20)
#define PAGE 4096u

static long thread_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

/* Pages of [p, p + bytes) in memory, as the kernel says (mincore); -1 if it cannot say. */
static long resident_pages(char *p, size_t bytes)
{
	static unsigned char vec[64 * MIB / PAGE];
	long n = 0;

	if (mincore(p, bytes, vec))
		return -1;
	for (size_t i = 0; i < bytes / PAGE; i++)
		n += vec[i] & 1;
	return n;
}

static bool all_resident(char *p, size_t bytes)
{
	return resident_pages(p, bytes) == (long)(bytes / PAGE);
}

static bool none_resident(char *p, size_t bytes)
{
	return resident_pages(p, bytes) == 0;
}

/* Waits on the helper's work itself (at most 10 s, for a slow VM). */
static bool wait_resident(char *p, size_t bytes)
{
	struct timespec ms = { 0, 1000000 };

	for (int i = 0; i < 10000; i++) {
		if (all_resident(p, bytes))
			return true;
		nanosleep(&ms, NULL);
	}
	return false;
}

/*
 * Writes a byte in each page; returns the faults this thread took doing it.
 * Not instrumented: under ASan each write would first read its shadow memory,
 * whose own first touches are faults too.
 */
__attribute__((no_sanitize_address)) static long faults_writing(char *p, size_t bytes)
{
	long before = thread_faults();

	for (size_t off = 0; off < bytes; off += PAGE)
		((volatile char *)p)[off] = 1;
	return thread_faults() - before;
}

static void watched_pages_are_faulted_in_ahead_of_use_by_the_helper(void)
{
	size_t bytes = 16 * MIB;
	char *p = big_zalloc(bytes), *control = big_zalloc(4 * MIB);
	struct big_ahead a;

	CHECK(p && control);
	if (!p || !control)
		return;
	CHECK(big_ahead_start());
	p[100] = 0x5a; /* in use before the helper: it must leave contents as they are */
	big_ahead_watch(&a, p, bytes);
	CHECK(a.slot >= 0);
	/* Nothing used yet: the first 2 MiB (use plus 1 MiB, to a huge page), no more. */
	CHECK(wait_resident(p, 2 * MIB));
	CHECK(none_resident(p + 8 * MIB, 8 * MIB));
	CHECK_INT(p[100], 0x5a);
	CHECK_INT(faults_writing(p, 2 * MIB), 0);
	big_ahead_used(&a, 5 * MIB);
	CHECK(wait_resident(p, 6 * MIB));
	CHECK_INT(faults_writing(p + 2 * MIB, 4 * MIB), 0);
	CHECK(none_resident(p + 8 * MIB, 8 * MIB));
	/* The witness can tell: memory nobody faulted in costs this thread faults. */
	CHECK(faults_writing(control, 4 * MIB) > 0);
	big_ahead_forget(&a);
	CHECK_INT(a.slot, -1);
	big_free(p, bytes);
	big_free(control, 4 * MIB);
	big_ahead_stop();
}

/* Not started (as in these unit tests' other suites): watching changes nothing. */
static void without_the_helper_pages_fault_on_first_touch(void)
{
	size_t bytes = 4 * MIB;
	char *p = big_zalloc(bytes);
	struct big_ahead a;

	CHECK(p != NULL);
	if (!p)
		return;
	big_ahead_watch(&a, p, bytes);
	CHECK_INT(a.slot, -1);
	big_ahead_used(&a, 3 * MIB);
	CHECK(none_resident(p, bytes));
	CHECK(faults_writing(p, bytes) > 0);
	big_ahead_forget(&a);
	big_free(p, bytes);
}

int main(void)
{
	RUN(watched_pages_are_faulted_in_ahead_of_use_by_the_helper);
	RUN(without_the_helper_pages_fault_on_first_touch);
	return check_summary("unit/bigmem");
}
