/*
 * One restoring process, from its creation (with its own pid) to the jump into the blob:
 * session and process group (in step with the others, through the sync page), its children,
 * its fds at their numbers, working directory, limits and signal handlers; then blob-plan.c
 * lays out the blob's plan and jumps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "restore.h"
#include "vos-image.h"

static void restore_fail_v(struct restore_ctx *c, const char *path, const char *fmt, va_list ap) __attribute__((noreturn));
static void restore_fail_v(struct restore_ctx *c, const char *path, const char *fmt, va_list ap)
{
	struct restore_sync *s = c->sync;
	if (__atomic_exchange_n(&s->failed, 1, __ATOMIC_SEQ_CST) == 0) {
		vsnprintf(s->fail_text, sizeof s->fail_text, fmt, ap);
		/* A path too long for the field is left out rather than cut (a wrong path misleads). */
		if (path && strlen(path) < sizeof s->fail_path)
			strcpy(s->fail_path, path);
		s->fail_pid = getpid();
	}
	syscall(SYS_futex, &s->prepared, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
	_exit(1);
}

void restore_fail(struct restore_ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	restore_fail_v(c, NULL, fmt, ap);
}

void restore_fail_path(struct restore_ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	restore_fail_v(c, path, fmt, ap);
}

/* Waits until pod init publishes stage `want` (or gives up on the restore). */
static void wait_stage(struct restore_ctx *c, uint32_t want)
{
	for (;;) {
		uint32_t stage = __atomic_load_n(&c->sync->stage, __ATOMIC_SEQ_CST);
		if (stage == STAGE_ABORT)
			_exit(1);
		if (stage >= want)
			return;
		struct timespec ts = {1, 0};
		syscall(SYS_futex, &c->sync->stage, FUTEX_WAIT, stage, &ts, NULL, 0);
	}
}

static void count(uint32_t *field)
{
	__atomic_add_fetch(field, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, field, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

static int object_index(struct restore_ctx *c, uint32_t id)
{
	for (int i = 0; i < c->img.nobjects; i++)
		if (c->img.objects[i].id == id)
			return i;
	return -1;
}

static int max_fd(const struct img_process *p)
{
	int m = 2;
	for (uint32_t i = 0; i < p->nfds; i++)
		if (p->fds[i].fd > m)
			m = p->fds[i].fd;
	return m;
}

/* A descriptor the blob needs, above every fd number of the process. */
static int keep(struct restore_ctx *c, int fd, int above)
{
	int k = fcntl(fd, F_DUPFD_CLOEXEC, above);
	if (k < 0)
		restore_fail(c, "process %d: out of file descriptors: %s", (int)getpid(), strerror(errno));
	return k;
}

static int is_kept(int fd, const int *kept, int nkept)
{
	for (int i = 0; i < nkept; i++)
		if (kept[i] == fd)
			return 1;
	return 0;
}

static void place_fds(struct restore_ctx *c, struct img_process *p, const int *kept, int nkept)
{
	for (uint32_t i = 0; i < p->nfds; i++) {
		int idx = object_index(c, p->fds[i].object);
		if (idx >= 0 && c->object_fd[idx] == OBJECT_OPENED_LATER) {
			/* Its /proc/PID/ exists now (this process's own, or one made before it). A
			 * description shared with another process becomes one of its own in each. */
			struct err e;
			int fd = open_file_object(&c->img.objects[idx], &e);
			if (fd < 0)
				restore_fail(c, "process %d: %s", (int)p->pid, e.msg);
			if (fd != p->fds[i].fd && (dup2(fd, p->fds[i].fd) < 0 || close(fd) < 0))
				restore_fail(c, "process %d: cannot place fd %d: %s", (int)p->pid, p->fds[i].fd, strerror(errno));
			if (p->fds[i].cloexec)
				fcntl(p->fds[i].fd, F_SETFD, FD_CLOEXEC);
			continue;
		}
		if (idx < 0 || c->object_fd[idx] < 0)
			restore_fail(c, "process %d: fd %d refers to an unknown open file", (int)p->pid, p->fds[i].fd);
		if (dup2(c->object_fd[idx], p->fds[i].fd) < 0)
			restore_fail(c, "process %d: cannot place fd %d: %s", (int)p->pid, p->fds[i].fd, strerror(errno));
		if (p->fds[i].cloexec)
			fcntl(p->fds[i].fd, F_SETFD, FD_CLOEXEC);
	}
	/* Everything else goes: pod init's own descriptors, the object table. */
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		restore_fail(c, "cannot list /proc/self/fd: %s", strerror(errno));
	int dfd = dirfd(d);
	int *close_list = NULL, n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		int fd = atoi(de->d_name);
		if (fd == dfd || is_kept(fd, kept, nkept))
			continue;
		int mine = 0;
		for (uint32_t i = 0; i < p->nfds; i++)
			mine |= p->fds[i].fd == fd;
		if (!mine) {
			close_list = xrealloc(close_list, (size_t)(n + 1) * sizeof *close_list);
			close_list[n++] = fd;
		}
	}
	closedir(d);
	for (int i = 0; i < n; i++)
		close(close_list[i]);
	free(close_list);
}

static void restore_epoll(struct restore_ctx *c, struct img_process *p)
{
	for (uint32_t i = 0; i < p->nfds; i++) {
		int idx = object_index(c, p->fds[i].object);
		struct img_object *o = &c->img.objects[idx];
		if (o->kind != VOS_OBJ_EPOLL || o->owner != p->pid || o->nepoll == 0)
			continue;
		for (uint32_t k = 0; k < o->nepoll; k++) {
			struct epoll_event ev = {.events = o->epoll[k].events, .data.u64 = o->epoll[k].data};
			if (epoll_ctl(p->fds[i].fd, EPOLL_CTL_ADD, o->epoll[k].tfd, &ev) < 0 && errno != EEXIST && errno != EBADF)
				restore_fail(c, "process %d: cannot watch fd %d again with epoll: %s", (int)p->pid,
					     o->epoll[k].tfd, strerror(errno));
		}
		o->nepoll = 0; /* once, even when several fds of this process share the epoll */
	}
}

struct kernel_sigaction {
	uint64_t handler, flags, restorer, mask;
};

static void restore_process_state(struct restore_ctx *c, struct img_process *p)
{
	if (chdir(p->cwd) < 0)
		restore_fail_path(c, p->cwd, "process %d (%s): its working directory %s is missing here: %s", (int)p->pid, p->comm, p->cwd,
			     strerror(errno));
	umask((mode_t)p->umask);
	for (uint32_t r = 0; r < p->nrlimits; r++) {
		struct rlimit rl = {p->rlimits[r][0], p->rlimits[r][1]};
		setrlimit((__rlimit_resource_t)r, &rl); /* raising a hard limit needs privilege: then keep ours */
	}
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	/* No alternate signal stack of ours may stay. One inherited from pod init (AddressSanitizer's,
	 * in the sanitizer build) was still there in the restored program (the signal frame's
	 * rt_sigreturn did not replace it), pointing at memory that is gone: the first handler run
	 * on it (python3's readline, SIGWINCH with SA_ONSTACK) crashed the program. Without it, each
	 * thread's own comes back from its signal frame (tested with a program that has one). */
	stack_t none = {.ss_sp = NULL, .ss_flags = SS_DISABLE, .ss_size = 0};
	if (sigaltstack(&none, NULL) < 0)
		restore_fail(c, "process %d: cannot drop the restorer's signal stack: %s", (int)p->pid, strerror(errno));
	for (int sig = 1; sig < 65; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		struct kernel_sigaction ka = {p->sigactions[sig][0], p->sigactions[sig][1], p->sigactions[sig][2],
					      p->sigactions[sig][3]};
		if (syscall(SYS_rt_sigaction, sig, &ka, NULL, 8) < 0 && sig < 32)
			restore_fail(c, "process %d: cannot restore the handler of signal %d: %s", (int)p->pid, sig,
				     strerror(errno));
	}
	if (p->no_new_privs)
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	prctl(PR_SET_NAME, p->comm, 0, 0, 0);
}

/* The pod pty that is this session's controlling terminal (its slave in the object table). */
static int inner_tty_fd(struct restore_ctx *c, int32_t index)
{
	for (int i = 0; i < c->img.nobjects; i++)
		if (c->img.objects[i].kind == VOS_OBJ_PTY_SLAVE && (int64_t)c->img.objects[i].p[0] == index)
			return c->object_fd[i];
	return -1;
}

void restore_process(struct restore_ctx *c, struct img_process *p)
{
	if (p->sid == p->pid && setsid() < 0)
		restore_fail(c, "process %d: setsid: %s", (int)p->pid, strerror(errno));
	int inner = p->sid == p->pid && p->inner_tty >= 0 ? inner_tty_fd(c, p->inner_tty) : -1;
	if (inner >= 0 && ioctl(inner, TIOCSCTTY, 0) < 0)
		restore_fail(c, "process %d: cannot take its terminal back: %s", (int)p->pid, strerror(errno));
	create_children(c, p->pid);
	count(&c->sync->created);
	wait_stage(c, STAGE_GROUP_LEADERS);
	if (p->pgid == p->pid && getpgrp() != p->pid && setpgid(0, 0) < 0)
		restore_fail(c, "process %d: setpgid: %s", (int)p->pid, strerror(errno));
	count(&c->sync->leaders);
	wait_stage(c, STAGE_GROUP_MEMBERS);
	if (p->pgid != p->pid && getpgrp() != p->pgid && setpgid(0, p->pgid) < 0)
		restore_fail(c, "process %d: cannot join process group %d: %s", (int)p->pid, (int)p->pgid, strerror(errno));
	count(&c->sync->members);
	wait_stage(c, STAGE_PREPARE);
	if (inner >= 0 && p->inner_fg > 0) {
		/* Every group exists now: the job that had this terminal gets it back. */
		sigset_t ttou, old;
		sigemptyset(&ttou);
		sigaddset(&ttou, SIGTTOU);
		sigprocmask(SIG_BLOCK, &ttou, &old);
		if (tcsetpgrp(inner, p->inner_fg) < 0)
			restore_fail(c, "process %d: cannot give its terminal to group %d: %s", (int)p->pid, (int)p->inner_fg,
				     strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
	}

	/* Descriptors the blob needs, moved above the process's own fd numbers. */
	int above = max_fd(p) + 1;
	int *area_fd = xmalloc((size_t)(p->nvmas + 1) * sizeof *area_fd);
	int *kept = xmalloc((size_t)(p->nvmas + 3 + VOS_MAX_CHAIN) * sizeof *kept);
	int nkept = 0;
	int image_fd = keep(c, c->img.fd, above);
	kept[nkept++] = image_fd;
	for (int k = 0; k < c->nparents; k++) {
		c->parent_fd[k] = keep(c, c->parents[k].fd, above);
		kept[nkept++] = c->parent_fd[k];
	}
	for (uint32_t i = 0; i < p->nvmas; i++) {
		const struct img_vma *v = &p->vmas[i];
		area_fd[i] = -1;
		int src = -1;
		if (v->kind == VOS_VMA_FILE)
			src = c->file_fd[v->file_id];
		else if (v->kind == VOS_VMA_SHMEM)
			src = (int)v->file_id < c->img.nshms ? c->shm_fd[v->file_id] : -1;
		if (v->kind == VOS_VMA_SHARED_FILE) {
			const char *path = v->path;
			int opened = open(path, ((v->prot & PROT_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
			if (opened < 0)
				restore_fail_path(c, path, "process %d: cannot map %s again: %s", (int)p->pid, path, strerror(errno));
			area_fd[i] = keep(c, opened, above);
			close(opened);
		} else if (src >= 0) {
			area_fd[i] = keep(c, src, above);
		} else if (v->kind == VOS_VMA_SHMEM || v->kind == VOS_VMA_FILE) {
			restore_fail(c, "process %d: the content of %s is missing from the image", (int)p->pid, v->path);
		}
		if (area_fd[i] >= 0)
			kept[nkept++] = area_fd[i];
	}
	int exe_fd = -1;
	if (p->exe[0]) {
		int fd = open(p->exe, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			exe_fd = keep(c, fd, above);
			close(fd);
			kept[nkept++] = exe_fd;
		}
	}
	place_fds(c, p, kept, nkept);
	restore_epoll(c, p);
	restore_process_state(c, p);
	build_and_jump(c, p, image_fd, exe_fd, area_fd, &c->runs[p - c->img.procs]);
}
