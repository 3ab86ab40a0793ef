/*
 * A minimal test harness: TEST(name) functions, CHECK* assertions that say
 * what was expected, and a closing line the suite runner adds up.
 */
#ifndef SYNFIN_CHECK_H
#define SYNFIN_CHECK_H
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int check_failures_in_test;
static int tests_passed, tests_failed, tests_skipped;
/* Set by SKIP(): the test could not run here, and says why. */
static const char *skip_reason;

/* Ends the calling test as skipped: only for a named missing prerequisite. */
#define SKIP(why)                                                                     \
	do {                                                                          \
		skip_reason = (why);                                                  \
		return;                                                               \
	} while (0)

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			printf("    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
			check_failures_in_test++;                                     \
		}                                                                     \
	} while (0)

#define CHECK_INT(got, want)                                                          \
	do {                                                                          \
		long long g_ = (long long)(got), w_ = (long long)(want);              \
		if (g_ != w_) {                                                       \
			printf("    %s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #got, \
			       g_, w_);                                               \
			check_failures_in_test++;                                     \
		}                                                                     \
	} while (0)

#define CHECK_STR(got, want)                                                          \
	do {                                                                          \
		const char *g_ = (got), *w_ = (want);                                 \
		if (strcmp(g_, w_)) {                                                 \
			printf("    %s:%d: %s =\n      \"%s\"\n    want\n      \"%s\"\n", \
			       __FILE__, __LINE__, #got, g_, w_);                     \
			check_failures_in_test++;                                     \
		}                                                                     \
	} while (0)

#define RUN(test)                                                                     \
	do {                                                                          \
		check_failures_in_test = 0;                                           \
		skip_reason = NULL;                                                   \
		test();                                                               \
		if (skip_reason && !check_failures_in_test) {                         \
			tests_skipped++;                                              \
			printf("skip %s: %s\n", #test, skip_reason);                  \
		} else if (check_failures_in_test) {                                  \
			tests_failed++;                                               \
			printf("FAIL %s\n", #test);                                   \
		} else {                                                              \
			tests_passed++;                                               \
			printf("ok   %s\n", #test);                                   \
		}                                                                     \
	} while (0)

/* What was written to the temporary file f, NUL-terminated in buf; closes f. */
static inline const char *read_back(FILE *f, char *buf, size_t size)
{
	ssize_t n;

	lseek(fileno(f), 0, SEEK_SET);
	n = read(fileno(f), buf, size - 1);
	buf[n > 0 ? n : 0] = 0;
	fclose(f);
	return buf;
}

static inline int check_summary(const char *suite)
{
	printf("%s: %d passed, %d failed, %d skipped\n", suite, tests_passed, tests_failed,
	       tests_skipped);
	return tests_failed ? 1 : 0;
}

#endif
