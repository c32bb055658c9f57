/* From outside a pod: can another process take this lock now? `lockcheck FILE
 * flock|posix|ofd START LEN [hold]` tries a write lock of that kind without waiting and prints
 * "free" (it got it) or "busy"; with "hold" it keeps a lock it got until stdin closes. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	int fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	int rc;
	if (strcmp(argv[2], "flock") == 0) {
		rc = flock(fd, LOCK_EX | LOCK_NB);
	} else {
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = atol(argv[3]), .l_len = atol(argv[4])};
		rc = fcntl(fd, strcmp(argv[2], "ofd") == 0 ? F_OFD_SETLK : F_SETLK, &fl);
	}
	printf(rc == 0 ? "free\n" : "busy\n");
	fflush(stdout);
	if (rc == 0 && argc > 5 && strcmp(argv[5], "hold") == 0) {
		char c;
		while (read(0, &c, 1) > 0)
			;
	}
	return rc == 0 ? 0 : 1;
}
