/*
 * Open files of the pod: every fd of every process, and the open file descriptions behind them
 * ("objects"; one object may be shared by many fds and processes, as after fork or dup).
 *
 * Pod init takes a duplicate of each fd (pidfd_getfd; it has the right, being the pod's
 * creator) to look at it: fstat, the fd's fdinfo, kcmp to find shared descriptions. This file
 * keeps the object table and the fd tables and writes them; what each object is comes from
 * object-kinds.c, the data buffered in pipes and socket pairs from drain.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dump.h"
#include "objects.h"
#include "vos-image.h"

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

/*
 * The locks /proc/PID/fdinfo/FD shows for fd `num` of process pid, which is object o: its
 * "lock:" lines, e.g. "lock:\t1: POSIX  ADVISORY  WRITE 7 fe:00:1234 10 29". The kernel lists
 * there the flock and OFD locks of the fd's open file description (whatever process looks) and
 * the POSIX locks this process took through it. Each lock is noted once: a description's under
 * its object, a POSIX lock under the process (pid, as the line says) and the object. A kind of
 * lock vOS cannot take again (a lease) fails the checkpoint, saying so.
 */
static int collect_locks(struct files_dump *fd, pid_t pid, int num, const struct object *o, const char *info,
			 struct err *e)
{
	for (const char *line = info; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, "lock:", 5) != 0)
			continue;
		char kind[16], mode[16], type[16], dev[64], start[32], end[32];
		int lpid;
		if (sscanf(line + 5, " %*d: %15s %15s %15s %d %63s %31s %31s", kind, mode, type, &lpid, dev, start, end) != 7)
			return fail_code(e, "unsupported", "process %d: fd %d (%s) holds a lock vOS cannot read", (int)pid, num,
					 o->path);
		struct vos_lock_rec l = {0};
		l.kind = strcmp(kind, "FLOCK") == 0 ? VOS_LOCK_FLOCK : strcmp(kind, "POSIX") == 0 ? VOS_LOCK_POSIX
			 : strcmp(kind, "OFDLCK") == 0 ? VOS_LOCK_OFD : 0;
		l.type = strcmp(type, "READ") == 0 ? VOS_LOCK_READ : strcmp(type, "WRITE") == 0 ? VOS_LOCK_WRITE : 0;
		if (!l.kind || !l.type || strcmp(mode, "ADVISORY") != 0) {
			fail_code(e, "unsupported", "process %d: fd %d (%s) holds a %s %s lock (%s), which vOS cannot carry", (int)pid,
				  num, o->path, kind, mode, type);
			return err_path(e, o->path);
		}
		if (l.kind == VOS_LOCK_POSIX && lpid != pid)
			continue; /* another process's, seen through a shared fd table: noted under that one */
		if (o->kind != VOS_OBJ_FILE && o->kind != VOS_OBJ_DELETED && o->kind != VOS_OBJ_MEMFD) {
			fail_code(e, "unsupported", "process %d: fd %d (%s) holds a lock on something that is not a file, which vOS cannot carry",
				  (int)pid, num, o->path);
			return err_path(e, o->path);
		}
		l.pid = l.kind == VOS_LOCK_POSIX ? pid : 0;
		l.object = o->id;
		l.start = strtoull(start, NULL, 10);
		l.end = strcmp(end, "EOF") == 0 ? VOS_LOCK_TO_EOF : strtoull(end, NULL, 10);
		int seen = 0;
		for (int i = 0; i < fd->nlocks && !seen; i++) {
			const struct vos_lock_rec *k = &fd->locks[i];
			seen = k->kind == l.kind && k->pid == l.pid && k->object == l.object && k->start == l.start && k->end == l.end;
		}
		if (seen)
			continue;
		if ((uint32_t)fd->nlocks >= VOS_MAX_LOCKS)
			return fail_code(e, "unsupported", "the pod holds more than %u file locks", VOS_MAX_LOCKS);
		fd->locks = xrealloc(fd->locks, (size_t)(fd->nlocks + 1) * sizeof *fd->locks);
		fd->locks[fd->nlocks++] = l;
	}
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
			rc = classify_object(o, pid, num, link, info, fd->tty_rdev, md, e);
		}
		if (rc == 0)
			rc = collect_locks(fd, pid, num, &fd->objects[id], info, e);
		free(info);
	}
	free(nums);
	close(pidfd);
	return rc;
}

int dump_files(const struct freeze *f, struct files_dump *fd, struct mem_dump *md, uint64_t tty_rdev, int relay,
	       struct err *e)
{
	memset(fd, 0, sizeof *fd);
	fd->tty_rdev = tty_rdev;
	fd->relay = relay;
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

int write_locks(const struct files_dump *fd, struct image_writer *w, struct err *e)
{
	if (fd->nlocks == 0)
		return 0;
	struct buf b;
	buf_init(&b);
	buf_u32(&b, (uint32_t)fd->nlocks);
	for (int i = 0; i < fd->nlocks; i++) {
		const struct vos_lock_rec *l = &fd->locks[i];
		buf_u32(&b, l->kind);
		buf_u32(&b, l->type);
		buf_i32(&b, l->pid);
		buf_u32(&b, l->object);
		buf_u64(&b, l->start);
		buf_u64(&b, l->end);
	}
	int rc = iw_record1(w, VOS_REC_LOCKS, b.data, b.len, e);
	buf_free(&b);
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
	free(fd->locks);
	memset(fd, 0, sizeof *fd);
}
