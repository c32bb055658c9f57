/*
 * An inotify instance (VOS_OBJ_INOTIFY), recreated in pod init with every watch at the number
 * the program knows.
 *
 * A new instance numbers its watches upwards from 1 and never reuses a removed number, so the
 * watches are added again by path in number order; a number the image lacks (the program had
 * removed that watch) is taken by a stand-in watch on a memfd of ours and removed at once. Each
 * number the kernel gives is checked: a different one fails the restore, naming the path. A
 * watched path that is gone fails the restore with the path.
 *
 * Events the program had not read, and changes made while it was not running, are not lost: the
 * stand-ins' IN_IGNORED events (and anything else queued while the watches were being added) are
 * read and dropped, and then every watch whose file changed since the checkpoint (another file
 * at the path, another size, mtime or ctime), or every watch when events were still queued at
 * the checkpoint, gets a real event from the kernel: setting the file's mtime to the value it
 * has raises IN_MODIFY, setting both times to theirs raises IN_ATTRIB, opening and closing it
 * raises IN_OPEN and IN_CLOSE_NOWRITE; the first the watch's mask takes is used (IN_ATTRIB
 * first for a directory). Only the file's ctime changes. A changed file on which no such event
 * can be raised is named in the restore's note (restoreNote), never on the program's screen.
 * See ARCHITECTURE.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/buf.h"
#include "restore.h"
#include "vos-image.h"

/* The mask bits a watch may carry (what inotify_add_watch takes, without IN_MASK_ADD/CREATE). */
#define WATCH_BITS (IN_ALL_EVENTS | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_ONESHOT)
#define DRAIN_EVERY 4096 /* stand-ins removed between two drains (the queue holds 16384 by default) */

int inotify_watches_read(const struct img_object *o, const void *data, size_t len, struct img_watch **out,
			 uint32_t *count, struct err *e)
{
	struct reader r;
	reader_init(&r, data, len);
	uint32_t n = rd_u32(&r);
	if (r.bad || n != o->p[1] || n > VOS_MAX_INOTIFY_WATCHES)
		return fail(e, "inotify object %u lists %u watches, not %llu", o->id, n, (unsigned long long)o->p[1]);
	struct img_watch *ws = xcalloc((size_t)n + 1, sizeof *ws);
	for (uint32_t i = 0; i < n; i++) {
		struct img_watch *w = &ws[i];
		w->wd = rd_i32(&r);
		w->mask = rd_u32(&r);
		w->flags = rd_u32(&r);
		rd_u32(&r);
		w->dev = rd_u64(&r);
		w->ino = rd_u64(&r);
		w->size = rd_u64(&r);
		w->mtime = rd_i64(&r);
		w->ctime = rd_i64(&r);
		rd_str(&r, w->path, sizeof w->path);
		if (r.bad || w->wd < 1 || w->wd > VOS_MAX_INOTIFY_WD || (i > 0 && w->wd <= ws[i - 1].wd) ||
		    (w->mask & ~(uint32_t)WATCH_BITS) || !(w->mask & IN_ALL_EVENTS) || w->path[0] != '/' ||
		    (w->flags & ~VOS_INOTIFY_NO_FOLLOW)) {
			free(ws);
			return fail(e, "watch %u of inotify object %u is malformed", i, o->id);
		}
	}
	if (reader_left(&r) != 0) {
		free(ws);
		return fail(e, "inotify object %u has bytes after its watches", o->id);
	}
	*out = ws;
	*count = n;
	return 0;
}

/* Reads and drops whatever the instance has queued (it is non-blocking here). */
static int drain(int fd, struct err *e)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		return fail(e, "cannot read a new inotify instance: %s", n < 0 ? strerror(errno) : "end of file");
	}
}

/* Takes watch number `want` with a stand-in and gives it up. */
static int skip_wd(int fd, const char *standin, int want, struct err *e)
{
	int wd = inotify_add_watch(fd, standin, IN_DELETE_SELF);
	if (wd < 0)
		return fail(e, "cannot add a stand-in inotify watch: %s", strerror(errno));
	if (inotify_rm_watch(fd, wd) < 0)
		return fail(e, "cannot remove a stand-in inotify watch: %s", strerror(errno));
	if (wd != want)
		return fail(e, "a new inotify instance gave watch %d where %d was due", wd, want);
	return 0;
}

static int add_watches(int fd, const struct img_watch *ws, uint32_t n, struct err *e)
{
	int standin_fd = -1, next = 1, skipped = 0, rc = 0;
	char standin[64];
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		const struct img_watch *w = &ws[i];
		while (next < w->wd && rc == 0) {
			if (standin_fd < 0) {
				standin_fd = memfd_create("vos-inotify-standin", MFD_CLOEXEC);
				if (standin_fd < 0) {
					rc = fail(e, "memfd_create: %s", strerror(errno));
					break;
				}
				snprintf(standin, sizeof standin, "/proc/self/fd/%d", standin_fd);
			}
			rc = skip_wd(fd, standin, next++, e);
			if (rc == 0 && ++skipped % DRAIN_EVERY == 0)
				rc = drain(fd, e);
		}
		if (rc < 0)
			break;
		uint32_t mask = w->mask | ((w->flags & VOS_INOTIFY_NO_FOLLOW) ? IN_DONT_FOLLOW : 0);
		int wd = inotify_add_watch(fd, w->path, mask);
		if (wd < 0) {
			if (errno == ENOENT)
				fail_code(e, "not_found", "%s, which a program watches with inotify, is gone", w->path);
			else
				fail(e, "cannot watch %s with inotify again: %s", w->path, strerror(errno));
			rc = err_path(e, w->path);
		} else if (wd != w->wd) {
			fail(e, "watching %s with inotify again gave watch %d, where the program knows it as %d", w->path, wd,
			     (int)w->wd);
			rc = err_path(e, w->path);
		}
		next = w->wd + 1;
	}
	if (standin_fd >= 0)
		close(standin_fd);
	return rc;
}

static int64_t ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* A real event on w's file, of a kind its mask takes (see the head of this file); 1 if one was
 * raised, 0 if none could be. */
static int raise_event(const struct img_watch *w, const struct stat *st)
{
	int flags = (w->flags & VOS_INOTIFY_NO_FOLLOW) ? AT_SYMLINK_NOFOLLOW : 0;
	const struct timespec mtime_only[2] = {{0, UTIME_OMIT}, st->st_mtim};
	const struct timespec both[2] = {st->st_atim, st->st_mtim};
	int dir = S_ISDIR(st->st_mode);
	if (!dir && (w->mask & IN_MODIFY) && utimensat(AT_FDCWD, w->path, mtime_only, flags) == 0)
		return 1;
	if ((w->mask & IN_ATTRIB) && utimensat(AT_FDCWD, w->path, both, flags) == 0)
		return 1;
	if (dir && (w->mask & IN_MODIFY) && utimensat(AT_FDCWD, w->path, mtime_only, flags) == 0)
		return 1;
	if ((w->mask & (IN_OPEN | IN_CLOSE_NOWRITE)) && !S_ISLNK(st->st_mode)) {
		int fd = open(w->path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			return 1;
		}
	}
	return 0;
}

static void catch_up(struct restore_ctx *c, const struct img_object *o, const struct img_watch *ws, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct img_watch *w = &ws[i];
		struct stat st;
		int rc = (w->flags & VOS_INOTIFY_NO_FOLLOW) ? lstat(w->path, &st) : stat(w->path, &st);
		if (rc < 0)
			continue; /* gone since it was watched again: the kernel reports that itself */
		int changed = (uint64_t)st.st_dev != w->dev || (uint64_t)st.st_ino != w->ino || (uint64_t)st.st_size != w->size ||
			      ns_of(&st.st_mtim) != w->mtime || ns_of(&st.st_ctim) != w->ctime;
		if (!changed && o->p[0] == 0)
			continue;
		if (!raise_event(w, &st))
			restore_note(c, "%.600s changed while the program was not running, and no event its inotify "
					"watch takes could be raised for it: the program was not told",
				     w->path);
	}
}

int inotify_object(struct restore_ctx *c, const struct img_object *o, const void *data, size_t len, struct err *e)
{
	struct img_watch *ws = NULL;
	uint32_t n = 0;
	if (o->p[1] > 0 && inotify_watches_read(o, data, len, &ws, &n, e) < 0)
		return fail_ctx(e, "the image is damaged: ");
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0) {
		free(ws);
		return fail(e, "inotify_init1: %s", strerror(errno));
	}
	int rc = add_watches(fd, ws, n, e);
	if (rc == 0)
		rc = drain(fd, e);
	if (rc == 0) {
		catch_up(c, o, ws, n);
		if (!(o->flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
			rc = fail(e, "cannot make an inotify instance blocking: %s", strerror(errno));
	}
	free(ws);
	if (rc < 0) {
		close(fd);
		return -1;
	}
	return fd;
}
