/* The process tree of a restore: every process recreated with its own pid by its own parent. */
#include <errno.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "restore.h"

pid_t fork_with_pid(pid_t pid, struct err *e)
{
	struct clone_args args;
	memset(&args, 0, sizeof args);
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)(uintptr_t)&pid;
	args.set_tid_size = 1;
	long r = syscall(SYS_clone3, &args, sizeof args);
	if (r < 0) {
		if (errno == EEXIST)
			return fail(e, "cannot recreate process %d: that pid is taken", (int)pid);
		return fail(e, "cannot recreate process %d: %s", (int)pid, strerror(errno));
	}
	return (pid_t)r;
}

static int is_root(const struct image *img, const struct img_process *p)
{
	return p->ppid <= 1 || !image_process((struct image *)img, p->ppid);
}

void create_children(struct restore_ctx *c, pid_t parent)
{
	struct image *img = &c->img;
	for (int i = 0; i < img->nprocs; i++) {
		struct img_process *p = &img->procs[i];
		int mine = parent == 1 ? is_root(img, p) : p->ppid == parent;
		if (!mine)
			continue;
		struct err e;
		pid_t pid = fork_with_pid(p->pid, &e);
		if (pid < 0)
			restore_fail(c, "%s", e.msg);
		if (pid == 0)
			restore_process(c, p);
	}
	for (int i = 0; i < img->nzombies; i++) {
		struct img_zombie *z = &img->zombies[i];
		int mine = parent == 1 ? (z->ppid <= 1 || !image_process(img, z->ppid)) : z->ppid == parent;
		if (!mine)
			continue;
		struct err e;
		pid_t pid = fork_with_pid(z->pid, &e);
		if (pid < 0)
			restore_fail(c, "%s", e.msg);
		if (pid == 0)
			_exit(z->status & 0xff); /* an ended child its parent has not collected yet */
	}
}

int wait_count(struct restore_ctx *c, uint32_t *field, uint32_t n, int timeout_ms, struct err *e)
{
	int64_t deadline = now_monotonic_us() + (int64_t)timeout_ms * 1000;
	for (;;) {
		struct restore_sync *s = c->sync;
		if (__atomic_load_n(&s->failed, __ATOMIC_SEQ_CST)) {
			if (s->fail_text[0]) {
				fail(e, "%s", s->fail_text);
				/* Written by a restored process: a string only if it ends within its field. */
				if (s->fail_path[0] && memchr(s->fail_path, 0, sizeof s->fail_path))
					err_path(e, s->fail_path);
				return -1;
			}
			static const char *steps[] = {"?", "removing the restorer's memory", "moving the vdso",
						      "mapping memory", "reading memory from the image", "protecting memory",
						      "setting the memory layout (prctl PR_SET_MM)", "starting a thread",
						      "restoring signals", "restoring POSIX timers (this kernel cannot choose timer ids)",
						      "giving memory the advice it had (madvise)", "moving pages sent ahead into place (mremap)", "taking a file lock again"};
			if (s->fail_step == STEP_LOCK && s->fail_addr < c->img.nlocks)
				return lock_unavailable(e, &c->img, &c->img.locks[s->fail_addr], (int)s->fail_errno);
			int step = s->fail_step >= 0 && s->fail_step < (int)ARRAY_LEN(steps) ? s->fail_step : 0;
			return fail(e, "restoring process %d failed while %s at %#llx: %s", (int)s->fail_pid, steps[step],
				    (unsigned long long)s->fail_addr, strerror((int)s->fail_errno));
		}
		uint32_t v = __atomic_load_n(field, __ATOMIC_SEQ_CST);
		if (v >= n)
			return 0;
		if (now_monotonic_us() > deadline)
			return fail(e, "the restore stalled (%u of %u processes ready)", v, n);
		struct timespec ts = {0, 100 * 1000 * 1000};
		syscall(SYS_futex, field, FUTEX_WAIT, v, &ts, NULL, 0);
	}
}
