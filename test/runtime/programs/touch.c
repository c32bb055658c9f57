/* Baseline for the restore benchmark: maps N MiB of fresh memory and writes it, the way a
 * restore must (by touching one byte per page, or filling every byte); prints the time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	int fill = argc > 2 && strcmp(argv[2], "fill") == 0;
	size_t len = mib << 20;
	double t0 = now();
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	if (fill)
		memset(p, 0x5a, len);
	else
		for (size_t i = 0; i < len; i += 4096)
			p[i] = 1;
	printf("%.6f\n", now() - t0);
	return 0;
}
