/*
 * An index from 64-bit keys to entries of a caller's array (the pool), by
 * open addressing with linear probing. slots[] holds pool index + 1 (0 is
 * empty) and should be kept at most half full, so a lookup touches one or two
 * cache lines. Deletion shifts entries back instead of leaving tombstones, so
 * the table never degrades however many entries come and go. Keys are read
 * from the pool through key_of, so a pool can carry several indexes.
 */
#ifndef SYNFIN_INDEX_H
#define SYNFIN_INDEX_H
#include <stddef.h>
#include <stdint.h>

struct index {
	uint32_t *slots;
	uint32_t mask, count;
	const char *pool;
	size_t stride;
	uint64_t (*key_of)(const void *entry);
};

int index_init(struct index *ix, uint32_t min_slots, const void *pool, size_t stride,
	       uint64_t (*key_of)(const void *entry));
void index_free(struct index *ix);
/* The slot holding key, or the empty slot where it would go. */
uint32_t index_find(const struct index *ix, uint64_t key);
/* The slot pointing at pool entry idx (for keys that may repeat). */
uint32_t index_slot_of(const struct index *ix, uint32_t idx);
void index_add(struct index *ix, uint32_t slot, uint32_t idx);
void index_clear(struct index *ix, uint32_t slot);
/* True when one more entry keeps the index at most half full. */
int index_has_room(const struct index *ix);

/* Pool index at slot, or -1 when the slot is empty. */
static inline int64_t index_at(const struct index *ix, uint32_t slot)
{
	return ix->slots[slot] ? (int64_t)ix->slots[slot] - 1 : -1;
}

#endif
