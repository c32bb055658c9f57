/*
 * Open files of the pod: every fd of every process, and the open file descriptions behind them
 * ("objects"; one object may be shared by many fds and processes, as after fork or dup).
 *
 * Pod init takes a duplicate of each fd (pidfd_getfd; it has the right, being the pod's
 * creator) to look at it: fstat, the fd's fdinfo, kcmp to find shared descriptions. Pipes and
 * Unix socket pairs are drained into the image while everything is stopped (the consistent
 * cut) and, when the pod goes on running, refilled before it does.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kcmp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "dump.h"
#include "vos-image.h"

#define MAX_DRAIN (16u << 20)

struct object {
	uint32_t id;
	uint32_t kind;
	uint32_t flags; /* open flags, without O_CLOEXEC (that is per fd) */
	uint64_t pos;
	char path[4096];
	uint64_t p[4]; /* kind-specific, see docs/image-format.md */
	struct buf epoll; /* EPOLL: (i32 tfd, u32 events, u64 data)* */
	uint32_t nepoll;
	pid_t owner; /* the first process found holding it */
	int dup;     /* our duplicate of it, for inspection and draining */
	uint64_t dev, ino, rdev;
	mode_t mode;
	struct buf data; /* drained or captured content */
	int has_data;
	int messages;   /* data is (u32 len, bytes)* datagrams */
	int refill_fd;  /* where drained data goes back, or -1 */
};

static long pidfd_open(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

static long pidfd_getfd(int pidfd, int fd)
{
	return syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

static int same_description(int a, int b)
{
	pid_t me = getpid();
	return syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

/* One line of /proc/PID/fdinfo/FD: the value after "key:". */
static const char *fdinfo_value(const char *text, const char *key)
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

/* ---- Unix socket peers, from the kernel's socket diagnostics ---- */

struct peer_map {
	uint64_t (*pairs)[2]; /* inode, peer inode */
	int n;
};

static int load_unix_peers(struct peer_map *m, struct err *e)
{
	m->pairs = NULL;
	m->n = 0;
	int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s < 0)
		return fail(e, "cannot query Unix sockets (sock_diag): %s", strerror(errno));
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg;
	memset(&msg, 0, sizeof msg);
	msg.nlh.nlmsg_len = sizeof msg;
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	msg.req.sdiag_family = AF_UNIX;
	msg.req.udiag_states = ~0u;
	msg.req.udiag_show = UDIAG_SHOW_PEER;
	if (send(s, &msg, sizeof msg, 0) < 0) {
		close(s);
		return fail(e, "cannot query Unix sockets: %s", strerror(errno));
	}
	char buf[32768];
	for (;;) {
		ssize_t n = recv(s, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				close(s);
				return 0;
			}
			struct unix_diag_msg *d = NLMSG_DATA(h);
			int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *d));
			for (struct rtattr *a = (struct rtattr *)(d + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
				if (a->rta_type != UNIX_DIAG_PEER)
					continue;
				uint32_t peer;
				memcpy(&peer, RTA_DATA(a), sizeof peer);
				m->pairs = xrealloc(m->pairs, (size_t)(m->n + 1) * sizeof *m->pairs);
				m->pairs[m->n][0] = d->udiag_ino;
				m->pairs[m->n][1] = peer;
				m->n++;
			}
		}
	}
	close(s);
	return 0;
}

static uint64_t peer_of(const struct peer_map *m, uint64_t ino)
{
	for (int i = 0; i < m->n; i++)
		if (m->pairs[i][0] == ino)
			return m->pairs[i][1];
	return 0;
}

/* ---- classification ---- */

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
	return fail(e, "process %d has the device %s open (fd %d), which vOS cannot checkpoint", (int)pid, link, fd);
}

/* Reads what is queued in a pipe without blocking (FIONREAD says how much). */
static int drain_pipe(struct object *o, struct err *e)
{
	int avail = 0;
	if (ioctl(o->dup, FIONREAD, &avail) < 0)
		return fail(e, "cannot inspect a pipe: %s", strerror(errno));
	if (avail <= 0)
		return 0;
	uint8_t *tmp = xmalloc((size_t)avail);
	ssize_t n = read(o->dup, tmp, (size_t)avail);
	if (n > 0) {
		buf_put(&o->data, tmp, (size_t)n);
		o->has_data = 1;
	}
	free(tmp);
	return 0;
}

/* Reads what is queued for a socket pair end without blocking; datagrams keep their bounds. */
static void drain_socket(struct object *o)
{
	uint8_t *tmp = xmalloc(1 << 20);
	for (size_t total = 0; total < MAX_DRAIN;) {
		ssize_t n = recv(o->dup, tmp, 1 << 20, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (o->messages)
			buf_u32(&o->data, (uint32_t)n);
		buf_put(&o->data, tmp, (size_t)n);
		o->has_data = 1;
		total += (size_t)n;
	}
	free(tmp);
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

static int classify(struct object *o, pid_t pid, int fd, const char *link, const char *info, uint64_t tty_rdev,
		    struct mem_dump *md, struct err *e)
{
	if (S_ISREG(o->mode)) {
		if (strncmp(link, "/memfd:", 7) == 0) {
			o->kind = VOS_OBJ_MEMFD;
			snprintf(o->path, sizeof o->path, "%s", link + 7);
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
		return fail(e, "process %d watches files with inotify (fd %d), which vOS cannot checkpoint yet", (int)pid, fd);
	return fail(e, "process %d has fd %d open on %s, which vOS cannot checkpoint", (int)pid, fd, link);
}

/* Finds the object for our duplicate of (pid, fd), or adds it. */
static int object_for(struct files_dump *fd, int dup, const struct stat *st, pid_t pid, int fdnum, uint32_t *id,
		      int *is_new)
{
	for (int i = 0; i < fd->nobjects; i++) {
		struct object *o = &fd->objects[i];
		if (o->dev == st->st_dev && o->ino == st->st_ino && same_description(o->dup, dup)) {
			*id = o->id;
			*is_new = 0;
			return 0;
		}
	}
	fd->objects = xrealloc(fd->objects, (size_t)(fd->nobjects + 1) * sizeof *fd->objects);
	struct object *o = &fd->objects[fd->nobjects];
	memset(o, 0, sizeof *o);
	o->id = (uint32_t)fd->nobjects;
	o->owner = pid;
	o->dup = dup;
	o->dev = st->st_dev;
	o->ino = st->st_ino;
	o->rdev = st->st_rdev;
	o->mode = st->st_mode;
	o->refill_fd = -1;
	(void)fdnum;
	buf_init(&o->data);
	buf_init(&o->epoll);
	*id = o->id;
	*is_new = 1;
	fd->nobjects++;
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static int process_fds(pid_t pid, struct files_dump *fd, struct mem_dump *md, struct err *e)
{
	char dirpath[64];
	snprintf(dirpath, sizeof dirpath, "/proc/%d/fd", (int)pid);
	int pidfd = (int)pidfd_open(pid);
	if (pidfd < 0)
		return fail(e, "cannot open process %d: %s", (int)pid, strerror(errno));
	/* fd numbers, sorted */
	int *nums = NULL, n = 0;
	{
		char cmd[96];
		snprintf(cmd, sizeof cmd, "/proc/%d/fd", (int)pid);
		DIR *d = opendir(cmd);
		if (!d) {
			close(pidfd);
			return fail(e, "cannot list the files of process %d: %s", (int)pid, strerror(errno));
		}
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			nums = xrealloc(nums, (size_t)(n + 1) * sizeof *nums);
			nums[n++] = atoi(de->d_name);
		}
		closedir(d);
	}
	qsort(nums, (size_t)n, sizeof *nums, cmp_int);
	struct proc_fds *pf;
	fd->procs = xrealloc(fd->procs, (size_t)(fd->nprocs + 1) * sizeof *fd->procs);
	pf = &fd->procs[fd->nprocs++];
	pf->pid = pid;
	pf->fds = xcalloc((size_t)n, sizeof *pf->fds);
	pf->nfds = 0;
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		int num = nums[i];
		int dup = (int)pidfd_getfd(pidfd, num);
		if (dup < 0) {
			if (errno == EBADF)
				continue; /* closed meanwhile (another thread's close before the stop) */
			rc = fail(e, "cannot take fd %d of process %d: %s", num, (int)pid, strerror(errno));
			break;
		}
		char path[96], link[4096];
		snprintf(path, sizeof path, "%s/%d", dirpath, num);
		if (read_link(path, link, sizeof link) < 0)
			snprintf(link, sizeof link, "?");
		snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)pid, num);
		char *info = read_text_file(path, NULL);
		if (!info) {
			close(dup);
			continue;
		}
		struct stat st;
		fstat(dup, &st);
		const char *fl = fdinfo_value(info, "flags");
		unsigned flags = fl ? (unsigned)strtoul(fl, NULL, 8) : 0;
		uint32_t id;
		int is_new;
		object_for(fd, dup, &st, pid, num, &id, &is_new);
		pf->fds[pf->nfds++] = (struct fd_entry){num, (flags & O_CLOEXEC) != 0, id};
		if (!is_new) {
			close(dup);
		} else {
			struct object *o = &fd->objects[id];
			o->flags = flags & ~(unsigned)O_CLOEXEC;
			const char *pos = fdinfo_value(info, "pos");
			o->pos = pos ? strtoull(pos, NULL, 10) : 0;
			rc = classify(o, pid, num, link, info, fd->tty_rdev, md, e);
		}
		free(info);
	}
	free(nums);
	close(pidfd);
	return rc;
}

/* Pairs socket ends, drains pipes and sockets, and prepares the refill. */
static int finish_objects(struct files_dump *fd, struct err *e)
{
	struct peer_map peers = {NULL, 0};
	int need_peers = 0;
	for (int i = 0; i < fd->nobjects; i++)
		need_peers |= fd->objects[i].kind == VOS_OBJ_SOCKETPAIR;
	if (need_peers && load_unix_peers(&peers, e) < 0)
		return -1;
	for (int i = 0; i < fd->nobjects; i++) {
		struct object *o = &fd->objects[i];
		if (o->kind == VOS_OBJ_SOCKETPAIR) {
			uint64_t peer_ino = peer_of(&peers, o->ino);
			int peer = -1;
			for (int k = 0; k < fd->nobjects; k++)
				if (k != i && fd->objects[k].kind == VOS_OBJ_SOCKETPAIR && fd->objects[k].ino == peer_ino)
					peer = k;
			if (peer < 0 && peer_ino != 0) {
				/* The other end is outside the pod (e.g. a connection to a local server). */
				o->kind = VOS_OBJ_CLOSED_SOCKET;
				continue;
			}
			/* The pair's id is the lower object id; p[3] is this end's peer (or ~0: none). */
			o->p[0] = peer >= 0 && (uint32_t)peer < o->id ? (uint64_t)peer : o->id;
			o->p[3] = peer >= 0 ? (uint64_t)peer : ~0ull;
			drain_socket(o);
			if (peer >= 0)
				o->refill_fd = fd->objects[peer].dup;
		} else if (o->kind == VOS_OBJ_PIPE && o->p[1] == 0) {
			/* A read end: drain the pipe once, and keep a write end for the refill. */
			int drained = 0;
			for (int k = 0; k < i; k++)
				if (fd->objects[k].kind == VOS_OBJ_PIPE && fd->objects[k].ino == o->ino && fd->objects[k].p[1] == 0)
					drained = 1;
			if (drained)
				continue;
			if (drain_pipe(o, e) < 0)
				break;
			if (o->has_data) {
				char path[96];
				/* Opening a pipe through /proc gives a new end of that same pipe. */
				snprintf(path, sizeof path, "/proc/self/fd/%d", o->dup);
				o->refill_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
			}
		}
	}
	free(peers.pairs);
	return 0;
}

int dump_files(const struct freeze *f, struct files_dump *fd, struct mem_dump *md, uint64_t tty_rdev, struct err *e)
{
	memset(fd, 0, sizeof *fd);
	fd->tty_rdev = tty_rdev;
	for (int i = 0; i < f->nprocs; i++)
		if (process_fds(f->procs[i].pid, fd, md, e) < 0)
			return -1;
	return finish_objects(fd, e);
}

int write_objects(struct files_dump *fd, struct image_writer *w, struct err *e)
{
	struct buf b;
	buf_init(&b);
	buf_u32(&b, (uint32_t)fd->nobjects);
	for (int i = 0; i < fd->nobjects; i++) {
		struct object *o = &fd->objects[i];
		buf_u32(&b, o->id);
		buf_u32(&b, o->kind);
		buf_u32(&b, o->flags);
		buf_i32(&b, o->owner);
		buf_u64(&b, o->pos);
		for (int k = 0; k < 4; k++)
			buf_u64(&b, o->p[k]);
		buf_str(&b, o->path);
		buf_u32(&b, o->nepoll);
		buf_put(&b, o->epoll.data, o->epoll.len);
	}
	int rc = iw_record1(w, VOS_REC_OBJECTS, b.data, b.len, e);
	buf_free(&b);
	for (int i = 0; i < fd->nobjects && rc == 0; i++) {
		struct object *o = &fd->objects[i];
		if (!o->has_data)
			continue;
		struct {
			uint32_t id, messages;
		} head = {o->id, (uint32_t)o->messages};
		struct iovec parts[2] = {{&head, sizeof head}, {o->data.data, o->data.len}};
		rc = iw_record(w, VOS_REC_OBJDATA, parts, 2, e);
	}
	return rc;
}

void put_fd_table(const struct files_dump *fd, pid_t pid, struct buf *b)
{
	for (int i = 0; i < fd->nprocs; i++) {
		if (fd->procs[i].pid != pid)
			continue;
		const struct proc_fds *pf = &fd->procs[i];
		buf_u32(b, (uint32_t)pf->nfds);
		for (int k = 0; k < pf->nfds; k++) {
			buf_i32(b, pf->fds[k].fd);
			buf_u32(b, (uint32_t)pf->fds[k].cloexec);
			buf_u32(b, pf->fds[k].object);
		}
		return;
	}
	buf_u32(b, 0);
}

void put_back_drained(struct files_dump *fd)
{
	for (int i = 0; i < fd->nobjects; i++) {
		struct object *o = &fd->objects[i];
		if (!o->has_data || o->refill_fd < 0)
			continue;
		if (o->kind == VOS_OBJ_PIPE) {
			write_full(o->refill_fd, o->data.data, o->data.len);
		} else if (o->kind == VOS_OBJ_SOCKETPAIR) {
			struct reader r;
			reader_init(&r, o->data.data, o->data.len);
			if (!o->messages) {
				send(o->refill_fd, o->data.data, o->data.len, MSG_DONTWAIT | MSG_NOSIGNAL);
				continue;
			}
			while (reader_left(&r) > 0) {
				uint32_t len = rd_u32(&r);
				const void *m = rd_raw(&r, len);
				if (r.bad)
					break;
				send(o->refill_fd, m, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			}
		}
	}
}

void files_dump_free(struct files_dump *fd)
{
	for (int i = 0; i < fd->nobjects; i++) {
		struct object *o = &fd->objects[i];
		if (o->kind == VOS_OBJ_PIPE && o->refill_fd >= 0)
			close(o->refill_fd);
		if (o->dup >= 0)
			close(o->dup);
		buf_free(&o->data);
		buf_free(&o->epoll);
	}
	free(fd->objects);
	for (int i = 0; i < fd->nprocs; i++)
		free(fd->procs[i].fds);
	free(fd->procs);
	memset(fd, 0, sizeof *fd);
}
