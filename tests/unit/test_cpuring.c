/* The per-CPU rings' reader: merge order, the cutoff, wrap-around, early stop. */
#include <stdlib.h>
#include "check.h"
#include "cpuring.h"

#define SLOTS 8
#define NRINGS 3

struct rings {
	struct cpu_rings r;
	uint8_t *mem;
};

struct seen {
	uint64_t ts[64];
	int n, stop_at;
};

static int collect(void *ctx, void *data, size_t size)
{
	struct seen *s = ctx;
	const struct synfin_event *e = data;

	CHECK_INT(size, sizeof(*e));
	s->ts[s->n++] = e->ts_ns;
	return s->n == s->stop_at ? -1 : 0;
}

static struct rings make_rings(void)
{
	struct rings x;

	x.mem = calloc(NRINGS, cpu_ring_bytes(SLOTS));
	CHECK(x.mem != NULL);
	CHECK_INT(cpu_rings_init(&x.r, x.mem, NRINGS, SLOTS), 0);
	return x;
}

static struct synfin_cpu_ring *ring(struct rings *x, int i)
{
	return (void *)(x->mem + (size_t)i * x->r.elem_size);
}

/* What the BPF program does first: move head past the slot (nothing written yet). */
static struct synfin_event *take_slot(struct rings *x, int i)
{
	struct synfin_cpu_ring *r = ring(x, i);
	struct synfin_event *slot = (void *)((uint8_t *)(r + 1) + (r->head % SLOTS) * SF_CPU_SLOT);

	CHECK(r->head - r->tail < SLOTS);
	r->head++;
	return slot;
}

/* ... then fill it, ts_ns 0 until the end. */
static struct synfin_event *reserve(struct rings *x, int i)
{
	struct synfin_event *slot = take_slot(x, i);

	memset(slot, 0, sizeof(*slot));
	return slot;
}

/* ... and then: publish it by its stamp. */
static void push(struct rings *x, int i, uint64_t ts)
{
	reserve(x, i)->ts_ns = ts;
}

static void drop_rings(struct rings *x)
{
	cpu_rings_free(&x->r);
	free(x->mem);
}

static void merges_rings_oldest_first(void)
{
	struct rings x = make_rings();
	struct seen s = { 0 };
	const uint64_t want[] = { 10, 20, 25, 30, 40, 50 };

	push(&x, 0, 10), push(&x, 0, 30), push(&x, 0, 50);
	push(&x, 1, 20), push(&x, 1, 40);
	push(&x, 2, 25);
	CHECK_INT(cpu_rings_drain(&x.r, 1000, collect, &s), 6);
	CHECK_INT(s.n, 6);
	for (int i = 0; i < 6; i++)
		CHECK_INT(s.ts[i], want[i]);
	for (int i = 0; i < NRINGS; i++)
		CHECK_INT(ring(&x, i)->tail, ring(&x, i)->head);
	CHECK_INT(cpu_rings_drain(&x.r, 1000, collect, &s), 0);
	drop_rings(&x);
}

/* Records stamped at or after the cutoff wait, in their slots, for the next drain. */
static void cutoff_holds_later_records_back(void)
{
	struct rings x = make_rings();
	struct seen s = { 0 };

	push(&x, 0, 10), push(&x, 0, 30), push(&x, 0, 50);
	push(&x, 1, 20), push(&x, 1, 40);
	CHECK_INT(cpu_rings_drain(&x.r, 30, collect, &s), 2);
	CHECK_INT(s.ts[0], 10);
	CHECK_INT(s.ts[1], 20);
	CHECK_INT(ring(&x, 0)->tail, 1);
	CHECK_INT(ring(&x, 1)->tail, 1);
	push(&x, 2, 35);
	CHECK_INT(cpu_rings_drain(&x.r, 100, collect, &s), 4);
	CHECK_INT(s.ts[2], 30);
	CHECK_INT(s.ts[3], 35);
	CHECK_INT(s.ts[4], 40);
	CHECK_INT(s.ts[5], 50);
	drop_rings(&x);
}

static void slots_wrap_around(void)
{
	struct rings x = make_rings();
	struct seen s = { 0 };
	uint64_t ts = 1;

	for (int round = 0; round < 5; round++) {
		s.n = 0;
		for (int i = 0; i < SLOTS - 1; i++)
			push(&x, round % 2, ts++);
		CHECK_INT(cpu_rings_drain(&x.r, ts, collect, &s), SLOTS - 1);
		for (int i = 0; i < SLOTS - 1; i++)
			CHECK_INT(s.ts[i], ts - (SLOTS - 1) + (uint64_t)i);
	}
	CHECK_INT(ring(&x, 0)->tail, 3 * (SLOTS - 1));
	drop_rings(&x);
}

/* A negative result (the output is gone) stops at once; that record counts as taken. */
static void callback_error_stops_the_drain(void)
{
	struct rings x = make_rings();
	struct seen s = { .stop_at = 2 };

	push(&x, 0, 10), push(&x, 0, 30);
	push(&x, 1, 20), push(&x, 1, 40);
	CHECK_INT(cpu_rings_drain(&x.r, 1000, collect, &s), -1);
	CHECK_INT(s.n, 2);
	CHECK_INT(ring(&x, 0)->tail + ring(&x, 1)->tail, 2);
	s.stop_at = 0;
	CHECK_INT(cpu_rings_drain(&x.r, 1000, collect, &s), 2);
	CHECK_INT(s.ts[2], 30);
	CHECK_INT(s.ts[3], 40);
	drop_rings(&x);
}

static void ring_size_follows_the_budget(void)
{
	const uint64_t max = SF_CPU_RING_MAX_SLOTS;

	CHECK_INT(cpu_ring_slots(8u << 20, 2, 16, max), 32768); /* capped: 4 MiB array values */
	CHECK_INT(cpu_ring_slots(8u << 20, 2, 2048, 8192), 8192);
	CHECK_INT(cpu_ring_slots(8u << 20, 16, 2048, 8192), 4096);
	CHECK_INT(cpu_ring_slots(8u << 20, 256, 2048, 8192), 2048); /* the floor */
	CHECK_INT(cpu_ring_slots(4u << 20, 2, 16, max), 16384);
	CHECK_INT(cpu_ring_slots(4096, 2, 16, max), 16);
	CHECK_INT(cpu_ring_slots(0, 0, 16, max), 16);
	CHECK(cpu_ring_bytes(SF_CPU_RING_MAX_SLOTS) <= 4u << 20);
}

/*
 * A run that interrupts another on the same CPU takes the next slot while the
 * first is still being written: the reader must wait for the first, not skip
 * it, and must not take the stale record a slot held a lap earlier.
 */
static void unpublished_slot_holds_its_ring_back(void)
{
	struct rings x = make_rings();
	struct seen s = { 0 };
	struct synfin_event *outer;

	for (int i = 0; i < SLOTS; i++) /* a lap: every slot of ring 0 has held a record */
		push(&x, 0, 1 + (uint64_t)i);
	CHECK_INT(cpu_rings_drain(&x.r, 1000, collect, &s), SLOTS);
	s.n = 0;
	outer = take_slot(&x, 0); /* reserved, not yet written */
	push(&x, 0, 120);        /* the nested run, published first */
	push(&x, 1, 110);
	CHECK_INT(cpu_rings_drain(&x.r, 1000, collect, &s), 1);
	CHECK_INT(s.ts[0], 110);
	CHECK_INT(ring(&x, 0)->tail, SLOTS); /* nothing of ring 0 taken */
	outer->ts_ns = 100;
	CHECK_INT(cpu_rings_drain(&x.r, 1000, collect, &s), 2);
	CHECK_INT(s.ts[1], 100);
	CHECK_INT(s.ts[2], 120);
	drop_rings(&x);
}

int main(void)
{
	RUN(merges_rings_oldest_first);
	RUN(cutoff_holds_later_records_back);
	RUN(slots_wrap_around);
	RUN(callback_error_stops_the_drain);
	RUN(ring_size_follows_the_budget);
	RUN(unpublished_slot_holds_its_ring_back);
	return check_summary("unit/cpuring");
}
