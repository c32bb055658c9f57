/* Touches N MiB of memory with a pattern, then waits; each line on stdin checks the pattern.
 * For the benchmarks: a process of a known size. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	size_t len = mib << 20;
	uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < len / 8; i++)
		p[i] = i * 2654435761u;
	printf("ready %zu MiB\n", mib);
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		size_t bad = 0;
		for (size_t i = 0; i < len / 8; i++)
			bad += p[i] != i * 2654435761u;
		printf("check %s\n", bad ? "FAILED" : "ok");
		fflush(stdout);
	}
	return 0;
}
