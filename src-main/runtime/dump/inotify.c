/*
 * An inotify instance of the pod (VOS_OBJ_INOTIFY): its watches, each with the path it watches.
 *
 * The kernel shows a watch in fdinfo only by (device, inode) and a file handle; turning a handle
 * back into a file (open_by_handle_at) needs CAP_DAC_READ_SEARCH in the initial namespace, which
 * pod init does not have. So the path is found among the names the owning process already
 * holds: its open files, working directory, root, executable and mapped files, the directory of
 * each, and the entries of every such directory (and of every watched directory found so far),
 * repeated while new watches are found. A watch found nowhere refuses the checkpoint, naming it.
 *
 * Per watch the payload also keeps what the restore compares to cause an event for a change made
 * while the program was not running: the file's identity, size, mtime and ctime. The object's
 * p[0] is the bytes of events queued and not read yet (FIONREAD; they are left to the program),
 * p[1] the number of watches. Format: docs/image-format.md.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dump.h"
#include "objects.h"
#include "vos-image.h"

#define MAX_DIR_ENTRIES 4096 /* entries looked at per directory */

struct watch {
	int32_t wd;
	uint32_t mask;
	uint64_t kdev; /* the kernel's encoding (major << 20 | minor), as fdinfo shows it */
	uint64_t ino;
	int found;
	int no_follow; /* the path is a symbolic link, and the watch is on the link itself */
	char path[4096];
	struct stat st;
};

struct names {
	char **paths;
	int n;
};

static void names_add(struct names *ns, const char *p)
{
	if (p[0] != '/')
		return;
	for (int i = 0; i < ns->n; i++)
		if (strcmp(ns->paths[i], p) == 0)
			return;
	ns->paths = xrealloc(ns->paths, (size_t)(ns->n + 1) * sizeof *ns->paths);
	ns->paths[ns->n++] = xstrdup(p);
}

/* A path and its directory. */
static void names_add_with_dir(struct names *ns, const char *p)
{
	if (p[0] != '/' || strstr(p, " (deleted)"))
		return;
	names_add(ns, p);
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", p);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		names_add(ns, dir);
	} else if (slash) {
		names_add(ns, "/");
	}
}

static int parse_watches(const char *info, struct watch **ws, int *n)
{
	for (const char *line = info; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned wd, sdev, mask;
		unsigned long ino;
		if (sscanf(line, "inotify wd:%x ino:%lx sdev:%x mask:%x", &wd, &ino, &sdev, &mask) != 4)
			continue;
		*ws = xrealloc(*ws, (size_t)(*n + 1) * sizeof **ws);
		struct watch *w = &(*ws)[(*n)++];
		memset(w, 0, sizeof *w);
		w->wd = (int32_t)wd;
		w->mask = mask & (IN_ALL_EVENTS | IN_EXCL_UNLINK | IN_ONESHOT); /* older kernels show internal bits */
		w->kdev = sdev;
		w->ino = ino;
	}
	return 0;
}

static int same_inode(const struct watch *w, const struct stat *st)
{
	return st->st_ino == w->ino && major(st->st_dev) == (w->kdev >> 20) && minor(st->st_dev) == (w->kdev & 0xfffff);
}

/* Gives path to every watch on its inode not found yet; the number it was given to. */
static int try_path(struct watch *ws, int n, const char *path)
{
	struct stat st, lst;
	int have = stat(path, &st) == 0, lhave = lstat(path, &lst) == 0;
	int hits = 0;
	for (int i = 0; i < n; i++) {
		struct watch *w = &ws[i];
		if (w->found)
			continue;
		if (have && same_inode(w, &st)) {
			w->st = st;
		} else if (lhave && S_ISLNK(lst.st_mode) && same_inode(w, &lst)) {
			w->st = lst;
			w->no_follow = 1;
		} else {
			continue;
		}
		snprintf(w->path, sizeof w->path, "%s", path);
		w->found = 1;
		hits++;
	}
	return hits;
}

static int try_dir_entries(struct watch *ws, int n, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int hits = 0, seen = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL && seen++ < MAX_DIR_ENTRIES) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char p[4096];
		int len = snprintf(p, sizeof p, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, de->d_name);
		if (len <= 0 || (size_t)len >= sizeof p)
			continue;
		hits += try_path(ws, n, p);
	}
	closedir(d);
	return hits;
}

/* The names process pid holds: open files, cwd, root, executable, mapped files (and their
 * directories). */
static void held_names(pid_t pid, struct names *ns)
{
	char p[96], link[4096];
	static const char *self[] = {"cwd", "root", "exe"};
	for (size_t i = 0; i < ARRAY_LEN(self); i++) {
		snprintf(p, sizeof p, "/proc/%d/%s", (int)pid, self[i]);
		if (read_link(p, link, sizeof link) > 0)
			names_add_with_dir(ns, link);
	}
	snprintf(p, sizeof p, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(p);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			char fp[128];
			snprintf(fp, sizeof fp, "/proc/%d/fd/%.20s", (int)pid, de->d_name);
			if (read_link(fp, link, sizeof link) > 0)
				names_add_with_dir(ns, link);
		}
		closedir(d);
	}
	snprintf(p, sizeof p, "/proc/%d/maps", (int)pid);
	char *maps = read_text_file(p, NULL);
	for (char *line = maps; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		char *slash = strchr(line, '/');
		if (slash)
			names_add_with_dir(ns, slash);
		line = end ? end + 1 : NULL;
	}
	free(maps);
}

static void find_paths(pid_t pid, struct watch *ws, int n)
{
	struct names ns = {0};
	held_names(pid, &ns);
	int left = n;
	for (int i = 0; i < ns.n && left > 0; i++)
		left -= try_path(ws, n, ns.paths[i]);
	/* Entries of the directories held and of the watched directories found, until no new one. */
	int *listed = xcalloc((size_t)n, sizeof *listed);
	for (int i = 0; i < ns.n && left > 0; i++) {
		struct stat st;
		if (stat(ns.paths[i], &st) == 0 && S_ISDIR(st.st_mode))
			left -= try_dir_entries(ws, n, ns.paths[i]);
	}
	for (int progress = 1; progress && left > 0;) {
		progress = 0;
		for (int i = 0; i < n && left > 0; i++) {
			if (!ws[i].found || listed[i] || !S_ISDIR(ws[i].st.st_mode))
				continue;
			listed[i] = 1;
			int hits = try_dir_entries(ws, n, ws[i].path);
			left -= hits;
			progress = 1;
		}
	}
	free(listed);
	for (int i = 0; i < ns.n; i++)
		free(ns.paths[i]);
	free(ns.paths);
}

static int cmp_wd(const void *a, const void *b)
{
	const struct watch *x = a, *y = b;
	return (x->wd > y->wd) - (x->wd < y->wd);
}

static int64_t ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

int classify_inotify(struct object *o, pid_t pid, int fd, const char *info, struct err *e)
{
	struct watch *ws = NULL;
	int n = 0;
	parse_watches(info, &ws, &n);
	qsort(ws, (size_t)n, sizeof *ws, cmp_wd);
	find_paths(pid, ws, n);
	for (int i = 0; i < n; i++) {
		if (ws[i].found)
			continue;
		int rc = fail_code(e, "unsupported",
				   "process %d watches a file with inotify (fd %d, watch %d: device %u:%u, inode %llu) that vOS "
				   "cannot find by name among the files, directories and mappings the process holds (a deleted "
				   "file, or one the process names only by path)",
				   (int)pid, fd, (int)ws[i].wd, (unsigned)(ws[i].kdev >> 20), (unsigned)(ws[i].kdev & 0xfffff),
				   (unsigned long long)ws[i].ino);
		free(ws);
		return rc;
	}
	int pending = 0;
	if (ioctl(o->dup, FIONREAD, &pending) < 0) {
		int rc = fail(e, "cannot look at the inotify queue of process %d (fd %d): %s", (int)pid, fd, strerror(errno));
		free(ws);
		return rc;
	}
	o->kind = VOS_OBJ_INOTIFY;
	o->p[0] = pending > 0 ? (uint64_t)pending : 0;
	o->p[1] = (uint64_t)n;
	buf_u32(&o->data, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		const struct watch *w = &ws[i];
		buf_i32(&o->data, w->wd);
		buf_u32(&o->data, w->mask);
		buf_u32(&o->data, w->no_follow ? VOS_INOTIFY_NO_FOLLOW : 0);
		buf_u32(&o->data, 0);
		buf_u64(&o->data, (uint64_t)w->st.st_dev);
		buf_u64(&o->data, (uint64_t)w->st.st_ino);
		buf_u64(&o->data, (uint64_t)w->st.st_size);
		buf_i64(&o->data, ns_of(&w->st.st_mtim));
		buf_i64(&o->data, ns_of(&w->st.st_ctim));
		buf_str(&o->data, w->path);
	}
	o->has_data = 1;
	free(ws);
	return 0;
}
