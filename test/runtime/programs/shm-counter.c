/* Two processes share one anonymous shared page: the child counts in it, the parent prints it.
 * After a restore the page must still be one page for both (the parent sees the child count). */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
	volatile uint64_t *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return 1;
	if (fork() == 0) {
		for (;;) {
			shared[0]++;
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	for (;;) {
		printf("shared=%llu\n", (unsigned long long)shared[0]);
		fflush(stdout);
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
