/* Checks common/range-set.c against a plain bitmap: random splices, adds and removes over a
 * small universe, after each one the set's invariants (sorted, disjoint, not touching, not
 * empty) and its members; range_set_from against a linear search. Prints "ok OPS" or the first
 * difference (exit 1). argv[1]: the seed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "range-set.h"

#define UNIVERSE 300

static unsigned long long state;

static unsigned rnd(unsigned n)
{
	state = state * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)((state >> 33) % n);
}

static int check(const struct range_set *s, const unsigned char *ref, int op)
{
	unsigned char got[UNIVERSE];
	memset(got, 0, sizeof got);
	for (size_t i = 0; i < s->n; i++) {
		const struct range *r = &s->r[i];
		if (r->lo >= r->hi || r->hi > UNIVERSE || (i > 0 && s->r[i - 1].hi >= r->lo)) {
			printf("op %d: range %zu [%llu, %llu) breaks the invariants\n", op, i, (unsigned long long)r->lo,
			       (unsigned long long)r->hi);
			return -1;
		}
		memset(got + r->lo, 1, (size_t)(r->hi - r->lo));
	}
	if (memcmp(got, ref, sizeof got) != 0) {
		for (int x = 0; x < UNIVERSE; x++)
			if (got[x] != ref[x]) {
				printf("op %d: %d is %s the set but should %sbe\n", op, x, got[x] ? "in" : "not in", ref[x] ? "" : "not ");
				return -1;
			}
	}
	for (uint64_t x = 0; x <= UNIVERSE; x++) {
		size_t want = 0;
		while (want < s->n && s->r[want].hi <= x)
			want++;
		if (range_set_from(s, x) != want) {
			printf("op %d: range_set_from(%llu) is %zu, not %zu\n", op, (unsigned long long)x, range_set_from(s, x), want);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	state = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
	struct range_set s = {0};
	unsigned char ref[UNIVERSE];
	memset(ref, 0, sizeof ref);
	int ops = 20000;
	for (int op = 0; op < ops; op++) {
		uint64_t lo = rnd(UNIVERSE), hi = lo + rnd(UNIVERSE - (unsigned)lo + 1);
		switch (rnd(3)) {
		case 0:
			range_set_add(&s, lo, hi);
			memset(ref + lo, 1, (size_t)(hi - lo));
			break;
		case 1:
			range_set_remove(&s, lo, hi);
			memset(ref + lo, 0, (size_t)(hi - lo));
			break;
		default: {
			/* Runs within [lo, hi): sorted, disjoint, sometimes touching each other. */
			struct range runs[8];
			size_t n = 0;
			uint64_t at = lo;
			while (n < 8 && at < hi && rnd(4) != 0) {
				uint64_t a = at + rnd((unsigned)(hi - at));
				uint64_t b = a + 1 + rnd((unsigned)(hi - a));
				runs[n++] = (struct range){a, b};
				at = b + rnd(2);
			}
			range_set_splice(&s, lo, hi, runs, n);
			memset(ref + lo, 0, (size_t)(hi - lo));
			for (size_t i = 0; i < n; i++)
				memset(ref + runs[i].lo, 1, (size_t)(runs[i].hi - runs[i].lo));
		}
		}
		if (check(&s, ref, op) < 0)
			return 1;
	}
	range_set_free(&s);
	printf("ok %d\n", ops);
	return 0;
}
