/*
 * Reader of the per-CPU state rings (struct synfin_cpu_ring in synfin.h).
 *
 * A socket's transitions can run on different CPUs, so the rings are merged
 * by timestamp. One rule keeps each socket's records in order: a record is
 * taken only if it was stamped before the moment (cutoff) at which the drain
 * began, and later ones wait for the next drain. Why it holds: transitions
 * of one socket run one after another (under the socket lock), so a record
 * stamped before the cutoff was preceded by its socket's earlier records,
 * all published before that moment, hence all visible to this drain.
 * Within a ring, records are taken in slot order, and a slot reserved but
 * not yet published stops that ring for this drain (synfin.h).
 */
#ifndef SYNFIN_CPURING_H
#define SYNFIN_CPURING_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "synfin.h"

/* Same shape as libbpf's ring_buffer_sample_fn: a negative result stops the drain. */
typedef int (*cpu_ring_fn)(void *ctx, void *data, size_t size);

struct cpu_cursor;

struct cpu_rings {
	uint8_t *mem;     /* nrings elements of elem_size bytes (the mmap-ed array map) */
	size_t elem_size;
	uint32_t nrings;
	uint64_t mask;    /* slots per ring - 1 */
	struct cpu_cursor *cur;
};

/* Slots per ring for a total budget of `bytes` over nrings rings: a power of two
 * from min_slots to max_slots (both powers of two). */
uint64_t cpu_ring_slots(uint64_t bytes, uint32_t nrings, uint64_t min_slots, uint64_t max_slots);
/* Bytes of one ring: its header and its slots (the array map's value size). */
size_t cpu_ring_bytes(uint64_t slots);
/* Bytes of nrings such rings back to back, as the array map lays them out. */
size_t cpu_rings_span(uint32_t nrings, uint64_t slots);
/* mem holds nrings rings of `slots` slots each. 0, or -1 when out of memory. */
int cpu_rings_init(struct cpu_rings *r, void *mem, uint32_t nrings, uint64_t slots);
void cpu_rings_free(struct cpu_rings *r);
/*
 * Hands fn every record stamped before cutoff_ns, oldest first across the
 * rings, and frees their slots. Returns the number handed over, or fn's
 * negative result.
 */
long cpu_rings_drain(struct cpu_rings *r, uint64_t cutoff_ns, cpu_ring_fn fn, void *ctx);

#endif
