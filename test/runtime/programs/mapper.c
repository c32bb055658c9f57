/* Maps a file privately (read-only, the descriptor closed again: only the mapping holds it),
 * sums its content at start, then every 100 ms sums it again and prints "tick N ok" (or "tick N
 * BAD" when the content differs): a restored copy proves the mapped file's content came back. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t sum(const unsigned char *p, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: mapper FILE\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
		perror(argv[1]);
		return 1;
	}
	const unsigned char *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	close(fd);
	uint64_t want = sum(p, (size_t)st.st_size);
	printf("sum %016llx\n", (unsigned long long)want);
	for (unsigned long n = 0;; n++) {
		printf("tick %lu %s\n", n, sum(p, (size_t)st.st_size) == want ? "ok" : "BAD");
		fflush(stdout);
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
}
