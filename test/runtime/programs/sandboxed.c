/* A process in a seccomp sandbox, as man's formatters (preconv, tbl, nroff) run: no new
 * privileges, then a filter that refuses rt_sigqueueinfo (man-db's allows it neither), which is
 * how the runtime acknowledges a stop. Prints "sandboxed N" every 100 ms, N counting up, and
 * ends after MS milliseconds (0: never).
 * sandboxed MS */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rt_sigqueueinfo, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof code / sizeof code[0], code};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		perror("seccomp");
		return 1;
	}
	for (long n = 0; ms == 0 || n * 100 < ms; n++) {
		printf("sandboxed %ld\n", n);
		fflush(stdout);
		struct timespec t = {0, 100 * 1000000L};
		nanosleep(&t, NULL);
	}
	return 0;
}
