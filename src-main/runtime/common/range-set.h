/* A set of u64 values kept as sorted, disjoint, non-adjacent half-open ranges [lo, hi): what a
 * set of page addresses looks like when the pages come in long runs (a process's memory). Adding
 * or removing a run costs one pass over the ranges, not one step per page. */
#ifndef VOS_RANGE_SET_H
#define VOS_RANGE_SET_H

#include <stddef.h>
#include <stdint.h>

struct range {
	uint64_t lo, hi;
};

struct range_set {
	struct range *r;
	size_t n, cap;
};

/* Makes [lo, hi) exactly `runs` (sorted, disjoint, each within [lo, hi); n may be 0): what was
 * in [lo, hi) before is gone, what is outside it stays. */
void range_set_splice(struct range_set *s, uint64_t lo, uint64_t hi, const struct range *runs, size_t n);
void range_set_add(struct range_set *s, uint64_t lo, uint64_t hi);
void range_set_remove(struct range_set *s, uint64_t lo, uint64_t hi);
/* The index of the first range that ends after x (s->n if none): the ranges meeting [x, ...)
 * start there, in order. */
size_t range_set_from(const struct range_set *s, uint64_t x);
void range_set_free(struct range_set *s);

#endif
