#include "range-set.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

size_t range_set_from(const struct range_set *s, uint64_t x)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->r[mid].hi <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void reserve(struct range_set *s, size_t need)
{
	if (need <= s->cap)
		return;
	size_t cap = s->cap ? s->cap : 16;
	while (cap < need)
		cap *= 2;
	s->r = xrealloc(s->r, cap * sizeof *s->r);
	s->cap = cap;
}

/* Appends [lo, hi) to out (n ranges so far), joining it to the last one where they touch. */
static size_t append(struct range *out, size_t n, uint64_t lo, uint64_t hi)
{
	if (lo >= hi)
		return n;
	if (n > 0 && out[n - 1].hi >= lo) {
		if (out[n - 1].hi < hi)
			out[n - 1].hi = hi;
		return n;
	}
	out[n] = (struct range){lo, hi};
	return n + 1;
}

void range_set_splice(struct range_set *s, uint64_t lo, uint64_t hi, const struct range *runs, size_t n)
{
	if (lo >= hi)
		return;
	size_t first = range_set_from(s, lo); /* the first range meeting [lo, ...) */
	size_t last = first;                  /* one past the last range meeting [..., hi) */
	while (last < s->n && s->r[last].lo < hi)
		last++;
	/* What replaces ranges [first, last): the part of the first before lo, the runs, the part
	 * of the last after hi; at most n + 2 ranges, joined to their neighbours where they touch. */
	struct range *mid = xmalloc((n + 2) * sizeof *mid);
	size_t m = 0;
	if (first < last && s->r[first].lo < lo)
		m = append(mid, m, s->r[first].lo, lo);
	for (size_t i = 0; i < n; i++)
		m = append(mid, m, runs[i].lo < lo ? lo : runs[i].lo, runs[i].hi > hi ? hi : runs[i].hi);
	if (first < last && s->r[last - 1].hi > hi)
		m = append(mid, m, hi, s->r[last - 1].hi);
	/* Neighbours outside [first, last) that now touch: the one before ends at lo at most, the
	 * one after starts at hi at least. */
	if (m > 0 && first > 0 && s->r[first - 1].hi == mid[0].lo) {
		mid[0].lo = s->r[first - 1].lo;
		first--;
	}
	if (m > 0 && last < s->n && s->r[last].lo == mid[m - 1].hi) {
		mid[m - 1].hi = s->r[last].hi;
		last++;
	}
	size_t tail = s->n - last;
	reserve(s, first + m + tail);
	memmove(s->r + first + m, s->r + last, tail * sizeof *s->r);
	memcpy(s->r + first, mid, m * sizeof *mid);
	s->n = first + m + tail;
	free(mid);
}

void range_set_add(struct range_set *s, uint64_t lo, uint64_t hi)
{
	struct range run = {lo, hi};
	range_set_splice(s, lo, hi, &run, 1); /* the parts outside [lo, hi) stay and are joined to it */
}

void range_set_remove(struct range_set *s, uint64_t lo, uint64_t hi)
{
	range_set_splice(s, lo, hi, NULL, 0);
}

void range_set_free(struct range_set *s)
{
	free(s->r);
	memset(s, 0, sizeof *s);
}
