/* Reads the clocks the vdso serves (clock_gettime, gettimeofday, time) in a loop and says
 * whether they move forward; after a restore through the vdso proxy they must still work. */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
	long long last = 0;
	for (unsigned long n = 0;; n++) {
		struct timespec ts;
		struct timeval tv;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		gettimeofday(&tv, NULL);
		time_t t = time(NULL);
		long long ms = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
		int ok = ms >= last && tv.tv_sec > 0 && t > 0 && (t - tv.tv_sec) <= 1 && (tv.tv_sec - t) <= 1;
		last = ms;
		printf("tick=%lu clocks=%s\n", n, ok ? "ok" : "BROKEN");
		fflush(stdout);
		usleep(50 * 1000);
	}
}
