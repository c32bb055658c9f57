/* Signal state a restore must keep: a handler with an interval timer driving it, an alternate
 * signal stack, and a signal left pending behind a blocked mask. Like top, it also installs a
 * handler for every real-time signal, the runtime's stop signal among them (which the program
 * must never see: "stray" names one it did). Each line of input reports it; "u" unblocks the
 * pending signal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms, usr2, on_altstack, stray;
static char altstack[64 * 1024];

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void on_stray(int sig)
{
	stray = sig;
}

static void on_usr2(int sig)
{
	(void)sig;
	stack_t ss;
	sigaltstack(NULL, &ss);
	on_altstack = (ss.ss_flags & SS_ONSTACK) != 0;
	usr2++;
}

int main(void)
{
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
	sigaltstack(&ss, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART | SA_ONSTACK;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_stray;
	sa.sa_flags = SA_RESTART;
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaction(sig, &sa, NULL);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, NULL);
	raise(SIGUSR2); /* stays pending */
	struct itimerval it = {{0, 20 * 1000}, {0, 20 * 1000}};
	setitimer(ITIMER_REAL, &it, NULL);
	printf("ready\n");
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		if (line[0] == 'u')
			sigprocmask(SIG_UNBLOCK, &block, NULL);
		sigset_t pending;
		sigpending(&pending);
		stack_t cur;
		sigaltstack(NULL, &cur);
		printf("alarms=%d usr2=%d pending-usr2=%d altstack=%s on-altstack=%d stray=%d\n", (int)alarms, (int)usr2,
		       sigismember(&pending, SIGUSR2), cur.ss_sp == altstack && cur.ss_size == sizeof altstack ? "kept" : "lost",
		       (int)on_altstack, (int)stray);
		fflush(stdout);
	}
	return 0;
}
