/* Waits in read() on the terminal with a SIGWINCH handler, as full-screen programs do: with
 * "intr" the handler has no SA_RESTART (the read returns EINTR), with "restart" it has (the read
 * goes on after the handler). Prints "winch" from the handler, "EINTR" when the read was
 * interrupted and the bytes of each read, so a test sees what a resize (or a restore) did.
 * With "cancel" (no SA_RESTART), as less does, a key whose handling a resize interrupts is
 * dropped: each key read is handled for 30 ms, and one a SIGWINCH arrived during is printed as
 * "dropped" instead of "read". */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t winches;

static void on_winch(int sig)
{
	(void)sig;
	winches++;
	static const char msg[] = "winch\r\n";
	if (write(1, msg, sizeof msg - 1) < 0) {
		/* nothing to do in a handler */
	}
}

int main(int argc, char **argv)
{
	int restart = argc > 1 && strcmp(argv[1], "restart") == 0;
	int cancel = argc > 1 && strcmp(argv[1], "cancel") == 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_winch;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGWINCH, &sa, NULL) < 0) {
		perror("sigaction");
		return 1;
	}
	struct termios t;
	if (tcgetattr(0, &t) < 0) {
		perror("tcgetattr");
		return 1;
	}
	cfmakeraw(&t);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(0, TCSANOW, &t) < 0) {
		perror("tcsetattr");
		return 1;
	}
	for (unsigned long n = 1;; n++) {
		printf("ready %lu (%s)\r\n", n, restart ? "SA_RESTART" : cancel ? "cancel" : "no SA_RESTART");
		fflush(stdout);
		unsigned char buf[64];
		ssize_t got = read(0, buf, sizeof buf);
		if (got < 0 && errno == EINTR) {
			printf("EINTR after %d winch\r\n", (int)winches);
			continue;
		}
		if (got <= 0)
			return 0;
		int before = winches;
		if (cancel) {
			struct timespec t = {0, 30 * 1000000L};
			while (nanosleep(&t, &t) < 0 && errno == EINTR)
				;
		}
		printf("%s %zd:", cancel && winches != before ? "dropped" : "read", got);
		for (ssize_t i = 0; i < got; i++)
			printf(" %02x", buf[i]);
		printf("\r\n");
		if (buf[0] == 'q')
			return 0;
	}
}
