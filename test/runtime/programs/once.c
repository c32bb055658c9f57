/*
 * once TRIGGER OUT CODE: waits (printing "waiting") until the file TRIGGER exists, then appends
 * one line "ran PID" to OUT and exits with CODE. Checkpointed while waiting and restored once
 * TRIGGER exists, it runs its side effect right after the restore and ends: a restore's result
 * must then be exact (it ran, and ended with CODE).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: once TRIGGER OUT CODE\n");
		return 2;
	}
	printf("waiting\n");
	fflush(stdout);
	struct timespec tick = {0, 2 * 1000 * 1000};
	while (access(argv[1], F_OK) < 0)
		nanosleep(&tick, NULL);
	int fd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror("open");
		return 2;
	}
	char line[64];
	int n = snprintf(line, sizeof line, "ran %d\n", (int)getpid());
	if (write(fd, line, (size_t)n) != n) {
		perror("write");
		return 2;
	}
	close(fd);
	return atoi(argv[3]);
}
