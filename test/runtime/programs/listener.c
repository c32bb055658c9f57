/*
 * A server that listens on a Unix socket path and on a TCP port of 127.0.0.1 (chosen by the
 * kernel), and answers each connection with "answer token=T via=unix|tcp n=N" (T: a random token
 * fixed at start, so a restarted program would show another one).
 *
 *   listener PATH          serve both at once
 *   listener PATH queued   a child connects to PATH and waits for its answer ("child queued"); the
 *                          parent accepts nothing on PATH until a line "go" comes on stdin, so
 *                          that connection waits in the listener's queue (across a checkpoint)
 *
 * Prints "ready token=T port=P" once both listen.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int unix_listener(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof a.sun_path)
		die("path too long");
	strcpy(a.sun_path, path);
	unlink(path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0)
		die("unix listener");
	return s;
}

static int tcp_listener(unsigned *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int on = 1;
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
	    listen(s, 32) < 0)
		die("tcp listener");
	socklen_t l = sizeof a;
	if (getsockname(s, (struct sockaddr *)&a, &l) < 0)
		die("getsockname");
	*port = ntohs(a.sin_port);
	return s;
}

static void queued_child(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	strcpy(a.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0)
		die("child connect");
	printf("child queued\n");
	fflush(stdout);
	char buf[256];
	ssize_t n = read(s, buf, sizeof buf - 1);
	if (n <= 0) {
		printf("child got nothing (%s)\n", n < 0 ? strerror(errno) : "end of stream");
	} else {
		buf[n] = 0;
		printf("child got %s", buf);
	}
	fflush(stdout);
	_exit(0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: listener PATH [queued]\n");
		return 2;
	}
	int queued = argc > 2 && strcmp(argv[2], "queued") == 0;
	unsigned char r[6];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		die("getrandom");
	char token[16];
	snprintf(token, sizeof token, "%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN); /* as servers do: a client that left (a restore's probe) is no reason to end */
	int u = unix_listener(argv[1]);
	unsigned port;
	int t = tcp_listener(&port);
	printf("ready token=%s port=%u\n", token, port);
	if (queued && fork() == 0)
		queued_child(argv[1]);
	int serve_unix = !queued;
	unsigned n = 0;
	for (;;) {
		struct pollfd p[3] = {{t, POLLIN, 0}, {serve_unix ? u : -1, POLLIN, 0}, {serve_unix ? -1 : 0, POLLIN, 0}};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p[2].revents & POLLIN) {
			char line[64];
			ssize_t k = read(0, line, sizeof line - 1);
			if (k > 0 && strncmp(line, "go", 2) == 0) {
				serve_unix = 1;
				printf("accepting on %s\n", argv[1]);
			}
		}
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int c = accept4(i == 0 ? t : u, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0) {
				if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
					continue;
				die("accept");
			}
			char answer[128];
			int len = snprintf(answer, sizeof answer, "answer token=%s via=%s n=%u\n", token, i == 0 ? "tcp" : "unix", ++n);
			if (write(c, answer, (size_t)len) != len)
				perror("write");
			close(c);
			printf("answered %u via %s\n", n, i == 0 ? "tcp" : "unix");
		}
	}
}
