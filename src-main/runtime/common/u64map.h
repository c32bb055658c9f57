/* A hash map from u64 keys to u64 values (open addressing). Keys 0 and 1 are reserved (empty,
 * removed): page addresses and the other keys used with it are never 0 or 1. */
#ifndef VOS_U64MAP_H
#define VOS_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct u64map {
	uint64_t *key, *val;
	size_t cap, used; /* used: live keys and removed marks */
};

void u64map_put(struct u64map *m, uint64_t key, uint64_t val);
/* 1 and *val if key is there, 0 if not (val may be NULL). */
int u64map_get(const struct u64map *m, uint64_t key, uint64_t *val);
void u64map_remove(struct u64map *m, uint64_t key);
/* Removes every key in [lo, hi) that is a multiple of step from lo (the cheaper way round). */
void u64map_remove_range(struct u64map *m, uint64_t lo, uint64_t hi, uint64_t step);
void u64map_free(struct u64map *m);

#endif
