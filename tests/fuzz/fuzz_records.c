/*
 * Ring-buffer records are bytes from the kernel: feed arbitrary ones through
 * everything user space does with them (tracker, TIME_WAIT follow-up entry,
 * JSON and text writers) and look for memory errors and undefined behaviour.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "output.h"
#include "timewait.h"
#include "tracker.h"

static struct tracker *tracker;
static struct output json_out, text_out;
static struct sinks sinks;

static void on_stuck(void *ctx, const struct conn *c, uint64_t now_ns)
{
	(void)ctx;
	sinks_stuck(&sinks, c, now_ns);
}

static void init_once(void)
{
	int devnull = open("/dev/null", O_WRONLY);

	tracker = tracker_new(64); /* small: evictions are exercised too */
	output_init(&json_out, devnull, true, OUTPUT_ALL);
	output_init(&text_out, devnull, false, OUTPUT_LIFE);
	sinks_add(&sinks, &json_out.sink);
	sinks_add(&sinks, &text_out.sink);
}

static void feed(const struct synfin_event *e)
{
	struct transition tr;
	struct lifecycle l;

	tracker_feed(tracker, e, &tr);
	sinks_state(&sinks, e, &tr);
	if (tr.ended) {
		struct tw_entry tw = { .family = tr.ended->family, .substate = e->oldstate };

		lifecycle_of(&l, tr.ended, NULL, false);
		sinks_conn(&sinks, &l);
		sinks_tw_end(&sinks, &tw, (enum tw_end)(1 + e->retrans % 3), e->ts_ns);
	}
	tracker_find_stuck(tracker, e->ts_ns, e->srtt_us, e->local_isn, on_stuck, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct synfin_event e;

	if (!tracker)
		init_once();
	for (size_t off = 0; off + sizeof(e) <= size; off += sizeof(e)) {
		memcpy(&e, data + off, sizeof(e));
		feed(&e);
	}
	sinks_lost(&sinks, size, &(struct loss){ .count = size, .total = size, .skipped = size / 2 });
	ob_flush(&json_out.ob);
	ob_flush(&text_out.ob);
	return 0;
}
