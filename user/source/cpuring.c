#include "cpuring.h"
#include <stdlib.h>

/* Give slots back to the producer this often during a long drain, not per record: the
 * producer reads the tail on every record and each store moves its cache line. */
#define TAIL_BATCH 256

struct cpu_cursor {
	struct synfin_cpu_ring *ring;
	const uint8_t *slots;
	uint64_t pos, end;
};

uint64_t cpu_ring_slots(uint64_t bytes, uint32_t nrings, uint64_t min_slots, uint64_t max_slots)
{
	uint64_t want = bytes / (nrings ? nrings : 1) / SF_CPU_SLOT, slots = min_slots;

	while (slots < max_slots && slots * 2 <= want)
		slots *= 2;
	return slots;
}

/* The kernel rounds array values up to 8 bytes: ours must need no rounding. */
_Static_assert(sizeof(struct synfin_cpu_ring) % 8 == 0 && SF_CPU_SLOT % 8 == 0,
	       "per-CPU ring elements must be a multiple of 8 bytes");

size_t cpu_ring_bytes(uint64_t slots)
{
	return sizeof(struct synfin_cpu_ring) + slots * SF_CPU_SLOT;
}

size_t cpu_rings_span(uint32_t nrings, uint64_t slots)
{
	return (size_t)nrings * cpu_ring_bytes(slots);
}

int cpu_rings_init(struct cpu_rings *r, void *mem, uint32_t nrings, uint64_t slots)
{
	r->mem = mem;
	r->nrings = nrings;
	r->mask = slots - 1;
	r->elem_size = cpu_ring_bytes(slots);
	r->cur = calloc(nrings, sizeof(*r->cur));
	return r->cur ? 0 : -1;
}

void cpu_rings_free(struct cpu_rings *r)
{
	free(r->cur);
	r->cur = NULL;
	r->nrings = 0;
}

/* The record under the cursor. */
static void *slot_of(const struct cpu_rings *r, const struct cpu_cursor *c)
{
	return (void *)(c->slots + (c->pos & r->mask) * SF_CPU_SLOT);
}

/* The record's stamp; 0 while its producer is still writing it (synfin.h). */
static uint64_t stamp(const struct cpu_rings *r, const struct cpu_cursor *c)
{
	return __atomic_load_n(&((struct synfin_event *)slot_of(r, c))->ts_ns, __ATOMIC_ACQUIRE);
}

/* Taken: the slot reads as unpublished until a producer stamps it again. */
static void clear_stamp(const struct cpu_rings *r, const struct cpu_cursor *c)
{
	((struct synfin_event *)slot_of(r, c))->ts_ns = 0;
}

static void release(struct cpu_cursor *c)
{
	__atomic_store_n(&c->ring->tail, c->pos, __ATOMIC_RELEASE);
}

/* A published record stamped before the cutoff; a reserved slot not yet
 * published holds back the rest of its ring until the next drain. */
static bool ready(const struct cpu_rings *r, const struct cpu_cursor *c, uint64_t cutoff_ns)
{
	uint64_t ts;

	if (c->pos == c->end)
		return false;
	ts = stamp(r, c);
	return ts && ts < cutoff_ns;
}

/* Cursors of the rings with a record to take; returns how many. */
static uint32_t open_cursors(struct cpu_rings *r, uint64_t cutoff_ns)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < r->nrings; i++) {
		struct cpu_cursor *c = &r->cur[n];

		c->ring = (struct synfin_cpu_ring *)(r->mem + (size_t)i * r->elem_size);
		c->slots = (const uint8_t *)(c->ring + 1);
		c->pos = c->ring->tail; /* only we write it */
		c->end = __atomic_load_n(&c->ring->head, __ATOMIC_ACQUIRE);
		if (ready(r, c, cutoff_ns))
			n++;
	}
	return n;
}

static uint32_t oldest(const struct cpu_rings *r, uint32_t n)
{
	uint32_t best = 0;

	for (uint32_t k = 1; k < n; k++)
		if (stamp(r, &r->cur[k]) < stamp(r, &r->cur[best]))
			best = k;
	return best;
}

long cpu_rings_drain(struct cpu_rings *r, uint64_t cutoff_ns, cpu_ring_fn fn, void *ctx)
{
	uint32_t n = open_cursors(r, cutoff_ns);
	long taken = 0;
	int err = 0;

	while (n && err >= 0) {
		uint32_t k = oldest(r, n);
		struct cpu_cursor *c = &r->cur[k];

		err = fn(ctx, slot_of(r, c), SF_CPU_SLOT);
		clear_stamp(r, c);
		c->pos++;
		taken++;
		if (!ready(r, c, cutoff_ns)) {
			release(c);
			r->cur[k] = r->cur[--n];
		} else if (c->pos % TAIL_BATCH == 0) {
			release(c);
		}
	}
	while (n)
		release(&r->cur[--n]);
	return err < 0 ? err : taken;
}
