/* Several threads, each counting in thread-local storage and in a shared array under a mutex;
 * the main thread reports them all. After a restore every thread must still count, and its
 * TLS must still be its own. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tick = PTHREAD_COND_INITIALIZER;
static unsigned long counts[THREADS];
static __thread unsigned long mine;
static __thread int my_index = -1;
static int tls_errors;

static void *worker(void *arg)
{
	my_index = (int)(long)arg;
	for (;;) {
		mine++;
		pthread_mutex_lock(&lock);
		counts[my_index]++;
		if (counts[my_index] != mine || my_index != (int)(long)arg)
			tls_errors++;
		pthread_cond_signal(&tick);
		pthread_mutex_unlock(&lock);
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(void)
{
	pthread_t t[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (;;) {
		pthread_mutex_lock(&lock);
		pthread_cond_wait(&tick, &lock);
		char line[256];
		int n = snprintf(line, sizeof line, "threads:");
		for (int i = 0; i < THREADS; i++)
			n += snprintf(line + n, sizeof line - (size_t)n, " %lu", counts[i]);
		snprintf(line + n, sizeof line - (size_t)n, " tls-errors=%d\n", tls_errors);
		pthread_mutex_unlock(&lock);
		fputs(line, stdout);
		fflush(stdout);
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
