#include "u64map.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define EMPTY 0
#define REMOVED 1

static size_t slot_of(uint64_t key, size_t cap)
{
	return (size_t)(((key >> 12 ^ key) * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

/* The slot holding key, or SIZE_MAX. */
static size_t find(const struct u64map *m, uint64_t key)
{
	if (!m->cap)
		return SIZE_MAX;
	for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->key[i] == key)
			return i;
		if (m->key[i] == EMPTY)
			return SIZE_MAX;
	}
}

static void grow(struct u64map *m)
{
	struct u64map old = *m;
	m->cap = old.cap ? old.cap * 2 : 4096;
	m->key = xcalloc(m->cap, sizeof *m->key);
	m->val = xcalloc(m->cap, sizeof *m->val);
	m->used = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.key[i] > REMOVED)
			u64map_put(m, old.key[i], old.val[i]);
	free(old.key);
	free(old.val);
}

void u64map_put(struct u64map *m, uint64_t key, uint64_t val)
{
	if ((m->used + 1) * 4 > m->cap * 3)
		grow(m);
	size_t i = slot_of(key, m->cap);
	while (m->key[i] != EMPTY && m->key[i] != key)
		i = (i + 1) & (m->cap - 1);
	if (m->key[i] == EMPTY) {
		m->key[i] = key;
		m->used++;
	}
	m->val[i] = val;
}

int u64map_get(const struct u64map *m, uint64_t key, uint64_t *val)
{
	size_t i = find(m, key);
	if (i == SIZE_MAX)
		return 0;
	if (val)
		*val = m->val[i];
	return 1;
}

void u64map_remove(struct u64map *m, uint64_t key)
{
	size_t i = find(m, key);
	if (i != SIZE_MAX)
		m->key[i] = REMOVED;
}

void u64map_remove_range(struct u64map *m, uint64_t lo, uint64_t hi, uint64_t step)
{
	if (hi <= lo)
		return;
	if (m->used > (hi - lo) / step) {
		for (uint64_t k = lo; k < hi; k += step)
			u64map_remove(m, k);
		return;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->key[i] >= lo && m->key[i] < hi && (m->key[i] - lo) % step == 0)
			m->key[i] = REMOVED;
}

void u64map_free(struct u64map *m)
{
	free(m->key);
	free(m->val);
	memset(m, 0, sizeof *m);
}
