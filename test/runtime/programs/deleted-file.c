/* Holds a file open after deleting it; each line on stdin reads it back from the start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	char path[4096];
	snprintf(path, sizeof path, "%s/vos-deleted-XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0)
		return 1;
	const char *content = "secret content that only lives in an open file\n";
	if (write(fd, content, strlen(content)) < 0 || unlink(path) < 0)
		return 1;
	printf("deleted %s, holding fd %d\n", path, fd);
	fflush(stdout);
	char line[256];
	while (fgets(line, sizeof line, stdin)) {
		char buf[256] = {0};
		ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
		printf("read back %zd bytes: %s", n, buf);
		fflush(stdout);
	}
	return 0;
}
