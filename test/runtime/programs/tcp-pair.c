/*
 * Loopback TCP connections whose two ends are both in this program, with bytes in flight in both
 * directions (written, not read) when it waits to be checkpointed.
 *
 *   tcp-pair both     two connections: one between two processes over IPv4 (parent: the accepted
 *                     end, its listener still open; child: the connecting end) and one inside
 *                     this process over IPv6 (listener closed; the connecting end O_NONBLOCK with
 *                     TCP_NODELAY, and shut down for writing: half-closed), whose ends a third
 *                     process holds too
 *   tcp-pair single   only the second one, over IPv4
 *   tcp-pair full     the connecting end writes until its send queue is full (bytes that have
 *                     not reached the other end); prints "full done" after "go"
 *
 * Prints "ready fork=P single=A,B" (local ports) once every byte sent is in its receiver's queue,
 * then waits for a line "go" on stdin. Then each end reads the bytes in flight (they must be
 * exactly what was sent, once, and before the new message the other end writes after "go"), and
 * prints "single pair ok ports=A,B", "fork pair ok ports=P listener=P", "all ok" (the ports as
 * they are now), or "pair BAD: why".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define C2S_LEN 30000 /* bytes in flight from the connecting end */
#define S2C_LEN 777   /* and from the accepted end */

static void bad(const char *why)
{
	printf("pair BAD: %s (%s)\n", why, strerror(errno));
	fflush(stdout);
	exit(1);
}

static void pattern(char *buf, size_t len, char tag)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(tag + (char)(i % 23));
	buf[len - 1] = '\n';
}

/* Reads exactly len bytes (waiting for them, also on a nonblocking socket); 0 at EOF before. */
static int read_exact(int fd, char *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 10000) <= 0)
			bad("timed out reading");
		ssize_t n = read(fd, buf + off, len - off);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			bad("read");
		if (n == 0)
			return 0;
		off += (size_t)n;
	}
	return 1;
}

static void expect(int fd, const char *want, size_t len, const char *what)
{
	char *got = malloc(len + 1);
	if (!got || !read_exact(fd, got, len))
		bad(what);
	if (memcmp(got, want, len) != 0) {
		printf("pair BAD: %s differs\n", what);
		fflush(stdout);
		exit(1);
	}
	free(got);
}

static void write_all(int fd, const char *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, 1000);
			continue;
		}
		if (n <= 0)
			bad("write");
		off += (size_t)n;
	}
}

static void wait_queued(int fd, int want)
{
	for (int i = 0; i < 1000; i++) {
		int n = 0;
		if (ioctl(fd, FIONREAD, &n) < 0)
			bad("FIONREAD");
		if (n >= want)
			return;
		usleep(5000);
	}
	bad("the bytes sent never arrived");
}

static int local_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof a;
	if (getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		bad("getsockname");
	return ntohs(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port : ((struct sockaddr_in6 *)&a)->sin6_port);
}

static void wait_go(void)
{
	char line[64];
	while (fgets(line, sizeof line, stdin))
		if (strncmp(line, "go", 2) == 0)
			return;
	bad("no go");
}

/* A listener on the loopback of family v6 or 4, port chosen by the kernel; its address in *a. */
static int loopback_listener(int v6, struct sockaddr_storage *a, socklen_t *alen)
{
	memset(a, 0, sizeof *a);
	if (v6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)a;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		*alen = sizeof *in6;
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)a;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*alen = sizeof *in;
	}
	int l = socket(a->ss_family, SOCK_STREAM, 0);
	int on = 1;
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 || bind(l, (struct sockaddr *)a, *alen) < 0 ||
	    listen(l, 4) < 0 || getsockname(l, (struct sockaddr *)a, alen) < 0)
		bad("listen");
	return l;
}

static char c2s[C2S_LEN], s2c[S2C_LEN];
static const char *new_c2s = "new from the client\n", *new_s2c = "new from the server\n";

/* The pair between two processes: the child connects and is done when it returns; the parent
 * keeps the accepted end *s and the listener *l; *go: the pipe that lets the child on. */
static pid_t fork_pair(int v6, int *l, int *s, int *go)
{
	struct sockaddr_storage a;
	socklen_t alen;
	*l = loopback_listener(v6, &a, &alen);
	int p[2];
	if (pipe(p) < 0)
		bad("pipe");
	pid_t child = fork();
	if (child < 0)
		bad("fork");
	if (child == 0) {
		close(p[1]);
		int c = socket(a.ss_family, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, alen) < 0)
			bad("connect");
		write_all(c, c2s, sizeof c2s);
		wait_queued(c, S2C_LEN);
		char g;
		if (read(p[0], &g, 1) != 1)
			bad("child: no go");
		write_all(c, new_c2s, strlen(new_c2s)); /* after the bytes in flight, never before */
		expect(c, s2c, sizeof s2c, "the bytes in flight to the client");
		expect(c, new_s2c, strlen(new_s2c), "the new message to the client");
		printf("child ok\n");
		exit(0);
	}
	close(p[0]);
	*go = p[1];
	*s = accept(*l, NULL, NULL);
	if (*s < 0)
		bad("accept");
	write_all(*s, s2c, sizeof s2c);
	wait_queued(*s, C2S_LEN);
	return child;
}

static void fork_check(pid_t child, int l, int s, int go)
{
	if (write(go, "g", 1) != 1)
		bad("go");
	write_all(s, new_s2c, strlen(new_s2c));
	expect(s, c2s, sizeof c2s, "the bytes in flight to the server");
	expect(s, new_c2s, strlen(new_c2s), "the new message to the server");
	int st = 0;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bad("the child failed");
	printf("fork pair ok ports=%d listener=%d\n", local_port(s), local_port(l));
}

/* The pair inside this process: the listener closed, the connecting end c O_NONBLOCK with
 * TCP_NODELAY and shut down for writing. */
static void single_pair(int v6, int *s, int *c)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int l = loopback_listener(v6, &a, &alen);
	*c = socket(a.ss_family, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, (struct sockaddr *)&a, alen) < 0)
		bad("connect");
	*s = accept(l, NULL, NULL);
	if (*s < 0)
		bad("accept");
	close(l);
	int on = 1;
	if (setsockopt(*c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0 || fcntl(*c, F_SETFL, O_NONBLOCK) < 0)
		bad("options");
	write_all(*c, c2s, sizeof c2s);
	write_all(*s, s2c, sizeof s2c);
	if (shutdown(*c, SHUT_WR) < 0)
		bad("shutdown");
	wait_queued(*s, C2S_LEN);
	wait_queued(*c, S2C_LEN);
}

static void single_check(int s, int c)
{
	int nodelay = 0;
	socklen_t ol = sizeof nodelay;
	if (getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &nodelay, &ol) < 0 || !nodelay || !(fcntl(c, F_GETFL) & O_NONBLOCK))
		bad("the options are not kept");
	write_all(s, new_s2c, strlen(new_s2c));
	expect(s, c2s, sizeof c2s, "the bytes in flight to the server");
	char end;
	if (read_exact(s, &end, 1) != 0)
		bad("the server end does not see the client's shutdown");
	expect(c, s2c, sizeof s2c, "the bytes in flight to the client");
	expect(c, new_s2c, strlen(new_s2c), "the new message to the client");
	printf("single pair ok ports=%d,%d\n", local_port(s), local_port(c));
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	setvbuf(stdout, NULL, _IONBF, 0);
	pattern(c2s, sizeof c2s, 'a');
	pattern(s2c, sizeof s2c, 'A');
	if (strcmp(argv[1], "full") == 0) {
		struct sockaddr_storage a;
		socklen_t alen;
		int l = loopback_listener(0, &a, &alen);
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, alen) < 0)
			bad("connect");
		int s = accept(l, NULL, NULL);
		if (s < 0 || fcntl(c, F_SETFL, O_NONBLOCK) < 0)
			bad("accept");
		static char lots[1 << 16];
		while (write(c, lots, sizeof lots) > 0)
			;
		printf("ready full\n");
		wait_go();
		printf("full done\n");
		return 0;
	}
	int both = strcmp(argv[1], "both") == 0;
	int fl = -1, fs = -1, go = -1, ss = -1, sc = -1;
	pid_t child = 0;
	if (both)
		child = fork_pair(0, &fl, &fs, &go);
	single_pair(both, &ss, &sc);
	/* both: a process that holds copies of the second connection's ends too (an end shared by
	 * two processes) until the check is done. */
	int hold[2] = {-1, -1};
	pid_t holder = 0;
	if (both) {
		if (pipe(hold) < 0 || (holder = fork()) < 0)
			bad("holder");
		if (holder == 0) {
			close(hold[1]);
			char x;
			while (read(hold[0], &x, 1) > 0)
				;
			exit(0);
		}
		close(hold[0]);
	}
	if (both)
		printf("ready fork=%d single=%d,%d\n", local_port(fs), local_port(ss), local_port(sc));
	else
		printf("ready single=%d,%d\n", local_port(ss), local_port(sc));
	wait_go();
	single_check(ss, sc);
	if (both) {
		fork_check(child, fl, fs, go);
		close(hold[1]);
		int st = 0;
		if (waitpid(holder, &st, 0) != holder || !WIFEXITED(st))
			bad("the holder failed");
	}
	printf("all ok\n");
	return 0;
}
