/* Prints a counter with a token fixed at start, so a restart (new token) is told from a
 * restore (same token, counting on). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long interval_ms = argc > 1 ? atol(argv[1]) : 100;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	unsigned token = (unsigned)(now.tv_nsec ^ (getpid() << 16));
	for (unsigned long n = 0;; n++) {
		printf("token=%08x count=%lu\n", token, n);
		fflush(stdout);
		struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}
