/* Opens a temporary file (argv[1]), writes to it and keeps it open, like a compiler's /tmp/cc*.s
 * or vim's swap file. Each line on stdin: "d" deletes the file (the program goes on with its
 * descriptor), anything else reads the file back through the descriptor. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0640);
	if (fd < 0)
		return 1;
	const char *content = "kept content of a temporary file\n";
	if (write(fd, content, strlen(content)) < 0)
		return 1;
	printf("opened %s\n", argv[1]);
	fflush(stdout);
	char line[256];
	while (fgets(line, sizeof line, stdin)) {
		if (line[0] == 'd') {
			printf(unlink(argv[1]) == 0 ? "deleted\n" : "cannot delete\n");
		} else {
			char buf[256] = {0};
			ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
			printf("read back %zd bytes: %s", n, buf);
		}
		fflush(stdout);
	}
	return 0;
}
