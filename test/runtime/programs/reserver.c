/* A large reservation, almost all of it never touched, as a JVM's heap, V8's cage or Go's arenas:
 * 4 GiB of private anonymous memory (MAP_NORESERVE) with one word written every 64 MiB. Tracking
 * written pages must not turn the untouched rest into pages every image reads (a write-protected
 * hole leaves a uffd-wp marker, which the kernel's scan calls swapped).
 * Prints "ready", then reads lines:
 *   touch  writes one more word, in the middle of a hole ("touched")
 *   check  "check ok", or "check BAD at OFFSET": every written word as written, the middle of
 *          every hole zero (or, after touch, its word)
 * reserver */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define SIZE (4ull << 30)
#define STEP (64ull << 20)

static uint64_t word(uint64_t offset)
{
	return (offset + 1) * 0x9e3779b97f4a7c15ull;
}

int main(void)
{
	uint8_t *mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	for (uint64_t off = 0; off < SIZE; off += STEP)
		*(uint64_t *)(mem + off) = word(off);
	const uint64_t extra = 5 * STEP + STEP / 2; /* the page touch writes */
	int touched = 0;
	printf("ready\n");
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		if (strncmp(line, "touch", 5) == 0) {
			*(uint64_t *)(mem + extra) = word(extra);
			touched = 1;
			printf("touched\n");
		} else if (strncmp(line, "check", 5) == 0) {
			uint64_t bad = UINT64_MAX;
			for (uint64_t off = 0; off < SIZE && bad == UINT64_MAX; off += STEP / 2) {
				uint64_t want = off % STEP == 0 || (touched && off == extra) ? word(off) : 0;
				if (*(uint64_t *)(mem + off) != want)
					bad = off;
			}
			if (bad == UINT64_MAX)
				printf("check ok\n");
			else
				printf("check BAD at %llu\n", (unsigned long long)bad);
		}
		fflush(stdout);
	}
	return 0;
}
