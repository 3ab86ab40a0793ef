#include "index.h"
#include "bigmem.h"
#include <stdlib.h>
#include <string.h>

static uint64_t key_at(const struct index *ix, uint32_t slot)
{
	return ix->key_of(ix->pool + (size_t)(ix->slots[slot] - 1) * ix->stride);
}

static uint32_t home_slot(const struct index *ix, uint64_t key)
{
	/* Socket addresses are aligned: multiply to spread the low zero bits. */
	return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & ix->mask;
}

int index_init(struct index *ix, uint32_t min_slots, const void *pool, size_t stride,
	       uint64_t (*key_of)(const void *entry))
{
	uint32_t nslots = 2;

	while (nslots < min_slots)
		nslots <<= 1;
	ix->mask = nslots - 1;
	ix->count = 0;
	ix->pool = pool;
	ix->stride = stride;
	ix->key_of = key_of;
	ix->slots = big_zalloc((size_t)nslots * sizeof(*ix->slots));
	if (!ix->slots)
		return -1;
	/*
	 * Keys hash all over the slots, so a storm's first burst touches every
	 * page of them at once, in the reader's hot path, where a first touch is
	 * slow if the memory must first be backed (on the test machine's VM: 11 us
	 * a 4 KiB page, up to 3.5 ms a huge page). Faulted there, ~45 pages
	 * stalled the reader ~15 ms while its rings filled; written here, at start,
	 * they cost the slots' size in RSS from the start (~4.6 MB by default).
	 */
	memset(ix->slots, 0, (size_t)nslots * sizeof(*ix->slots));
	return 0;
}

void index_free(struct index *ix)
{
	if (ix->slots)
		big_free(ix->slots, ((size_t)ix->mask + 1) * sizeof(*ix->slots));
	ix->slots = NULL;
}

uint32_t index_find(const struct index *ix, uint64_t key)
{
	uint32_t i = home_slot(ix, key);

	while (ix->slots[i] && key_at(ix, i) != key)
		i = (i + 1) & ix->mask;
	return i;
}

uint32_t index_slot_of(const struct index *ix, uint32_t idx)
{
	uint32_t i = home_slot(ix, ix->key_of(ix->pool + (size_t)idx * ix->stride));

	while (ix->slots[i] && ix->slots[i] != idx + 1)
		i = (i + 1) & ix->mask;
	return i;
}

void index_add(struct index *ix, uint32_t slot, uint32_t idx)
{
	ix->slots[slot] = idx + 1;
	ix->count++;
}

int index_has_room(const struct index *ix)
{
	return 2 * ((uint64_t)ix->count + 1) <= (uint64_t)ix->mask + 1;
}

void index_clear(struct index *ix, uint32_t i)
{
	ix->count--;
	for (;;) {
		uint32_t j = i;

		ix->slots[i] = 0;
		for (;;) {
			uint32_t k;

			j = (j + 1) & ix->mask;
			if (!ix->slots[j])
				return;
			k = home_slot(ix, key_at(ix, j));
			/* Entry at j may stay only if its home lies cyclically in (i, j]. */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			ix->slots[i] = ix->slots[j];
			i = j;
			break;
		}
	}
}
