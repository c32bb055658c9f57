/*
 * Watches a directory and a file in it with inotify (through epoll) and prints every event:
 * "event wd=N MASKS name=NAME". Watch 1 is made and removed first, so the watches the program
 * keeps are 2 (the directory) and 3 (the file): a restore must give the same numbers back.
 * Usage: inotify-watch DIR FILE (FILE inside DIR; DIR/gap is created and removed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

static void die(const char *what)
{
	printf("error: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void print_event(const struct inotify_event *ev)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {{IN_ACCESS, "ACCESS"}, {IN_MODIFY, "MODIFY"}, {IN_ATTRIB, "ATTRIB"}, {IN_CLOSE_WRITE, "CLOSE_WRITE"},
		     {IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"}, {IN_OPEN, "OPEN"}, {IN_MOVED_FROM, "MOVED_FROM"},
		     {IN_MOVED_TO, "MOVED_TO"}, {IN_CREATE, "CREATE"}, {IN_DELETE, "DELETE"}, {IN_DELETE_SELF, "DELETE_SELF"},
		     {IN_IGNORED, "IGNORED"}, {IN_Q_OVERFLOW, "OVERFLOW"}};
	printf("event wd=%d", ev->wd);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (ev->mask & names[i].bit)
			printf(" %s", names[i].name);
	printf(" name=%s\n", ev->len ? ev->name : "");
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: inotify-watch DIR FILE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int in = inotify_init1(IN_CLOEXEC);
	if (in < 0)
		die("inotify_init1");
	char gap[4096];
	snprintf(gap, sizeof gap, "%s/gap", argv[1]);
	FILE *g = fopen(gap, "w");
	if (!g)
		die("create gap");
	fclose(g);
	int w1 = inotify_add_watch(in, gap, IN_ATTRIB);
	if (w1 < 0 || inotify_rm_watch(in, w1) < 0 || unlink(gap) < 0)
		die("gap watch");
	int wdir = inotify_add_watch(in, argv[1], IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB);
	int wfile = inotify_add_watch(in, argv[2], IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF);
	if (wdir < 0 || wfile < 0)
		die("inotify_add_watch");
	/* The removed gap watch's IN_IGNORED is read first: it is not part of what is checked. */
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	if (read(in, buf, sizeof buf) < 0)
		die("read IN_IGNORED");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ee = {.events = EPOLLIN, .data.u64 = 0x1234};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, in, &ee) < 0)
		die("epoll");
	printf("watching dir=%d file=%d\n", wdir, wfile);
	printf("ready\n");
	for (;;) {
		struct epoll_event got;
		int n = epoll_wait(ep, &got, 1, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != 1 || got.data.u64 != 0x1234)
			die("epoll_wait");
		ssize_t len = read(in, buf, sizeof buf);
		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0)
			die("read");
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			print_event(ev);
			p += sizeof *ev + ev->len;
		}
	}
}
