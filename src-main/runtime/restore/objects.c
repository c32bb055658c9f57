/*
 * The pod's open file descriptions, recreated once in pod init, before any process: each at a
 * high fd number that every restoring process inherits and then places at its own numbers. A
 * description shared by several processes (after fork, dup, or passing) is shared again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <termios.h>
#include <unistd.h>

#include "../common/buf.h"
#include "restore.h"
#include "vos-image.h"

/* Keeps fd at or above `base`, close-on-exec off (the restoring processes never exec). */
int high_fd(int fd, int base)
{
	if (fd < 0)
		return -1;
	int h = fcntl(fd, F_DUPFD, base);
	int e = errno;
	close(fd);
	errno = e;
	return h;
}

static int object_base(const struct image *img)
{
	int max = 2;
	for (int i = 0; i < img->nprocs; i++)
		for (uint32_t k = 0; k < img->procs[i].nfds; k++)
			if (img->procs[i].fds[k].fd > max)
				max = img->procs[i].fds[k].fd;
	return max + 64;
}

void *load_data(struct restore_ctx *c, const struct img_object *o, size_t *len, struct err *e)
{
	void *payload;
	if (ir_load(c->img.fd, &o->data, &payload, e) < 0)
		return NULL;
	*len = (size_t)o->data.length - 8;
	memmove(payload, (char *)payload + 8, *len);
	return payload;
}

/* Reopens an fd with other open flags (a new description of the same file). */
static int reopen(int fd, int flags)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	return open(path, flags | O_CLOEXEC);
}

int set_status_flags(int fd, uint32_t flags)
{
	int keep = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME;
	return fcntl(fd, F_SETFL, (int)flags & keep);
}

int open_file_object(const struct img_object *o, struct err *e)
{
	int flags = (int)o->flags & ~(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY | O_CLOEXEC);
	int fd = open(o->path, flags | O_NOCTTY);
	if (fd < 0) {
		fail(e, "cannot reopen %s: %s", o->path, strerror(errno));
		return err_path(e, o->path);
	}
	if (o->pos && lseek(fd, (off_t)o->pos, SEEK_SET) < 0 && errno != ESPIPE) {
		close(fd);
		fail(e, "cannot seek in %s: %s", o->path, strerror(errno));
		return err_path(e, o->path);
	}
	return fd;
}

/* Whether path is under /proc/PID/ of a process of the image: a program that opened its own
 * /proc/self/fd (Java's process launcher does, between fork and exec, to close what it must). */
static int in_image_proc(const struct image *img, const char *path)
{
	if (strncmp(path, "/proc/", 6) != 0 || path[6] < '1' || path[6] > '9')
		return 0;
	char *end;
	long pid = strtol(path + 6, &end, 10);
	if (*end != '/' && *end != 0)
		return 0;
	for (int i = 0; i < img->nprocs; i++)
		if (img->procs[i].pid == pid)
			return 1;
	return 0;
}

/* A file deleted while open: a new unnamed file with its content, where the original lived. */
static int recreate_deleted(struct restore_ctx *c, const struct img_object *o, struct err *e)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", o->path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		fail(e, "cannot recreate the deleted file %s: %s", o->path, strerror(errno));
		return err_path(e, o->path);
	}
	if (o->has_data) {
		size_t len;
		void *data = load_data(c, o, &len, e);
		if (!data) {
			close(fd);
			return -1;
		}
		int rc = write_full(fd, data, len);
		free(data);
		if (rc < 0) {
			close(fd);
			fail(e, "cannot write the content of %s: %s", o->path, strerror(errno));
			return err_path(e, o->path);
		}
	}
	int mode = (int)o->flags & O_ACCMODE;
	int final = mode == O_RDWR ? fd : reopen(fd, mode | ((int)o->flags & O_APPEND));
	if (final != fd)
		close(fd);
	if (final < 0) {
		fail(e, "cannot reopen the recreated %s: %s", o->path, strerror(errno));
		return err_path(e, o->path);
	}
	set_status_flags(final, o->flags);
	lseek(final, (off_t)o->pos, SEEK_SET);
	return final;
}

static int session_tty(struct restore_ctx *c, const struct img_object *o, struct err *e)
{
	int fd = reopen(c->tty_fd, ((int)o->flags & (O_ACCMODE | O_NONBLOCK | O_APPEND)) | O_NOCTTY);
	if (fd < 0)
		return fail(e, "cannot open the new terminal: %s", strerror(errno));
	return fd;
}

/* The two ends of every pipe, by pipe id; each object then takes a description of its end. */
struct pipe_end {
	uint64_t id;
	int fds[2];
	int used[2];
};

static int pipe_object(struct restore_ctx *c, const struct img_object *o, struct pipe_end **pipes, int *npipes,
		       struct err *e)
{
	struct pipe_end *pe = NULL;
	for (int i = 0; i < *npipes; i++)
		if ((*pipes)[i].id == o->p[0])
			pe = &(*pipes)[i];
	if (!pe) {
		*pipes = xrealloc(*pipes, (size_t)(*npipes + 1) * sizeof **pipes);
		pe = &(*pipes)[(*npipes)++];
		memset(pe, 0, sizeof *pe);
		pe->id = o->p[0];
		if (pipe2(pe->fds, O_CLOEXEC) < 0)
			return fail(e, "pipe: %s", strerror(errno));
		if (o->p[2] && o->p[2] != 65536)
			fcntl(pe->fds[1], F_SETPIPE_SZ, (int)o->p[2]); /* may be refused: then the default */
	}
	int end = o->p[1] ? 1 : 0;
	if (o->has_data && end == 0) {
		size_t len;
		void *data = load_data(c, o, &len, e);
		if (!data)
			return -1;
		int flags = fcntl(pe->fds[1], F_GETFL);
		fcntl(pe->fds[1], F_SETFL, flags | O_NONBLOCK);
		int rc = write_full(pe->fds[1], data, len);
		fcntl(pe->fds[1], F_SETFL, flags);
		free(data);
		if (rc < 0)
			return fail(e, "cannot refill a pipe: %s", strerror(errno));
	}
	int fd;
	if (!pe->used[end]) {
		pe->used[end] = 1;
		fd = dup(pe->fds[end]);
	} else {
		fd = reopen(pe->fds[end], end ? O_WRONLY : O_RDONLY);
	}
	if (fd < 0)
		return fail(e, "cannot open a pipe end: %s", strerror(errno));
	set_status_flags(fd, o->flags);
	return fd;
}

static int refill_socket(struct restore_ctx *c, const struct img_object *o, int sender, struct err *e)
{
	if (!o->has_data)
		return 0;
	size_t len;
	void *data = load_data(c, o, &len, e);
	if (!data)
		return -1;
	struct reader r;
	reader_init(&r, data, len);
	if (!o->messages) {
		send(sender, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	} else {
		while (reader_left(&r) > 0) {
			uint32_t n = rd_u32(&r);
			const void *m = rd_raw(&r, n);
			if (r.bad)
				break;
			send(sender, m, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		}
	}
	free(data);
	return 0;
}

static int socketpair_objects(struct restore_ctx *c, int base, struct err *e)
{
	struct image *img = &c->img;
	for (int i = 0; i < img->nobjects; i++) {
		struct img_object *o = &img->objects[i];
		if (o->kind != VOS_OBJ_SOCKETPAIR || c->object_fd[i] >= 0)
			continue;
		int type = (int)o->p[2];
		int sv[2];
		if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0)
			return fail(e, "socketpair: %s", strerror(errno));
		int peer = -1;
		if (o->p[3] != ~0ull)
			for (int k = 0; k < img->nobjects; k++)
				if (img->objects[k].id == (uint32_t)o->p[3])
					peer = k;
		if (refill_socket(c, o, sv[1], e) < 0)
			return -1;
		if (peer >= 0 && refill_socket(c, &img->objects[peer], sv[0], e) < 0)
			return -1;
		set_status_flags(sv[0], o->flags);
		c->object_fd[i] = high_fd(sv[0], base);
		if (peer >= 0) {
			set_status_flags(sv[1], img->objects[peer].flags);
			c->object_fd[peer] = high_fd(sv[1], base);
		} else {
			close(sv[1]); /* its peer had gone: the program sees the end of the stream */
		}
	}
	return 0;
}

static int closed_socket(const struct img_object *o, struct err *e)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return fail(e, "socketpair: %s", strerror(errno));
	close(sv[1]);
	set_status_flags(sv[0], o->flags);
	return sv[0];
}

/* Where a listener listened, in words: "/path", "@6162", "127.0.0.1:8000", "[::1]:8000". */
static void listen_words(const struct img_object *o, char *out, size_t size)
{
	if (o->p[1] == AF_INET)
		snprintf(out, size, "%.200s:%u", o->path, (unsigned)(o->p[3] & 0xffff));
	else if (o->p[1] == AF_INET6)
		snprintf(out, size, "[%.200s]:%u", o->path, (unsigned)(o->p[3] & 0xffff));
	else
		snprintf(out, size, "%.400s", o->path);
}

static int hex_digit(char ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The Unix address of a listener: its path, or its abstract name from "@hex". Its length, or -1. */
static int unix_address(const struct img_object *o, struct sockaddr_un *a, socklen_t *len)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	size_t n = strnlen(o->path, sizeof o->path);
	if (o->path[0] == '/') {
		if (n >= sizeof a->sun_path)
			return -1;
		memcpy(a->sun_path, o->path, n);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
	if (o->path[0] != '@' || (n - 1) % 2 != 0 || (n - 1) / 2 + 1 > sizeof a->sun_path)
		return -1;
	size_t k = 0;
	for (size_t i = 1; i + 1 < n; i += 2) {
		int hi = hex_digit(o->path[i]), lo = hex_digit(o->path[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		a->sun_path[1 + k++] = (char)(hi << 4 | lo);
	}
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + k);
	return 0;
}

/* A socket file left at a listener's path: removed when it is a socket nobody listens on (the
 * checkpointed program's own, or a stale one), else the restore is refused. */
static int clear_socket_path(const struct sockaddr_un *a, socklen_t len, int type, const char *words, struct err *e)
{
	struct stat st;
	if (lstat(a->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : fail(e, "cannot inspect %s: %s", words, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return fail_code(e, "unavailable", "cannot listen on %s again: a file that is not a socket is there now", words);
	int probe = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0)
		return fail(e, "socket: %s", strerror(errno));
	int rc = connect(probe, (const struct sockaddr *)a, len);
	int why = errno;
	close(probe);
	if (rc == 0 || why == EAGAIN)
		return fail_code(e, "unavailable", "cannot listen on %s again: another program listens there now (is the original still running?)", words);
	if (why != ECONNREFUSED) /* not plainly stale: not ours to remove */
		return fail_code(e, "unavailable", "cannot listen on %s again: a socket file is there that cannot be checked (%s)", words, strerror(why));
	if (unlink(a->sun_path) < 0 && errno != ENOENT)
		return fail(e, "cannot remove the old socket file %s: %s", words, strerror(errno));
	return 0;
}

/* The uid an owner with no mapping in this user namespace shows as: in an unprivileged pod,
 * root's files and other users' alike. Such an owner cannot be judged from here; before a move
 * the target's agent judged it with the user's real ids (agent/migration/listeners.ts). */
static uid_t overflow_uid(void)
{
	char *text = read_text_file("/proc/sys/kernel/overflowuid", NULL);
	uid_t uid = 65534; /* the kernel's default */
	if (text) {
		char *end;
		unsigned long v = strtoul(text, &end, 10);
		if (end != text)
			uid = (uid_t)v;
		free(text);
	}
	return uid;
}

/* The directory of a listener's socket path, as the program had it: made (0700, the last
 * component only, and said in the note: the original's mode is not in the image) when it is
 * missing here, as on another machine whose /tmp has no tmux-UID yet; refused when another
 * user owns it (they could replace the socket under the program). */
static int socket_directory(struct restore_ctx *c, const char *path, const char *words, struct err *e)
{
	char dir[256]; /* a sun_path and more */
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0; /* relative (the cwd's) or in / */
	*slash = 0;
	struct stat st;
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return fail_code(e, "unavailable", "cannot listen on %s again: %s is not a directory here", words, dir);
		if (st.st_uid != geteuid() && st.st_uid != 0 && st.st_uid != overflow_uid())
			return fail_code(e, "unavailable", "cannot listen on %s again: its directory %s belongs to another user here", words, dir);
		return 0;
	}
	if (errno != ENOENT)
		return fail(e, "cannot inspect the directory of %s: %s", words, strerror(errno));
	if (mkdir(dir, 0700) < 0) {
		if (errno == EEXIST)
			return 0; /* made meanwhile */
		return fail_code(e, "unavailable", "cannot listen on %s again: its directory %s is missing here and cannot be made (%s)", words,
				 dir, strerror(errno));
	}
	restore_note(c, "%.300s was missing here: made it (private to this user, 0700) for the socket of %.300s", dir, words);
	return 0;
}

/* Whether something accepts connections at an Internet address now (a probe that connects). */
static int someone_listens(int domain, const struct sockaddr_storage *ss, socklen_t len)
{
	int probe = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return 1; /* cannot tell: say what is likelier */
	int rc = connect(probe, (const struct sockaddr *)ss, len);
	int why = errno;
	close(probe);
	return rc == 0 || why != ECONNREFUSED;
}

static int set_flag(int fd, int level, int name, int on)
{
	return setsockopt(fd, level, name, &on, sizeof on);
}

/* A listening socket, bound and listening again where it was, with its backlog and options. */
static int listen_object(struct restore_ctx *c, const struct img_object *o, struct err *e)
{
	char words[512];
	listen_words(o, words, sizeof words);
	int domain = (int)o->p[1], type = (int)o->p[2];
	struct sockaddr_storage ss;
	socklen_t len = 0;
	memset(&ss, 0, sizeof ss);
	if (domain == AF_UNIX && (type == SOCK_STREAM || type == SOCK_SEQPACKET)) {
		if (unix_address(o, (struct sockaddr_un *)&ss, &len) < 0)
			return fail_code(e, "bad_image", "the image names a Unix socket address that cannot be: %s", words);
	} else if (domain == AF_INET && type == SOCK_STREAM) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)(o->p[3] & 0xffff));
		if (inet_pton(AF_INET, o->path, &in->sin_addr) != 1)
			return fail_code(e, "bad_image", "the image names an address that cannot be: %s", words);
		len = sizeof *in;
	} else if (domain == AF_INET6 && type == SOCK_STREAM) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)(o->p[3] & 0xffff));
		if (inet_pton(AF_INET6, o->path, &in6->sin6_addr) != 1)
			return fail_code(e, "bad_image", "the image names an address that cannot be: %s", words);
		len = sizeof *in6;
	} else {
		return fail_code(e, "bad_image", "the image holds a listening socket of family %d, type %d", domain, type);
	}
	int path_bound = domain == AF_UNIX && ((struct sockaddr_un *)&ss)->sun_path[0] != 0;
	if (path_bound && (socket_directory(c, ((struct sockaddr_un *)&ss)->sun_path, words, e) < 0 ||
			   clear_socket_path((struct sockaddr_un *)&ss, len, type, words, e) < 0))
		return -1;
	int fd = socket(domain, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(e, "cannot make a socket to listen on %s: %s", words, strerror(errno));
	int rc = 0;
	if (o->p[3] & VOS_LISTEN_REUSEADDR)
		rc |= set_flag(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (o->p[3] & VOS_LISTEN_REUSEPORT)
		rc |= set_flag(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	if (domain == AF_INET6)
		rc |= set_flag(fd, IPPROTO_IPV6, IPV6_V6ONLY, (o->p[3] & VOS_LISTEN_V6ONLY) != 0);
	if (domain != AF_UNIX && (o->p[3] >> 32) != 0)
		rc |= set_flag(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, (int)(o->p[3] >> 32 > INT32_MAX ? INT32_MAX : o->p[3] >> 32));
	if (rc != 0) {
		close(fd);
		return fail(e, "cannot set the options of the socket on %s: %s", words, strerror(errno));
	}
	mode_t mask = umask(0);
	umask(mask);
	if (path_bound)
		umask(0777 & ~(mode_t)((o->p[3] >> VOS_LISTEN_MODE_SHIFT) & 0777));
	rc = bind(fd, (const struct sockaddr *)&ss, len);
	int why = errno;
	if (path_bound)
		umask(mask);
	if (rc < 0) {
		close(fd);
		if (why == EADDRINUSE && domain != AF_UNIX && !someone_listens(domain, &ss, len))
			return fail_code(e, "unavailable",
					 "cannot listen on %s again: connections of the original that closed in the last minute still hold the port "
					 "(it does not set SO_REUSEADDR); try again in a minute", words);
		if (why == EADDRINUSE)
			return fail_code(e, "unavailable", "cannot listen on %s again: the address is in use on this machine (is the original still running?)", words);
		if (why == EACCES || why == EPERM)
			return fail_code(e, "unavailable", "cannot listen on %s again: %s", words, strerror(why));
		if (path_bound)
			err_path(e, o->path);
		return fail(e, "cannot listen on %s again: %s", words, strerror(why));
	}
	uint32_t backlog = (uint32_t)o->p[0];
	if (listen(fd, backlog == 0 || backlog > INT32_MAX ? SOMAXCONN : (int)backlog) < 0) {
		why = errno;
		close(fd);
		return fail(e, "cannot listen on %s again: %s", words, strerror(why));
	}
	set_status_flags(fd, o->flags);
	uint32_t waiting = (uint32_t)(o->p[0] >> 32);
	if (waiting)
		restore_note(c, "%u connection(s) waiting on %s had not been accepted and were dropped", waiting, words);
	return fd;
}

/* The clients of the pod that waited in a listener's queue at the checkpoint: connected again, in
 * their order, so that the program's next accept gets them as before. */
static int queued_clients(struct restore_ctx *c, int base, struct err *e)
{
	struct image *img = &c->img;
	uint64_t last = 0;
	int any = 0;
	for (int i = 0; i < img->nobjects; i++)
		if (img->objects[i].kind == VOS_OBJ_QUEUED_CLIENT) {
			any = 1;
			last = img->objects[i].p[3] > last ? img->objects[i].p[3] : last;
		}
	for (uint64_t pos = 0; any && pos <= last; pos++) {
		for (int i = 0; i < img->nobjects; i++) {
			const struct img_object *o = &img->objects[i];
			if (o->kind != VOS_OBJ_QUEUED_CLIENT || o->p[3] != pos)
				continue;
			int l = -1;
			for (int k = 0; k < img->nobjects; k++)
				if (img->objects[k].id == o->p[0] && img->objects[k].kind == VOS_OBJ_LISTEN_SOCKET)
					l = k;
			if (l < 0 || c->object_fd[l] < 0)
				return fail_code(e, "bad_image", "the image has a waiting connection without its listener (object %u)", o->id);
			char words[512];
			listen_words(&img->objects[l], words, sizeof words);
			struct sockaddr_un a;
			socklen_t len = sizeof a;
			memset(&a, 0, sizeof a);
			if (getsockname(c->object_fd[l], (struct sockaddr *)&a, &len) < 0)
				return fail(e, "cannot read the address of %s: %s", words, strerror(errno));
			int fd = socket(AF_UNIX, (int)img->objects[l].p[2] | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (fd < 0)
				return fail(e, "socket: %s", strerror(errno));
			if (connect(fd, (struct sockaddr *)&a, len) < 0) {
				int why = errno;
				close(fd);
				if (why != EAGAIN)
					return fail(e, "cannot connect again to %s: %s", words, strerror(why));
				restore_note(c, "a connection waiting on %s did not fit its queue and came back disconnected", words);
				fd = closed_socket(o, e);
				if (fd < 0)
					return -1;
			}
			set_status_flags(fd, o->flags);
			c->object_fd[i] = high_fd(fd, base);
			if (c->object_fd[i] < 0)
				return fail(e, "out of file descriptors while restoring: %s", strerror(errno));
		}
	}
	return 0;
}

static int timer_object(const struct img_object *o, struct err *e)
{
	int fd = timerfd_create((int)o->p[0], TFD_CLOEXEC | ((o->flags & O_NONBLOCK) ? TFD_NONBLOCK : 0));
	if (fd < 0)
		return fail(e, "timerfd_create: %s", strerror(errno));
	uint64_t value = o->p[1], interval = o->p[2];
	if (!value && o->p[3])
		value = 1; /* expirations nobody had read yet: fire again at once */
	struct itimerspec its = {{(time_t)(interval / 1000000000ull), (long)(interval % 1000000000ull)},
				 {(time_t)(value / 1000000000ull), (long)(value % 1000000000ull)}};
	if ((value || interval) && timerfd_settime(fd, 0, &its, NULL) < 0) {
		close(fd);
		return fail(e, "timerfd_settime: %s", strerror(errno));
	}
	return fd;
}

/* A pty created inside the pod: a new pair with the old one's modes and size. */
static int pty_master(struct restore_ctx *c, const struct img_object *o, struct err *e)
{
	int fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return fail(e, "cannot create a pty: %s", strerror(errno));
	int unlock = 0;
	ioctl(fd, TIOCSPTLCK, &unlock);
	int packet = (o->p[1] & VOS_PTY_PACKET) != 0;
	if (packet && ioctl(fd, TIOCPKT, &packet) < 0) {
		int err = errno;
		close(fd);
		return fail(e, "cannot put a pty in packet mode again: %s", strerror(err));
	}
	if (o->has_data) {
		size_t len;
		void *data = load_data(c, o, &len, e);
		if (!data) {
			close(fd);
			return -1;
		}
		if (len >= sizeof(struct termios) + sizeof(struct winsize)) {
			tcsetattr(fd, TCSANOW, (struct termios *)data);
			ioctl(fd, TIOCSWINSZ, (struct winsize *)((char *)data + sizeof(struct termios)));
		}
		free(data);
	}
	set_status_flags(fd, o->flags);
	return fd;
}

/* The other end of a pty the pod made: through its (new) master. */
static int pty_slave(struct restore_ctx *c, const struct img_object *o, struct err *e)
{
	for (int i = 0; i < c->img.nobjects; i++) {
		const struct img_object *m = &c->img.objects[i];
		if (m->kind != VOS_OBJ_PTY_MASTER || m->p[0] != o->p[0] || c->object_fd[i] < 0)
			continue;
		int fd = ioctl(c->object_fd[i], TIOCGPTPEER, ((int)o->flags & (O_ACCMODE | O_NONBLOCK)) | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			return fail(e, "cannot open the other end of a pty: %s", strerror(errno));
		return fd;
	}
	return fail(e, "the image has a pty end without its master (pty %llu)", (unsigned long long)o->p[0]);
}

static int shm_objects(struct restore_ctx *c, struct err *e)
{
	struct image *img = &c->img;
	c->shm_fd = xcalloc((size_t)img->nshms + 1, sizeof *c->shm_fd);
	for (int i = 0; i < img->nshms; i++) {
		int fd = memfd_create("vos-shm", MFD_CLOEXEC);
		if (fd < 0)
			return fail(e, "memfd_create: %s", strerror(errno));
		for (int k = 0; k < img->shms[i].npages; k++) {
			void *payload;
			if (ir_load(img->fd, &img->shms[i].pages[k], &payload, e) < 0)
				return -1;
			struct reader r;
			reader_init(&r, (char *)payload + sizeof(struct vos_pages_head),
				    (size_t)img->shms[i].pages[k].length - sizeof(struct vos_pages_head));
			while (reader_left(&r) > 0) {
				struct vos_page_run run;
				if (page_run_read(&r, &run) < 0) {
					free(payload);
					return fail(e, "the image is damaged: a run of shared memory is cut short");
				}
				uint64_t off = run.addr;
				uint32_t kind = run.kind;
				size_t len = (size_t)run.npages * PAGE;
				struct stat st;
				fstat(fd, &st);
				if ((uint64_t)st.st_size < off + len && ftruncate(fd, (off_t)(off + len)) < 0) {
					free(payload);
					return fail(e, "cannot size shared memory: %s", strerror(errno));
				}
				if (kind == VOS_RUN_DATA) {
					const void *data = rd_raw(&r, len);
					if (!data || pwrite(fd, data, len, (off_t)off) != (ssize_t)len) {
						free(payload);
						return fail(e, "cannot fill shared memory: %s", strerror(errno));
					}
				}
			}
			free(payload);
		}
		c->shm_fd[i] = fd;
	}
	return 0;
}

int create_objects(struct restore_ctx *c, struct err *e)
{
	struct image *img = &c->img;
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	int base = object_base(img);
	if (shm_objects(c, e) < 0)
		return -1;
	for (int i = 0; i < img->nshms; i++)
		c->shm_fd[i] = high_fd(c->shm_fd[i], base);
	c->object_fd = xmalloc((size_t)(img->nobjects + 1) * sizeof *c->object_fd);
	for (int i = 0; i < img->nobjects; i++)
		c->object_fd[i] = -1;
	struct pipe_end *pipes = NULL;
	int npipes = 0;
	for (int i = 0; i < img->nobjects; i++) {
		struct img_object *o = &img->objects[i];
		int fd = -1;
		switch (o->kind) {
		case VOS_OBJ_FILE:
		case VOS_OBJ_DEVICE:
			if (o->kind == VOS_OBJ_FILE && in_image_proc(img, o->path)) {
				c->object_fd[i] = OBJECT_OPENED_LATER; /* by the process, once it exists */
				continue;
			}
			fd = open_file_object(o, e);
			break;
		case VOS_OBJ_DELETED:
			fd = recreate_deleted(c, o, e);
			break;
		case VOS_OBJ_MEMFD:
			if (o->p[0] < (uint64_t)img->nshms && c->shm_fd[o->p[0]] >= 0) {
				fd = reopen(c->shm_fd[o->p[0]], (int)o->flags & O_ACCMODE);
			} else {
				fd = recreate_deleted(c, o, e);
			}
			if (fd >= 0 && lseek(fd, (off_t)o->pos, SEEK_SET) < 0) {
				fail(e, "cannot set the position of %s: %s", o->path, strerror(errno));
				close(fd);
				fd = -1;
			}
			break;
		case VOS_OBJ_SESSION_TTY:
			fd = session_tty(c, o, e);
			break;
		case VOS_OBJ_PIPE:
			fd = pipe_object(c, o, &pipes, &npipes, e);
			break;
		case VOS_OBJ_SOCKETPAIR:
			continue; /* in pairs, below */
		case VOS_OBJ_CLOSED_SOCKET:
			fd = closed_socket(o, e);
			if (fd >= 0)
				restore_note(c, "%.400s came back disconnected", o->path[0] ? o->path : "a socket to outside the session");
			break;
		case VOS_OBJ_RELAYED:
			fd = relayed_socket(c, o, e);
			break;
		case VOS_OBJ_LISTEN_SOCKET:
			fd = listen_object(c, o, e);
			break;
		case VOS_OBJ_QUEUED_CLIENT:
		case VOS_OBJ_TCP_PAIR:
			continue; /* once every listener exists, below */
		case VOS_OBJ_EVENTFD:
			fd = eventfd((unsigned)o->p[0],
				     EFD_CLOEXEC | (o->p[1] ? EFD_SEMAPHORE : 0) | ((o->flags & O_NONBLOCK) ? EFD_NONBLOCK : 0));
			if (fd < 0)
				fail(e, "eventfd: %s", strerror(errno));
			break;
		case VOS_OBJ_EPOLL:
			fd = epoll_create1(EPOLL_CLOEXEC);
			if (fd < 0)
				fail(e, "epoll_create1: %s", strerror(errno));
			break;
		case VOS_OBJ_TIMERFD:
			fd = timer_object(o, e);
			break;
		case VOS_OBJ_PTY_MASTER:
			fd = pty_master(c, o, e);
			break;
		case VOS_OBJ_PTY_SLAVE:
			continue; /* once every master exists, below */
		case VOS_OBJ_INOTIFY: {
			size_t len = 0;
			void *data = o->has_data ? load_data(c, o, &len, e) : NULL;
			if (o->has_data && !data)
				break;
			fd = inotify_object(c, o, data, len, e);
			free(data);
			break;
		}
		case VOS_OBJ_SIGNALFD: {
			sigset_t mask;
			sigemptyset(&mask);
			for (int s = 1; s <= 64; s++)
				if (o->p[0] & (1ull << (s - 1)))
					sigaddset(&mask, s);
			fd = signalfd(-1, &mask, SFD_CLOEXEC | ((o->flags & O_NONBLOCK) ? SFD_NONBLOCK : 0));
			if (fd < 0)
				fail(e, "signalfd: %s", strerror(errno));
			break;
		}
		default:
			fail(e, "the image holds an open file of a kind this vOS cannot restore (%u)", o->kind);
			break;
		}
		if (fd < 0) {
			free(pipes);
			return -1;
		}
		c->object_fd[i] = high_fd(fd, base);
		if (c->object_fd[i] < 0) {
			free(pipes);
			return fail(e, "out of file descriptors while restoring: %s", strerror(errno));
		}
	}
	for (int i = 0; i < npipes; i++) {
		close(pipes[i].fds[0]);
		close(pipes[i].fds[1]);
	}
	free(pipes);
	for (int i = 0; i < img->nobjects; i++) {
		if (img->objects[i].kind != VOS_OBJ_PTY_SLAVE)
			continue;
		int fd = pty_slave(c, &img->objects[i], e);
		if (fd < 0)
			return -1;
		c->object_fd[i] = high_fd(fd, base);
	}
	if (queued_clients(c, base, e) < 0 || tcp_pair_objects(c, base, e) < 0)
		return -1;
	return socketpair_objects(c, base, e);
}

const char *lock_words(const struct vos_lock_rec *l)
{
	if (l->kind == VOS_LOCK_FLOCK)
		return l->type == VOS_LOCK_WRITE ? "an exclusive flock lock" : "a shared flock lock";
	if (l->kind == VOS_LOCK_OFD)
		return l->type == VOS_LOCK_WRITE ? "an open file description write lock" : "an open file description read lock";
	return l->type == VOS_LOCK_WRITE ? "a POSIX write lock" : "a POSIX read lock";
}

int lock_unavailable(struct err *e, const struct image *img, const struct vos_lock_rec *l, int err)
{
	const char *path = "?";
	for (int i = 0; i < img->nobjects; i++)
		if (img->objects[i].id == l->object)
			path = img->objects[i].path;
	if (err == EAGAIN || err == EACCES || err == EWOULDBLOCK)
		fail_code(e, "unavailable",
			  "%s is locked by another process now: the program held %s on it, and runs only with it (end the other "
			  "process, or the program's other copy, and restore again)",
			  path, lock_words(l));
	else
		fail(e, "cannot take %s on %s again: %s", lock_words(l), path, strerror(err));
	return err_path(e, path);
}

int take_description_locks(struct restore_ctx *c, struct err *e)
{
	const struct image *img = &c->img;
	for (uint32_t i = 0; i < img->nlocks; i++) {
		const struct vos_lock_rec *l = &img->locks[i];
		if (l->kind == VOS_LOCK_POSIX)
			continue; /* the process's own: taken by it, in the blob */
		int fd = -1;
		for (int k = 0; k < img->nobjects; k++)
			if (img->objects[k].id == l->object)
				fd = c->object_fd[k];
		if (fd < 0)
			return fail(e, "a lock is on an open file that was not restored");
		int rc;
		if (l->kind == VOS_LOCK_FLOCK) {
			rc = flock(fd, (l->type == VOS_LOCK_WRITE ? LOCK_EX : LOCK_SH) | LOCK_NB);
		} else {
			struct flock fl = {.l_type = l->type == VOS_LOCK_WRITE ? F_WRLCK : F_RDLCK,
					   .l_whence = SEEK_SET,
					   .l_start = (off_t)l->start,
					   .l_len = l->end == VOS_LOCK_TO_EOF ? 0 : (off_t)(l->end - l->start + 1)};
			rc = fcntl(fd, F_OFD_SETLK, &fl);
		}
		if (rc < 0)
			return lock_unavailable(e, img, l, errno);
	}
	return 0;
}
