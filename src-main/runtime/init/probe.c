/*
 * `vos-init probe`: whether this machine lets a pod be made, tried for real as launch does it,
 * in a child that is thrown away. Prints one line each, and exits 0 (what is missing is an
 * answer, not a failure):
 *
 *   userns ok | userns no ERRNO MESSAGE    user, pid, mount and IPC namespaces, the user's own
 *                                          ids mapped, a pid 1 in them mounting its own /proc
 *   timens ok | timens no ERRNO MESSAGE    a time namespace inside those (restores keep the clocks)
 *   dirty ok  | dirty no MESSAGE           userfaultfd asynchronous write-protect and PAGEMAP_SCAN
 *                                          (live moves, incremental images)
 *
 * ERRNO is the failing call's errno (0 when it is not one call's); the agent explains it with the
 * machine's settings (src-main/agent/runtime/host-probe.ts).
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/util.h"
#include "../dump/dump.h"
#include "pod.h"

/* The child's answer to its parent (over a pipe). */
struct probe_answer {
	int user_errno; /* -1: not tried; 0: ok */
	int time_errno;
	char user_why[256];
	char time_why[256];
};

/* In the child's new namespaces: a pid 1 that makes its mounts its own and mounts /proc, as pod
 * init does (pod_init_become_leader), then makes a time namespace, as a restore's does. Fills
 * the answer's user and time parts. */
static void try_pod_init(struct probe_answer *a)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		a->user_errno = errno;
		snprintf(a->user_why, sizeof a->user_why, "pipe: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		a->user_errno = errno;
		snprintf(a->user_why, sizeof a->user_why, "cannot start a process in a new pid namespace: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		close(p[0]);
		if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0 ||
		    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
			a->user_errno = errno;
			snprintf(a->user_why, sizeof a->user_why, "cannot mount the pod's own /proc in its namespaces: %s",
				 strerror(errno));
		} else {
			a->user_errno = 0;
			/* pod_enter_time_namespace has its own test hook (VOS_TEST_NO_TIME_NAMESPACE). */
			errno = 0;
			if (pod_enter_time_namespace(0, 0, a->time_why, sizeof a->time_why) < 0)
				a->time_errno = errno ? errno : EINVAL;
			else
				a->time_errno = 0;
		}
		if (write_full(p[1], a, sizeof *a) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (read_full(p[0], a, sizeof *a) < 0) {
		a->user_errno = EIO;
		snprintf(a->user_why, sizeof a->user_why, "a process in a new pid namespace ended without an answer");
		a->time_errno = -1;
	}
	close(p[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void probe_child(struct probe_answer *a)
{
	a->time_errno = -1;
	/* Test hook: the unshare below fails as where the system refuses unprivileged user
	 * namespaces. Safe in a shipped build: it acts in this probe's throw-away child only (the
	 * agent's environment, set by the user who starts it), and its only effect is that the agent
	 * starts sessions without a pod, which every such system gets anyway. */
	if (getenv("VOS_TEST_PROBE_NO_USERNS")) {
		a->user_errno = EPERM;
		snprintf(a->user_why, sizeof a->user_why, "unshare: %s (VOS_TEST_PROBE_NO_USERNS)", strerror(EPERM));
		return;
	}
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC) < 0) {
		a->user_errno = errno;
		snprintf(a->user_why, sizeof a->user_why, "unshare: %s", strerror(errno));
		return;
	}
	char map[64];
	snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if (write_text_to("/proc/self/setgroups", "deny") < 0 || write_text_to("/proc/self/uid_map", map) < 0) {
		a->user_errno = errno;
		snprintf(a->user_why, sizeof a->user_why, "cannot map the user into a user namespace: %s", strerror(errno));
		return;
	}
	snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if (write_text_to("/proc/self/gid_map", map) < 0) {
		a->user_errno = errno;
		snprintf(a->user_why, sizeof a->user_why, "cannot map the group into a user namespace: %s", strerror(errno));
		return;
	}
	try_pod_init(a);
}

int probe_main(int argc, char **argv)
{
	(void)argv;
	if (argc != 0) {
		fprintf(stderr, "usage: vos-init probe\n");
		return 2;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		struct probe_answer a;
		memset(&a, 0, sizeof a);
		probe_child(&a);
		if (write_full(p[1], &a, sizeof a) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	struct probe_answer a;
	memset(&a, 0, sizeof a);
	int got = read_full(p[0], &a, sizeof a);
	close(p[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got < 0) {
		a.user_errno = EIO;
		snprintf(a.user_why, sizeof a.user_why, "the probe's child ended without an answer (status %d)", status);
		a.time_errno = -1;
	}
	a.user_why[sizeof a.user_why - 1] = 0;
	a.time_why[sizeof a.time_why - 1] = 0;
	if (a.user_errno == 0)
		printf("userns ok\n");
	else
		printf("userns no %d %s\n", a.user_errno, a.user_why);
	if (a.time_errno == 0)
		printf("timens ok\n");
	else if (a.time_errno < 0)
		printf("timens no 0 not tried: no user namespace\n");
	else
		printf("timens no %d %s\n", a.time_errno, a.time_why);
	struct err e;
	if (dirty_probe_full(&e) == 0)
		printf("dirty ok\n");
	else
		printf("dirty no %s\n", e.msg);
	return fflush(stdout) == 0 ? 0 : 1;
}
