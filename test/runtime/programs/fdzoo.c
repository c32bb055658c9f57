/* One of each kind of open file the runtime restores; on each line of input it reports what
 * each one holds, so a test can compare before and after a restore. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *file = argc > 1 ? argv[1] : "/etc/passwd";
	int efd = eventfd(5, EFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec its = {{0, 50 * 1000 * 1000}, {0, 50 * 1000 * 1000}};
	timerfd_settime(tfd, 0, &its, NULL);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xe0e0};
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	ev.data.u64 = 0x7171;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	int dg[2];
	socketpair(AF_UNIX, SOCK_DGRAM, 0, dg);
	int pp[2];
	pipe(pp);
	int nul = open("/dev/null", O_WRONLY);
	int rnd = open("/dev/urandom", O_RDONLY);
	int reg = open(file, O_RDONLY);
	int dir = open("/", O_RDONLY | O_DIRECTORY);
	lseek(reg, 7, SEEK_SET);
	write(sv[0], "stream-in-flight", 16);
	send(dg[0], "dgram-one", 9, 0);
	send(dg[0], "dgram-two!", 10, 0);
	write(pp[1], "pipe-in-flight", 14);
	printf("ready\n");
	fflush(stdout);
	char line[64];
	int round = 0;
	while (fgets(line, sizeof line, stdin)) {
		round++;
		uint64_t v = 0;
		ssize_t n = read(efd, &v, 8);
		printf("eventfd: %lld\n", n == 8 ? (long long)v : -1);
		uint64_t exp = 0;
		usleep(120 * 1000);
		n = read(tfd, &exp, 8);
		printf("timerfd: %s\n", n == 8 && exp > 0 ? "expired" : "silent");
		struct epoll_event out[4];
		write(efd, (uint64_t[]){1}, 8);
		int ne = epoll_wait(ep, out, 4, 500);
		int saw_e = 0, saw_t = 0;
		for (int i = 0; i < ne; i++) {
			saw_e |= out[i].data.u64 == 0xe0e0;
			saw_t |= out[i].data.u64 == 0x7171;
		}
		read(efd, &v, 8);
		printf("epoll: eventfd=%d timerfd=%d\n", saw_e, saw_t);
		kill(getpid(), SIGUSR1);
		struct signalfd_siginfo si;
		n = read(sfd, &si, sizeof si);
		printf("signalfd: %d\n", n == sizeof si ? (int)si.ssi_signo : -1);
		char buf[64] = {0};
		if (round == 1) {
			n = read(sv[1], buf, sizeof buf - 1);
			printf("stream: %s\n", n > 0 ? buf : "(none)");
			memset(buf, 0, sizeof buf);
			n = recv(dg[1], buf, sizeof buf - 1, 0);
			printf("dgram: %s/%zd\n", buf, n);
			memset(buf, 0, sizeof buf);
			n = recv(dg[1], buf, sizeof buf - 1, 0);
			printf("dgram: %s/%zd\n", buf, n);
			memset(buf, 0, sizeof buf);
			n = read(pp[0], buf, sizeof buf - 1);
			printf("pipe: %s\n", n > 0 ? buf : "(none)");
			printf("file offset: %lld\n", (long long)lseek(reg, 0, SEEK_CUR));
		}
		printf("devnull: %zd urandom: %zd dir: %d\n", write(nul, "x", 1), read(rnd, buf, 8), fcntl(dir, F_GETFD) >= 0);
		printf("round %d done\n", round);
		fflush(stdout);
	}
	return 0;
}
