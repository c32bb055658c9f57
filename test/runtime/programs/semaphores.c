/* SysV IPC in a pod: `semaphores sem|undo|shm`. sem: makes a set of two semaphores (values 3 and
 * 7) and prints "semid=N values=A,B"; each "down" line on stdin takes one from the first (without
 * SEM_UNDO) and prints the values again. undo: the same, but its first down uses SEM_UNDO (an
 * adjustment the kernel keeps for the process). shm: makes a SysV shared memory segment. It ticks
 * meanwhile. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static int id;

static void show(void)
{
	printf("semid=%d values=%d,%d\n", id, semctl(id, 0, GETVAL), semctl(id, 1, GETVAL));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "sem";
	if (strcmp(mode, "shm") == 0) {
		int shm = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		if (shm < 0) {
			perror("shmget");
			return 1;
		}
		printf("shmid=%d\n", shm);
	} else {
		id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
		unsigned short init[2] = {3, 7};
		union semun arg = {.array = init};
		if (id < 0 || semctl(id, 0, SETALL, arg) < 0) {
			perror("semaphores");
			return 1;
		}
		show();
	}
	fflush(stdout);
	int tick = 0, undo = strcmp(mode, "undo") == 0;
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
		if (strncmp(line, "down", 4) == 0) {
			struct sembuf op = {0, -1, (short)(undo ? SEM_UNDO : 0)};
			if (semop(id, &op, 1) < 0)
				printf("semop: %s\n", strerror(errno));
			show();
		}
	}
}
