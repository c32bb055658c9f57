/* Keeps changing its memory while it runs: N MiB, K random pages rewritten every step (10 ms, or
 * STEP_US), each page holding a value derived from its index and how often it was written (kept
 * in a second array). Every 100 ms it checks every page against that array and prints "tick T ok"
 * (or "BAD n"): a live migration that lost a write shows as BAD. Every step it prints "step N",
 * N counted in memory: a copy that came back with memory older than its stop repeats a step.
 * Each check also goes deeper into its stack (64 KiB more per tick, up to 6 MiB): a restored
 * stack that cannot grow any more shows as a crash.
 * STACK 0 leaves the stack as it is (the incremental checkpoint benchmark: only the pages it
 * rewrites change).
 * For live migration's tests and benchmark: dirtier MIB PAGES_PER_STEP [STEP_US (10000)] [STACK (1)] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static uint64_t value_of(size_t page, uint32_t gen)
{
	return ((uint64_t)gen << 32 | page) * 0x9e3779b97f4a7c15ull;
}

/* Uses about depth * 4 KiB of stack. */
static uint64_t deep(unsigned depth)
{
	volatile uint8_t pad[4000];
	pad[0] = (uint8_t)depth;
	return depth ? deep(depth - 1) + pad[0] : 0;
}

static void fill(uint64_t *p, uint64_t v)
{
	for (size_t i = 0; i < WORDS; i++)
		p[i] = v;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	size_t per_tick = argc > 2 ? strtoul(argv[2], NULL, 10) : 16;
	long step_us = argc > 3 ? strtol(argv[3], NULL, 10) : 10000;
	int stack = argc > 4 ? atoi(argv[4]) : 1;
	size_t pages = (mib << 20) / PAGE;
	uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t *gen = calloc(pages, sizeof *gen);
	if (mem == MAP_FAILED || !gen)
		return 1;
	for (size_t i = 0; i < pages; i++)
		fill(mem + i * WORDS, value_of(i, 0));
	printf("ready %zu MiB\n", mib);
	fflush(stdout);
	uint64_t seed = 88172645463325252ull, tick = 0;
	static volatile uint64_t steps; /* in memory, not a register: the witness of staleness */
	for (;;) {
		for (long step = 0; step < 100000 / step_us; step++) {
			for (size_t k = 0; k < per_tick; k++) {
				seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
				size_t i = seed % pages;
				fill(mem + i * WORDS, value_of(i, ++gen[i]));
			}
			printf("step %llu\n", (unsigned long long)++steps);
			fflush(stdout);
			struct timespec ts = {0, step_us * 1000};
			nanosleep(&ts, NULL);
		}
		if (stack)
			deep((unsigned)(tick < 96 ? tick + 1 : 96) * 16);
		size_t bad = 0;
		for (size_t i = 0; i < pages; i++) {
			uint64_t v = value_of(i, gen[i]), *p = mem + i * WORDS;
			bad += p[0] != v || p[WORDS / 2] != v || p[WORDS - 1] != v;
		}
		if (bad)
			printf("tick %llu BAD %zu\n", (unsigned long long)++tick, bad);
		else
			printf("tick %llu ok\n", (unsigned long long)++tick);
		fflush(stdout);
	}
}
