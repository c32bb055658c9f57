/*
 * What kind of object (open file description) an fd of the pod is, from our duplicate of it,
 * its /proc link and its fdinfo: the image's object kinds (vos-image.h) and their kind-specific
 * fields (docs/image-format.md). What cannot be checkpointed is refused here, naming the process
 * and the fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "dump.h"
#include "objects.h"
#include "vos-image.h"

/* One line of /proc/PID/fdinfo/FD: the value after "key:". */
const char *fdinfo_value(const char *text, const char *key)
{
	size_t k = strlen(key);
	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, key, k) == 0 && line[k] == ':') {
			const char *v = line + k + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
	}
	return NULL;
}

static int is_pty_slave_major(unsigned maj)
{
	return maj >= 136 && maj <= 143;
}

static int classify_char_device(struct object *o, uint64_t tty_rdev, const char *link, pid_t pid, int fd,
				struct err *e)
{
	unsigned maj = major(o->rdev), min = minor(o->rdev);
	if (o->rdev == tty_rdev) {
		o->kind = VOS_OBJ_SESSION_TTY;
		return 0;
	}
	if (maj == 5 && min == 0) {
		o->kind = VOS_OBJ_DEVICE;
		snprintf(o->path, sizeof o->path, "/dev/tty");
		return 0;
	}
	if ((maj == 5 && min == 2) || strcmp(link, "/dev/pts/ptmx") == 0) {
		unsigned index = 0;
		if (ioctl(o->dup, TIOCGPTN, &index) < 0)
			return fail(e, "cannot inspect the pty master (fd %d of process %d): %s", fd, (int)pid, strerror(errno));
		o->kind = VOS_OBJ_PTY_MASTER;
		o->p[0] = index;
		/* Packet mode (GNU screen reads its windows so): without it, a restored reader takes
		 * the first byte of every read for the packet header and drops it. */
		int packet = 0;
		if (ioctl(o->dup, TIOCGPKT, &packet) < 0)
			return fail(e, "cannot inspect the pty master (fd %d of process %d): %s", fd, (int)pid, strerror(errno));
		o->p[1] = packet ? VOS_PTY_PACKET : 0;
		/* The pair's modes and size travel as the object's data (struct termios, winsize). */
		struct termios t;
		struct winsize ws;
		if (tcgetattr(o->dup, &t) == 0 && ioctl(o->dup, TIOCGWINSZ, &ws) == 0) {
			buf_put(&o->data, &t, sizeof t);
			buf_put(&o->data, &ws, sizeof ws);
			o->has_data = 1;
		}
		return 0;
	}
	if (is_pty_slave_major(maj)) {
		o->kind = VOS_OBJ_PTY_SLAVE;
		o->p[0] = (uint64_t)(maj - 136) * 256 + min;
		return 0;
	}
	static const char *known[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
	for (size_t i = 0; i < ARRAY_LEN(known); i++) {
		struct stat st;
		if (stat(known[i], &st) == 0 && st.st_rdev == o->rdev) {
			o->kind = VOS_OBJ_DEVICE;
			snprintf(o->path, sizeof o->path, "%s", known[i]);
			return 0;
		}
	}
	return fail_code(e, "unsupported", "process %d has the device %s open (fd %d), which vOS cannot checkpoint", (int)pid, link, fd);
}

static int parse_epoll(struct object *o, const char *info)
{
	for (const char *line = info; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		int tfd;
		unsigned events;
		unsigned long long data;
		if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) == 3) {
			buf_i32(&o->epoll, tfd);
			buf_u32(&o->epoll, events);
			buf_u64(&o->epoll, data);
			o->nepoll++;
		}
	}
	return 0;
}

static uint64_t timespec_field(const char *v)
{
	unsigned long long sec = 0, nsec = 0;
	if (v)
		sscanf(v, "(%llu, %llu)", &sec, &nsec);
	return (uint64_t)sec * 1000000000ull + nsec;
}

int classify_object(struct object *o, pid_t pid, int fd, const char *link, const char *info, uint64_t tty_rdev,
		    struct mem_dump *md, struct err *e)
{
	if (S_ISREG(o->mode)) {
		if (strncmp(link, "/memfd:", 7) == 0) {
			o->kind = VOS_OBJ_MEMFD;
			snprintf(o->path, sizeof o->path, "%s", link + 7);
			o->p[0] = shm_id_for(md, o->dev, o->ino);
		} else if (dump_on_private_mount(o->dev)) {
			/* A file of the pod's own tmpfs, which no restore finds: carried as a memfd (the
			 * same object as a mapping of it), with its content. */
			o->kind = VOS_OBJ_MEMFD;
			snprintf(o->path, sizeof o->path, "%s", link);
			o->p[0] = shm_id_for(md, o->dev, o->ino);
		} else {
			struct stat st;
			if (fstat(o->dup, &st) == 0 && st.st_nlink == 0)
				o->kind = VOS_OBJ_DELETED;
			else
				o->kind = VOS_OBJ_FILE;
			snprintf(o->path, sizeof o->path, "%s", link);
		}
		if (o->kind != VOS_OBJ_FILE) {
			/* The content lives nowhere else: take it. */
			struct stat st;
			fstat(o->dup, &st);
			o->p[1] = (uint64_t)st.st_size;
			uint8_t *tmp = xmalloc(1 << 20);
			for (uint64_t off = 0; off < (uint64_t)st.st_size;) {
				ssize_t n = pread(o->dup, tmp, 1 << 20, (off_t)off);
				if (n <= 0)
					break;
				buf_put(&o->data, tmp, (size_t)n);
				off += (uint64_t)n;
			}
			free(tmp);
			o->has_data = 1;
		}
		return 0;
	}
	if (S_ISDIR(o->mode)) {
		o->kind = VOS_OBJ_FILE;
		snprintf(o->path, sizeof o->path, "%s", link);
		return 0;
	}
	if (S_ISCHR(o->mode))
		return classify_char_device(o, tty_rdev, link, pid, fd, e);
	if (S_ISFIFO(o->mode)) {
		o->kind = VOS_OBJ_PIPE;
		o->p[0] = o->ino;
		o->p[1] = (o->flags & O_ACCMODE) == O_RDONLY ? 0 : 1;
		long size = fcntl(o->dup, F_GETPIPE_SZ);
		o->p[2] = size > 0 ? (uint64_t)size : 65536;
		if (link[0] == '/')
			snprintf(o->path, sizeof o->path, "%s", link); /* a named FIFO */
		return 0;
	}
	if (S_ISSOCK(o->mode)) {
		int domain = 0, type = 0;
		socklen_t l = sizeof domain;
		getsockopt(o->dup, SOL_SOCKET, SO_DOMAIN, &domain, &l);
		l = sizeof type;
		getsockopt(o->dup, SOL_SOCKET, SO_TYPE, &type, &l);
		int listening = 0;
		l = sizeof listening;
		if (getsockopt(o->dup, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) == 0 && listening)
			return classify_listener(o, pid, fd, domain, type, e);
		o->p[1] = (uint64_t)domain;
		o->p[2] = (uint64_t)type;
		o->kind = domain == AF_UNIX ? VOS_OBJ_SOCKETPAIR : VOS_OBJ_CLOSED_SOCKET;
		o->messages = type != SOCK_STREAM;
		return 0; /* pairing happens once every object is known */
	}
	if (strcmp(link, "anon_inode:[eventfd]") == 0) {
		o->kind = VOS_OBJ_EVENTFD;
		const char *v = fdinfo_value(info, "eventfd-count");
		o->p[0] = v ? strtoull(v, NULL, 16) : 0;
		v = fdinfo_value(info, "eventfd-semaphore");
		o->p[1] = v ? strtoull(v, NULL, 10) : 0;
		return 0;
	}
	if (strcmp(link, "anon_inode:[eventpoll]") == 0) {
		o->kind = VOS_OBJ_EPOLL;
		return parse_epoll(o, info);
	}
	if (strcmp(link, "anon_inode:[timerfd]") == 0) {
		o->kind = VOS_OBJ_TIMERFD;
		const char *v = fdinfo_value(info, "clockid");
		o->p[0] = v ? strtoull(v, NULL, 10) : 0;
		o->p[1] = timespec_field(fdinfo_value(info, "it_value"));
		o->p[2] = timespec_field(fdinfo_value(info, "it_interval"));
		v = fdinfo_value(info, "ticks");
		o->p[3] = v ? strtoull(v, NULL, 10) : 0;
		return 0;
	}
	if (strcmp(link, "anon_inode:[signalfd]") == 0) {
		o->kind = VOS_OBJ_SIGNALFD;
		const char *v = fdinfo_value(info, "sigmask");
		o->p[0] = v ? strtoull(v, NULL, 16) : 0;
		return 0;
	}
	if (strcmp(link, "anon_inode:inotify") == 0)
		return classify_inotify(o, pid, fd, info, e);
	return fail_code(e, "unsupported", "process %d has fd %d open on %s, which vOS cannot checkpoint", (int)pid, fd, link);
}
