/*
 * vos-init: the first process of a vOS session.
 *
 *   vos-init -- PROGRAM [ARGS...]
 *
 * Starts PROGRAM as its child in a process group of its own that owns the terminal (so the
 * terminal's signals, Ctrl-C and friends, reach the program and not the init), reaps every
 * orphan that is re-parented to it (it is a child subreaper), forwards the signals that someone
 * sends it on purpose (kill, not the terminal) to the program, and exits with the program's
 * status once the program has ended.
 *
 * The runtime issue makes it pid 1 of the session's pod and a participant in checkpoints.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Signals a user or the agent may send the session; forwarded to the program. */
static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH};

static void die(const char *what)
{
	fprintf(stderr, "vos-init: %s: %s\n", what, strerror(errno));
	exit(127);
}

static void build_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
		sigaddset(set, forwarded[i]);
}

/* In the child: own process group, take the terminal if there is one, then become PROGRAM. */
static void exec_program(char **argv, const sigset_t *old_mask)
{
	if (setpgid(0, 0) != 0)
		die("setpgid");
	/* SIGTTOU is blocked here (the parent blocked everything it handles, and we add it), so a
	 * background group may take the terminal. */
	sigset_t ttou;
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	if (sigprocmask(SIG_BLOCK, &ttou, NULL) != 0)
		die("sigprocmask");
	if (isatty(STDIN_FILENO) && tcsetpgrp(STDIN_FILENO, getpid()) != 0)
		die("tcsetpgrp");
	if (sigprocmask(SIG_SETMASK, old_mask, NULL) != 0)
		die("sigprocmask");
	execvp(argv[0], argv);
	fprintf(stderr, "vos-init: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

/* Reaps every child that has ended; returns 1 once the program itself has, with its status. */
static int reap(pid_t program, int *program_status)
{
	int found = 0;
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid > 0) {
			if (pid == program) {
				*program_status = status;
				found = 1;
			}
			continue;
		}
		if (pid < 0 && errno == EINTR)
			continue;
		return found; /* 0: none left to reap now; -1/ECHILD: no children at all */
	}
}

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "--") != 0) {
		fprintf(stderr, "usage: vos-init -- PROGRAM [ARGS...]\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
		die("prctl(PR_SET_CHILD_SUBREAPER)");

	sigset_t handled, old_mask;
	build_set(&handled);
	if (sigprocmask(SIG_BLOCK, &handled, &old_mask) != 0)
		die("sigprocmask");

	pid_t program = fork();
	if (program < 0)
		die("fork");
	if (program == 0)
		exec_program(argv + 2, &old_mask);

	int status = 0;
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&handled, &info);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			die("sigwaitinfo");
		}
		if (sig == SIGCHLD) {
			if (reap(program, &status) == 1)
				break;
			continue;
		}
		/* Only what was sent on purpose; the terminal's signals went to the program already. */
		if (info.si_code == SI_USER || info.si_code == SI_QUEUE)
			kill(program, sig);
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
