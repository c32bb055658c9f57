/*
 * The checkpoint barrier: every process of the pod stops with all its threads parked in the
 * runtime's signal handler (lib/stop.c), and acknowledges with the address of its control
 * block. Processes that appear meanwhile (a fork during the freeze) are stopped too, until the
 * set is stable. A child between vfork (or clone with CLONE_VM) and exec is left running until
 * it has exec'd or exited: parked, it would hold its parent in vfork forever (dash runs every
 * command that way). A process that exits before it answers becomes a zombie of the pod (its
 * parent is stopped) and is recorded as one. A process without the runtime (a Go or static
 * program) is stopped from outside with ptrace instead (ptrace-dump.c); one that can be stopped
 * neither way (traced by another, sandboxed) makes the whole checkpoint fail, naming it; then and
 * on any other failure every process already stopped is released.
 */
#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../init/pod.h"
#include "dump.h"

#define ACK_TIMEOUT_MS 5000
/* How often the wait for acknowledgements looks whether an awaited process has exited. */
#define ACK_SLICE_MS 20
/* How long a child may stay between vfork and exec before the freeze gives up on it. */
#define VFORK_WAIT_MS 2000

static int queue(pid_t pid, int value)
{
	union sigval v;
	v.sival_int = value;
	return sigqueue(pid, VOS_SIGNAL, v);
}

static struct frozen *find(struct freeze *f, pid_t pid)
{
	for (int i = 0; i < f->nprocs; i++)
		if (f->procs[i].pid == pid)
			return &f->procs[i];
	return NULL;
}

static int is_zombie_known(struct freeze *f, pid_t pid)
{
	for (int i = 0; i < f->nzombies; i++)
		if (f->zombies[i].pid == pid)
			return 1;
	return 0;
}

static int read_control(struct frozen *fz, struct err *e)
{
	fz->ctl = xmalloc(sizeof *fz->ctl);
	struct iovec local = {fz->ctl, sizeof *fz->ctl};
	struct iovec remote = {(void *)(uintptr_t)fz->ctl_addr, sizeof *fz->ctl};
	ssize_t n = process_vm_readv(fz->pid, &local, 1, &remote, 1, 0);
	if (n != (ssize_t)sizeof *fz->ctl)
		return fail(e, "cannot read the runtime state of process %d: %s", (int)fz->pid,
			    n < 0 ? strerror(errno) : "short read");
	if (fz->ctl->magic != VOS_CONTROL_MAGIC || fz->ctl->version != VOS_CONTROL_VERSION)
		return fail_code(e, "unsupported", "process %d runs another version of the vOS runtime", (int)fz->pid);
	return 0;
}

/* What each thread of pid is blocked in, before the stop interrupts it. */
static void note_blocked_calls(struct freeze *f, pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		char sp[96];
		snprintf(sp, sizeof sp, "/proc/%d/task/%d/syscall", (int)pid, atoi(de->d_name));
		char *text = read_text_file(sp, NULL);
		if (!text)
			continue;
		long long nr;
		unsigned long long a[6], stack, pc;
		if (sscanf(text, "%lld %llx %llx %llx %llx %llx %llx %llx %llx", &nr, &a[0], &a[1], &a[2], &a[3], &a[4], &a[5],
			   &stack, &pc) == 9 &&
		    nr >= 0) {
			f->calls = xrealloc(f->calls, (size_t)(f->ncalls + 1) * sizeof *f->calls);
			f->calls[f->ncalls++] = (struct blocked_call){pid, (pid_t)atoi(de->d_name), nr, pc};
		}
		free(text);
	}
	closedir(d);
}

/* A child that still shares its parent's memory: between vfork (or clone with CLONE_VM) and
 * exec. Not one to park (its parent waits in vfork until it execs or exits). */
static int borrows_parent_memory(pid_t pid, pid_t ppid)
{
	return ppid > 1 && syscall(SYS_kcmp, pid, ppid, KCMP_VM, 0, 0) == 0;
}

static void add_zombie(struct freeze *f, const struct proc_stat *st)
{
	f->zombies = xrealloc(f->zombies, (size_t)(f->nzombies + 1) * sizeof *f->zombies);
	f->zombies[f->nzombies++] = (struct zombie){st->pid, st->ppid, st->pgid, st->sid, 0};
}

/* An awaited process that will never answer: it exited (a zombie now, recorded as one, or
 * reaped already). Taken out of procs[]; 1 if so. */
static int drop_if_ended(struct freeze *f, int i)
{
	struct proc_stat st;
	struct err ignore;
	int gone = read_proc_stat(f->procs[i].pid, &st, &ignore) < 0;
	if (!gone && st.state != 'Z')
		return 0;
	if (!gone)
		add_zombie(f, &st);
	free(f->procs[i].ctl);
	memmove(&f->procs[i], &f->procs[i + 1], (size_t)(f->nprocs - i - 1) * sizeof *f->procs);
	f->nprocs--;
	return 1;
}

/*
 * A process the runtime cannot stop now may be one that has just exec'd, whose runtime has not
 * started yet (a shell's `stty`, seen on a loaded machine), one on its way out (its memory,
 * and so the runtime, already released: a loop's short `sleep`), or a short-lived sandboxed one
 * (man's formatters, which end within a second). While one of these holds, it is looked at
 * again every 20 ms for up to STOPPABLE_WAIT_MS. Then: how it is stopped (by its runtime, also
 * when it has ended meanwhile; from outside with ptrace: a Go or static program), or refused
 * (why: the reason).
 */
#define STOPPABLE_WAIT_MS 2000
#define TASK_EXITING 0x4 /* PF_EXITING in /proc/PID/stat's flags */
static enum stop_method settle(pid_t pid, char *why, size_t size)
{
	for (int waited = 0;; waited += 20) {
		struct proc_stat st;
		struct err ignore;
		if (read_proc_stat(pid, &st, &ignore) < 0 || st.state == 'Z')
			return STOP_BY_RUNTIME; /* gone: stop_new finds it so */
		enum stop_method m = stop_method_of(pid, why, size);
		if (m == STOP_BY_RUNTIME)
			return m;
		int passing = (st.flags & TASK_EXITING) || runtime_on_its_way(pid) ||
			      (m == STOP_REFUSED && in_seccomp_sandbox(pid));
		if (waited >= STOPPABLE_WAIT_MS || !passing)
			return m;
		usleep(20 * 1000);
	}
}

#define WHY_LEN 1024
/* Before any of them is signaled: how each process in pids[] not stopped yet is to be stopped
 * (how[i], why[i]), or the checkpoint is refused at once with the reason. */
static int check_stoppable(struct freeze *f, pid_t *pids, int n, enum stop_method *how, char (*why)[WHY_LEN],
			   struct err *e)
{
	for (int i = 0; i < n; i++) {
		pid_t pid = pids[i];
		how[i] = STOP_BY_RUNTIME;
		if (find(f, pid) || is_zombie_known(f, pid))
			continue;
		struct proc_stat st;
		struct err ignore;
		if (read_proc_stat(pid, &st, &ignore) < 0 || st.state == 'Z' || borrows_parent_memory(pid, st.ppid))
			continue; /* gone, a zombie, or between vfork and exec: stop_new handles them */
		if (same_identity(pid, e) < 0)
			return -1;
		if (st.state == 'T') {
			/* Its runtime cannot answer until it is continued, and a restore would not stop it. */
			char who[128];
			return fail_code(e, "unsupported",
					 "cannot checkpoint: %s is stopped (Ctrl-Z or SIGSTOP), which vOS cannot carry yet; "
					 "continue it (fg or bg) first",
					 describe_pid(pid, who, sizeof who));
		}
		how[i] = settle(pid, why[i], WHY_LEN);
		if (how[i] == STOP_REFUSED)
			return fail_code(e, "unsupported", "cannot checkpoint: %s", why[i]);
	}
	return 0;
}

/* Stops process pid from outside (ptrace-dump.c): added to procs, stopped when this returns 0. */
static int stop_by_ptrace(struct freeze *f, pid_t pid, const char *why, struct err *e)
{
	f->procs = xrealloc(f->procs, (size_t)(f->nprocs + 1) * sizeof *f->procs);
	struct frozen *fz = &f->procs[f->nprocs++];
	memset(fz, 0, sizeof *fz);
	fz->pid = pid;
	snprintf(fz->why_pt, sizeof fz->why_pt, "%.*s", (int)sizeof fz->why_pt - 1, why);
	int rc = ptrace_stop_process(pid, fz, e);
	if (rc < 0) {
		char who[128];
		return fail_ctx(e, "stopping %s from outside (%s)", describe_pid(pid, who, sizeof who), why);
	}
	if (rc == 1) { /* it ended meanwhile: the next listing finds what is left of it */
		ptrace_proc_free(fz);
		free(fz->ctl);
		f->nprocs--;
	}
	return 0;
}

/*
 * A process that did not answer the stop signal in time may have exec'd a program without the
 * runtime since it was looked at, or replaced the runtime's handler of the stop signal with its
 * own (a raw rt_sigaction, which the runtime cannot see). Either is stopped from outside. One
 * whose handler is still the runtime's is not (its runtime is slow or stuck, and threads it
 * parked would wait for a resume no restore sends): the checkpoint fails as before. 0 when
 * stopped; 1 if it has ended; -1 (e).
 */
static int stop_late(struct frozen *fz, struct err *e)
{
	char who[128], why[WHY_LEN];
	describe_pid(fz->pid, who, sizeof who);
	enum stop_method m = stop_method_of(fz->pid, why, sizeof why);
	if (m == STOP_REFUSED)
		return fail_code(e, "unsupported", "cannot checkpoint: %s", why);
	if (m == STOP_BY_RUNTIME)
		snprintf(why, sizeof why, "its own handler replaced the runtime's for vOS's stop signal");
	snprintf(fz->why_pt, sizeof fz->why_pt, "%.*s", (int)sizeof fz->why_pt - 1, why);
	int rc = ptrace_stop_process(fz->pid, fz, e);
	if (rc != 0)
		return rc < 0 ? fail_ctx(e, "stopping %s from outside (%s)", who, why) : 1;
	if (m == STOP_BY_RUNTIME && runtime_mapped_at(fz->pid, fz->ctl->sigactions[VOS_SIGNAL].handler)) {
		ptrace_resume_process(fz);
		ptrace_proc_free(fz);
		free(fz->ctl);
		fz->ctl = NULL;
		return fail(e, "cannot checkpoint: %s did not stop within %d s", who, ACK_TIMEOUT_MS / 1000);
	}
	return 0;
}

/* Checks how each new process of pids[] is to be stopped and stops those the runtime cannot
 * (ptrace); -1 (e) if one cannot be stopped at all. */
static int stop_outside_runtime(struct freeze *f, pid_t *pids, int n, struct err *e)
{
	enum stop_method *how = xcalloc((size_t)n + 1, sizeof *how);
	char(*why)[WHY_LEN] = xcalloc((size_t)n + 1, WHY_LEN);
	int rc = check_stoppable(f, pids, n, how, why, e);
	for (int i = 0; i < n && rc == 0; i++)
		if (how[i] == STOP_BY_PTRACE && !find(f, pids[i]))
			rc = stop_by_ptrace(f, pids[i], why[i], e);
	free(how);
	free(why);
	return rc;
}

/* Stops the processes in pids[] that are not stopped yet; 0 when all acknowledged. A child
 * between vfork and exec is left to run and counted in *unsettled. */
static int stop_new(struct pod *pod, struct freeze *f, pid_t *pids, int n, int *unsettled, struct err *e)
{
	int waiting = 0;
	*unsettled = 0;
	if (stop_outside_runtime(f, pids, n, e) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		pid_t pid = pids[i];
		if (find(f, pid) || is_zombie_known(f, pid))
			continue;
		struct proc_stat st;
		struct err ignore;
		if (read_proc_stat(pid, &st, &ignore) < 0)
			continue; /* gone */
		if (st.state == 'Z') {
			add_zombie(f, &st);
			continue;
		}
		if (borrows_parent_memory(pid, st.ppid)) {
			(*unsettled)++;
			continue;
		}
		note_blocked_calls(f, pid);
		if (queue(pid, VOS_CMD(f->round, VOS_CMD_STOP)) < 0) {
			if (errno == ESRCH)
				continue;
			return fail(e, "cannot signal process %d: %s", (int)pid, strerror(errno));
		}
		f->procs = xrealloc(f->procs, (size_t)(f->nprocs + 1) * sizeof *f->procs);
		f->procs[f->nprocs++] = (struct frozen){.pid = pid};
		waiting++;
	}
	int64_t deadline = now_monotonic_us() + ACK_TIMEOUT_MS * 1000LL;
	while (waiting > 0) {
		int left = (int)((deadline - now_monotonic_us()) / 1000);
		struct signalfd_siginfo si;
		int rc = left > 0 ? pod_next_signal(pod, VOS_SIGNAL, &si, left < ACK_SLICE_MS ? left : ACK_SLICE_MS) : 0;
		if (rc < 0)
			return fail(e, "waiting for the pod's processes: %s", strerror(errno));
		if (rc == 0 && left > 0) {
			/* A quiet slice: an awaited process that exited meanwhile never answers. */
			for (int i = f->nprocs - 1; i >= 0; i--)
				if (!f->procs[i].ctl_addr && !f->procs[i].pt && drop_if_ended(f, i))
					waiting--;
			continue;
		}
		if (rc == 0) {
			/* Those that did not answer: stopped from outside if they can be. */
			for (int i = f->nprocs - 1; i >= 0; i--) {
				if (f->procs[i].ctl_addr || f->procs[i].pt)
					continue;
				int late = stop_late(&f->procs[i], e);
				if (late < 0)
					return -1;
				if (late == 1)
					ptrace_proc_free(&f->procs[i]);
				if (late == 1 && !drop_if_ended(f, i))
					return fail(e, "cannot checkpoint: process %d ended while being stopped", (int)f->procs[i].pid);
				waiting--;
			}
			continue;
		}
		if (si.ssi_code != SI_QUEUE)
			continue;
		struct frozen *fz = find(f, (pid_t)si.ssi_pid);
		if (!fz || fz->ctl_addr || fz->pt)
			continue;
		fz->ctl_addr = si.ssi_ptr;
		waiting--;
	}
	return 0;
}

/* Drops processes that exited while we were stopping the others (their ack never comes). */
static void forget_gone(struct freeze *f)
{
	int j = 0;
	for (int i = 0; i < f->nprocs; i++) {
		if (kill(f->procs[i].pid, 0) == 0 || errno != ESRCH) {
			f->procs[j++] = f->procs[i];
		} else {
			ptrace_proc_free(&f->procs[i]);
			free(f->procs[i].ctl);
		}
	}
	f->nprocs = j;
}

/* The threads the runtime could not park: stopped from here, added to the thread list. */
static int stop_skipped_threads(struct freeze *f, struct frozen *fz, struct err *e)
{
	struct vos_control *c = fz->ctl;
	uint64_t ctid_offset = c->nthreads && c->threads[0].clear_child_tid
				       ? c->threads[0].clear_child_tid - c->threads[0].fs_base
				       : 0;
	for (uint32_t i = 0; i < c->nskipped && i < VOS_MAX_SKIPPED; i++) {
		if (c->nthreads >= VOS_MAX_THREADS)
			return fail(e, "process %d has too many threads", (int)fz->pid);
		if (ptrace_thread(fz->pid, c->skipped[i], ctid_offset, &c->threads[c->nthreads], e) < 0)
			return -1;
		c->nthreads++;
		f->traced = xrealloc(f->traced, (size_t)(f->ntraced + 1) * sizeof *f->traced);
		f->traced[f->ntraced++] = c->skipped[i];
	}
	return 0;
}

/*
 * The stop must be invisible to the program. A thread stopped while blocked in a system call
 * that a handled signal interrupts for good (poll, nanosleep, epoll_wait, sigtimedwait...) would
 * return EINTR, which many programs do not expect (util-linux's script gives up on it), and one
 * whose call the kernel would continue with restart_syscall would, after a restore, find the
 * kernel's record of it gone. So each such frame is changed to make the same call again (the
 * arguments are still in its registers; a timeout starts over). Which call a thread was in is
 * known from /proc before the stop.
 */
#define FRAME_RAX_OFFSET (40 + 13 * 8) /* ucontext: flags, link, stack_t, then sigcontext's ax */
#define FRAME_RIP_OFFSET (40 + 16 * 8)
#define NEG_EINTR ((uint64_t)-4)
static void fix_restart_frames(struct freeze *f)
{
	for (int i = 0; i < f->nprocs; i++) {
		struct frozen *fz = &f->procs[i];
		for (uint32_t t = 0; t < fz->ctl->nthreads; t++) {
			const struct vos_thread_rec *th = &fz->ctl->threads[t];
			uint64_t regs[2]; /* rax, rip */
			struct iovec local[2] = {{&regs[0], 8}, {&regs[1], 8}};
			struct iovec remote[2] = {{(void *)(uintptr_t)(th->frame + FRAME_RAX_OFFSET), 8},
						  {(void *)(uintptr_t)(th->frame + FRAME_RIP_OFFSET), 8}};
			if (process_vm_readv(fz->pid, local, 2, remote, 2, 0) != 16)
				continue;
			for (int k = 0; k < f->ncalls; k++) {
				const struct blocked_call *bc = &f->calls[k];
				if (bc->pid != fz->pid || bc->tid != th->tid)
					continue;
				uint64_t fixed[2] = {(uint64_t)bc->nr, regs[1]};
				if (regs[0] == NEG_EINTR && bc->pc == regs[1])
					fixed[1] = regs[1] - 2; /* back onto the syscall instruction */
				else if (!(regs[0] == SYS_restart_syscall && bc->pc == regs[1] + 2))
					break;
				struct iovec l[2] = {{&fixed[0], 8}, {&fixed[1], 8}};
				process_vm_writev(fz->pid, l, 2, remote, 2, 0);
				break;
			}
		}
	}
}

int freeze_pod(struct pod *pod, struct freeze *f, struct err *e)
{
	memset(f, 0, sizeof *f);
	f->round = ++pod->round;
	int64_t vfork_deadline = 0;
	for (int pass = 0; pass < 20; pass++) {
		pid_t *pids;
		int n, unsettled;
		if (list_pod_pids(&pids, &n, e) < 0)
			goto failed;
		int before = f->nprocs + f->nzombies;
		int rc = stop_new(pod, f, pids, n, &unsettled, e);
		free(pids);
		if (rc < 0)
			goto failed;
		forget_gone(f);
		if (unsettled > 0) {
			/* A child on its way from vfork to exec: look again once it got there, without
			 * counting this as a pass (it usually takes microseconds). */
			int64_t now = now_monotonic_us();
			if (!vfork_deadline)
				vfork_deadline = now + VFORK_WAIT_MS * 1000LL;
			if (now > vfork_deadline) {
				fail(e, "cannot checkpoint: a process stays between vfork and exec for more than %d s",
				     VFORK_WAIT_MS / 1000);
				goto failed;
			}
			usleep(1000);
			pass--;
			continue;
		}
		if (f->nprocs + f->nzombies == before && pass > 0)
			break;
	}
	if (f->nprocs == 0) {
		fail(e, "the session's program has ended: nothing to checkpoint");
		goto failed;
	}
	for (int i = 0; i < f->nprocs; i++) {
		if (f->procs[i].pt)
			continue; /* its control block is ours, filled from outside */
		if (read_control(&f->procs[i], e) < 0)
			goto failed;
		if (f->procs[i].ctl->state == VOS_STATE_FAILED) {
			char who[128];
			fail(e, "cannot checkpoint %s: %s", describe_pid(f->procs[i].pid, who, sizeof who),
			     f->procs[i].ctl->error[0] ? f->procs[i].ctl->error : "its runtime could not stop it");
			goto failed;
		}
		if (stop_skipped_threads(f, &f->procs[i], e) < 0)
			goto failed;
	}
	fix_restart_frames(f);
	f->frozen_at_us = now_monotonic_us();
	return 0;
failed:
	thaw_pod(f);
	freeze_free(f);
	return -1;
}

int freeze_take_uffd(struct pod *pod, struct freeze *f, struct frozen *fz, struct err *e)
{
	if (fz->pt)
		return ptrace_take_uffd(fz, e);
	if (queue(fz->pid, VOS_CMD(f->round, VOS_CMD_UFFD)) < 0)
		return fail(e, "cannot signal process %d: %s", (int)fz->pid, strerror(errno));
	int64_t deadline = now_monotonic_us() + ACK_TIMEOUT_MS * 1000LL;
	for (;;) {
		int left = (int)((deadline - now_monotonic_us()) / 1000);
		struct signalfd_siginfo si;
		int rc = left > 0 ? pod_next_signal(pod, VOS_SIGNAL, &si, left) : 0;
		if (rc < 0)
			return fail(e, "waiting for process %d: %s", (int)fz->pid, strerror(errno));
		if (rc == 0)
			return fail(e, "process %d did not answer for its userfaultfd", (int)fz->pid);
		if (si.ssi_code == SI_QUEUE && (pid_t)si.ssi_pid == fz->pid)
			break;
	}
	int32_t uffd;
	struct iovec local = {&uffd, sizeof uffd};
	struct iovec remote = {(void *)(uintptr_t)(fz->ctl_addr + offsetof(struct vos_control, uffd)), sizeof uffd};
	if (process_vm_readv(fz->pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof uffd)
		return fail(e, "cannot read the runtime state of process %d: %s", (int)fz->pid, strerror(errno));
	if (uffd < 0)
		return fail(e, "process %d cannot make a userfaultfd: %s", (int)fz->pid, strerror(-uffd));
	int pidfd = (int)syscall(SYS_pidfd_open, fz->pid, 0);
	if (pidfd < 0)
		return fail(e, "cannot open process %d (pidfd_open): %s", (int)fz->pid, strerror(errno));
	int fd = (int)syscall(SYS_pidfd_getfd, pidfd, uffd, 0);
	int err = errno;
	close(pidfd);
	if (fd < 0)
		return fail(e, "cannot take the userfaultfd of process %d (pidfd_getfd): %s", (int)fz->pid, strerror(err));
	return fd;
}

void thaw_pod(struct freeze *f)
{
	for (int i = 0; i < f->ntraced; i++)
		ptrace_release(f->traced[i]);
	f->ntraced = 0;
	/* The pod is frozen until its last process is told to run: the time is taken before that
	 * signal, since waking it may hand it our CPU at once (on a busy machine pod init then waits
	 * its turn while the program runs). */
	f->resumed_at_us = now_monotonic_us();
	for (int i = 0; i < f->nprocs; i++) {
		if (i == f->nprocs - 1)
			f->resumed_at_us = now_monotonic_us();
		if (f->procs[i].pt)
			ptrace_resume_process(&f->procs[i]);
		else
			queue(f->procs[i].pid, VOS_CMD(f->round, VOS_CMD_RESUME));
	}
}

void freeze_free(struct freeze *f)
{
	for (int i = 0; i < f->nprocs; i++) {
		ptrace_proc_free(&f->procs[i]);
		free(f->procs[i].ctl);
	}
	free(f->procs);
	free(f->zombies);
	free(f->traced);
	free(f->calls);
	memset(f, 0, sizeof *f);
}
