/* Holds one file lock and says so: `locker FILE flock|posix|ofd [START LEN]` takes a write lock
 * of that kind (POSIX and OFD: on bytes START..START+LEN-1, LEN 0 to the end of the file) and
 * prints "locked KIND"; then it reads commands from stdin: "release" drops the lock (prints
 * "released"), "take" takes it again without waiting ("locked" or "busy"). It ticks meanwhile, so
 * a test sees it run. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static const char *kind;
static int fd;
static long start, len;

static int lock(int type)
{
	if (strcmp(kind, "flock") == 0)
		return flock(fd, (type == F_UNLCK ? LOCK_UN : LOCK_EX) | LOCK_NB);
	struct flock fl = {.l_type = (short)type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	return fcntl(fd, strcmp(kind, "ofd") == 0 ? F_OFD_SETLK : F_SETLK, &fl);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	kind = argv[2];
	start = argc > 3 ? atol(argv[3]) : 0;
	len = argc > 4 ? atol(argv[4]) : 0;
	fd = open(argv[1], O_RDWR | O_CREAT, 0644);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	if (lock(F_WRLCK) < 0) {
		printf("busy: %s\n", strerror(errno));
		return 1;
	}
	printf("locked %s\n", kind);
	fflush(stdout);
	int tick = 0;
	char line[64];
	for (;;) {
		struct pollfd p = {0, POLLIN, 0};
		int n = poll(&p, 1, 200);
		if (n < 0 && errno != EINTR)
			return 1;
		if (n <= 0) {
			printf("tick %d\n", ++tick);
			fflush(stdout);
			continue;
		}
		if (!fgets(line, sizeof line, stdin))
			return 0;
		if (strncmp(line, "release", 7) == 0)
			printf(lock(F_UNLCK) == 0 ? "released\n" : "cannot release\n");
		else if (strncmp(line, "take", 4) == 0)
			printf(lock(F_WRLCK) == 0 ? "locked again\n" : "busy again\n");
		fflush(stdout);
	}
}
