/*
 * The stop that needs no injected runtime: for a process the runtime cannot park (a statically
 * linked program, a Go program, one started without the runtime), pod init stops every thread
 * from outside with ptrace (it is their ancestor and has CAP_SYS_PTRACE in the pod's user
 * namespace, so no privilege on the machine is needed) and fills the same control block the
 * runtime would have (struct vos_control), in its own memory: the image is the same.
 *
 * What only the process itself can ask the kernel (its signal handlers, interval and POSIX
 * timers, the program break, each thread's alternate signal stack and clear-child-tid address)
 * is asked by system calls run inside a stopped thread: its registers are pointed at a
 * `syscall` instruction of the process's vDSO, it runs to the call's exit (PTRACE_SYSCALL), and
 * its registers are put back. Every signal is blocked in the thread meanwhile, so none is taken
 * (and lost) by it; they stay pending and are carried like any other. Arguments and answers go
 * through a scratch mapping made in the process for the stop, which also holds each thread's
 * signal frame: a restored thread resumes by rt_sigreturn on it, as one parked by the runtime
 * does (nothing is written on the program's stacks: a goroutine's stack is small and has other
 * memory right below it). When the process runs on, the mapping is removed; a restored process
 * keeps it (and the restore's trampoline pages) until its next stop from outside finds them by
 * their mark (vos-control.h) and removes them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dump.h"
#include "ptrace-frame.h"
#include "ptrace-inject.h"

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif

/* Scratch layout: its mark (vos-control.h), then per-process answers, then one slot per thread. */
#define SCRATCH_MARK_AT 0
#define SCRATCH_SIGACTIONS_AT 64                    /* 65 x 32 bytes */
#define SCRATCH_ITIMERS_AT (64 + 65 * 32)           /* 3 x 32 bytes */
#define SCRATCH_TIMER_AT (SCRATCH_ITIMERS_AT + 96) /* one itimerspec at a time */
#define SCRATCH_HEAD 4096
/* A thread's slot: its answers (stack_t, tid address), then its signal frame. */
#define SLOT_ALTSTACK_AT 0
#define SLOT_TIDADDR_AT 32
#define SLOT_FRAME_AT 64
/*
 * What a restore needs of each thread: its registers as a restored thread resumes (an
 * interrupted call made again), and no restartable-sequence area registered (glibc registers
 * one in every thread outside a pod; a restore cannot register it again, the image format has
 * no place for it). So a registered area is unregistered, in the thread, and marked
 * "registration failed" (cpu_id -2), which glibc and other users of rseq read as "no rseq"
 * and fall back to system calls (sched_getcpu). The restored program has it so; a process that
 * runs on gets it registered again (ptrace_resume_process).
 */
#define RSEQ_FLAG_UNREGISTER 1
#define RSEQ_CPU_ID_REGISTRATION_FAILED ((uint32_t)-2)
static int prepare_threads(struct ptrace_proc *pp, struct err *e)
{
	for (int i = 0; i < pp->n; i++) {
		struct traced_thread *th = &pp->t[i];
		th->frame = th->regs;
		ptrace_frame_restart(&th->frame);
		struct {
			uint64_t abi_pointer;
			uint32_t abi_size, signature, flags, pad;
		} rseq = {0, 0, 0, 0, 0};
		long got = ptrace((enum __ptrace_request)PTRACE_GET_RSEQ_CONFIGURATION, th->tid, (void *)sizeof rseq, &rseq);
		if (got <= 0 || !rseq.abi_pointer)
			continue;
		long ret;
		if (inject_call(pp, th, SYS_rseq, (long)rseq.abi_pointer, (long)rseq.abi_size, RSEQ_FLAG_UNREGISTER,
				(long)rseq.signature, &ret, e) < 0)
			return -1;
		if (ret < 0)
			return fail(e, "cannot unregister the rseq area of thread %d of process %d: %s", (int)th->tid, (int)pp->pid,
				    strerror((int)-ret));
		th->rseq_at = rseq.abi_pointer;
		th->rseq_len = rseq.abi_size;
		th->rseq_sig = rseq.signature;
		uint32_t failed = RSEQ_CPU_ID_REGISTRATION_FAILED;
		if (inject_write(pp->pid, rseq.abi_pointer + 4 /* cpu_id */, &failed, sizeof failed, e) < 0)
			return -1;
	}
	return 0;
}

/* A process that runs on gets its rseq areas registered again (best effort: without, glibc
 * falls back to system calls). */
static void reregister_rseq(struct ptrace_proc *pp)
{
	for (int i = 0; i < pp->n; i++) {
		struct traced_thread *th = &pp->t[i];
		if (!th->rseq_at)
			continue;
		struct err ignore;
		long ret;
		inject_call(pp, th, SYS_rseq, (long)th->rseq_at, (long)th->rseq_len, 0, (long)th->rseq_sig, &ret, &ignore);
		th->rseq_at = 0;
	}
}

/* Whether anonymous read-write area [start, end) of the process begins with a leftover's mark
 * (at offset 0: a scratch mapping; 64: a trampoline's second page; see vos-control.h), in *mark. */
static int leftover_at(pid_t pid, uint64_t start, uint64_t end, struct vos_leftover_mark *mark)
{
	for (uint64_t off = 0; off <= 64; off += 64) {
		struct iovec local = {mark, sizeof *mark}, remote = {(void *)(uintptr_t)(start + off), sizeof *mark};
		if (end - start < off + sizeof *mark ||
		    process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof *mark)
			return 0;
		if (memcmp(mark->magic, VOS_LEFTOVER_MAGIC, sizeof mark->magic) == 0 && mark->start == (off ? start - PAGE : start) &&
		    mark->start % PAGE == 0 && mark->len % PAGE == 0 && mark->len > 0 && mark->len <= (1ull << 40))
			return 1;
	}
	return 0;
}

/* Removes the memory an earlier stop from outside (its scratch, where a restored process's frames
 * were) and a restore (its trampoline pages) left in the process. */
static int unmap_leftovers(struct ptrace_proc *pp, struct traced_thread *th, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pp->pid);
	char *maps = read_text_file(path, NULL);
	if (!maps)
		return fail(e, "cannot read %s: %s", path, strerror(errno));
	int rc = 0;
	for (char *line = maps; line && *line && rc == 0;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		unsigned long long start, end, inode;
		char perms[8];
		int name_at = 0;
		struct vos_leftover_mark mark;
		long ret;
		if (sscanf(line, "%llx-%llx %7s %*s %*s %llu %n", &start, &end, perms, &inode, &name_at) >= 4 &&
		    strcmp(perms, "rw-p") == 0 && inode == 0 && (!name_at || !line[name_at]) &&
		    leftover_at(pp->pid, start, end, &mark))
			rc = inject_call(pp, th, SYS_munmap, (long)mark.start, (long)mark.len, 0, 0, &ret, e);
		line = nl ? nl + 1 : NULL;
	}
	free(maps);
	return rc;
}

static int make_scratch(struct ptrace_proc *pp, struct traced_thread *th, uint32_t xsize, struct err *e)
{
	pp->slot = (uint32_t)((SLOT_FRAME_AT + ptrace_frame_size(xsize) + 63) & ~63u);
	pp->scratch_len = (SCRATCH_HEAD + (uint64_t)pp->n * pp->slot + PAGE - 1) & ~(PAGE - 1);
	const long map[6] = {0, (long)pp->scratch_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0};
	long ret;
	if (inject_syscall(pp, th, SYS_mmap, map, &ret, e) < 0)
		return -1;
	if (ret < 0 && ret > -4096)
		return fail(e, "cannot map memory in process %d for its stop: %s", (int)pp->pid, strerror((int)-ret));
	pp->scratch = (uint64_t)ret;
	/* Not to be merged with a neighbour (its mark stays at the start of an area of its own). */
	const long dontfork[6] = {(long)pp->scratch, (long)pp->scratch_len, MADV_DONTFORK, 0, 0, 0};
	if (inject_syscall(pp, th, SYS_madvise, dontfork, &ret, e) < 0)
		return -1;
	struct vos_leftover_mark mark = {VOS_LEFTOVER_MAGIC, pp->scratch, pp->scratch_len};
	return inject_write(pp->pid, pp->scratch + SCRATCH_MARK_AT, &mark, sizeof mark, e);
}

/* Signal handlers, interval timers, the program break: asked in thread th. */
static int read_process_state(struct ptrace_proc *pp, struct traced_thread *th, struct vos_control *c, struct err *e)
{
	long ret;
	/* Only the signals it catches or ignores, and SIGCHLD (whose flags matter at the default
	 * action too): every other one is at the default, with no flags that change anything; its
	 * place in the fresh scratch mapping reads as that (zeros). */
	char v[32];
	uint64_t asked = 1ull << (SIGCHLD - 1);
	if (status_field(pp->pid, "SigCgt", v, sizeof v) == 0)
		asked |= strtoull(v, NULL, 16);
	if (status_field(pp->pid, "SigIgn", v, sizeof v) == 0)
		asked |= strtoull(v, NULL, 16);
	for (int sig = 1; sig < VOS_NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || !(asked & (1ull << (sig - 1))))
			continue;
		uint64_t at = pp->scratch + SCRATCH_SIGACTIONS_AT + (uint64_t)sig * 32;
		if (inject_call(pp, th, SYS_rt_sigaction, sig, 0, (long)at, 8, &ret, e) < 0)
			return -1;
		if (ret < 0)
			return fail(e, "cannot read the handler of signal %d of process %d: %s", sig, (int)pp->pid,
				    strerror((int)-ret));
	}
	for (int which = 0; which < 3; which++) {
		if (inject_call(pp, th, SYS_getitimer, which, (long)(pp->scratch + SCRATCH_ITIMERS_AT + (uint64_t)which * 32), 0, 0,
			  &ret, e) < 0)
			return -1;
		if (ret < 0)
			return fail(e, "cannot read the interval timers of process %d: %s", (int)pp->pid, strerror((int)-ret));
	}
	uint8_t answers[SCRATCH_ITIMERS_AT + 96];
	if (inject_read(pp->pid, pp->scratch, answers, sizeof answers, e) < 0)
		return -1;
	memcpy(c->sigactions, answers + SCRATCH_SIGACTIONS_AT, sizeof c->sigactions);
	memset(&c->sigactions[SIGKILL], 0, sizeof c->sigactions[SIGKILL]);
	memset(&c->sigactions[SIGSTOP], 0, sizeof c->sigactions[SIGSTOP]);
	memcpy(c->itimers, answers + SCRATCH_ITIMERS_AT, sizeof c->itimers);
	if (inject_call(pp, th, SYS_brk, 0, 0, 0, 0, &ret, e) < 0)
		return -1;
	c->brk = (uint64_t)ret;
	return 0;
}

/* The process's POSIX timers: what /proc/PID/timers says, with timer_gettime asked in th. */
static int read_posix_timers(struct ptrace_proc *pp, struct traced_thread *th, struct vos_control *c, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/timers", (int)pp->pid);
	char *text = read_text_file(path, NULL);
	if (!text)
		return 0; /* a kernel without CONFIG_CHECKPOINT_RESTORE: none listed */
	int rc = 0;
	struct vos_posix_timer *t = NULL;
	for (char *line = text; line && *line && rc == 0;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		int id;
		if (sscanf(line, "ID: %d", &id) == 1) {
			if (c->ntimers >= VOS_MAX_TIMERS) {
				rc = fail_code(e, "unsupported", "process %d has more than %d POSIX timers", (int)pp->pid,
					       VOS_MAX_TIMERS);
				break;
			}
			t = &c->timers[c->ntimers++];
			memset(t, 0, sizeof *t);
			t->id = id;
			long ret;
			int64_t its[4];
			rc = inject_call(pp, th, SYS_timer_gettime, id, (long)(pp->scratch + SCRATCH_TIMER_AT), 0, 0, &ret, e);
			if (rc == 0 && ret == 0)
				rc = inject_read(pp->pid, pp->scratch + SCRATCH_TIMER_AT, its, sizeof its, e);
			if (rc == 0 && ret == 0) {
				t->interval_ns = its[0] * 1000000000LL + its[1];
				t->value_ns = its[2] * 1000000000LL + its[3];
			}
		} else if (t && strncmp(line, "signal:", 7) == 0) {
			char *slash;
			t->signo = (int32_t)strtol(line + 7, &slash, 10);
			if (*slash == '/')
				t->value = strtoull(slash + 1, NULL, 16);
		} else if (t && strncmp(line, "notify:", 7) == 0) {
			const char *v = line + 7;
			while (*v == ' ')
				v++;
			t->notify = v[0] == 'n' ? SIGEV_NONE : v[0] == 't' ? SIGEV_THREAD : SIGEV_SIGNAL;
			const char *slash = strchr(v, '/');
			if (slash && slash[1] == 't')
				t->notify |= SIGEV_THREAD_ID;
			const char *dot = slash ? strchr(slash, '.') : NULL;
			if (dot)
				t->target_tid = (int32_t)atoi(dot + 1);
		} else if (t && strncmp(line, "ClockID:", 8) == 0) {
			t->clock = (int32_t)atoi(line + 8);
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return rc;
}

/* Each thread's alternate stack and clear-child-tid address (asked in it), robust futex list
 * (read from outside), and its signal frame, written in its scratch slot. */
static int record_threads(struct ptrace_proc *pp, struct vos_control *c, struct err *e)
{
	for (int i = 0; i < pp->n; i++) {
		struct traced_thread *th = &pp->t[i];
		uint64_t slot = pp->scratch + SCRATCH_HEAD + (uint64_t)i * pp->slot;
		long ret;
		if (inject_call(pp, th, SYS_sigaltstack, 0, (long)(slot + SLOT_ALTSTACK_AT), 0, 0, &ret, e) < 0 ||
		    inject_call(pp, th, SYS_prctl, PR_GET_TID_ADDRESS, (long)(slot + SLOT_TIDADDR_AT), 0, 0, &ret, e) < 0)
			return -1;
		struct {
			uint64_t sp;
			int32_t flags, pad;
			uint64_t size;
			uint64_t pad2;
			uint64_t tid_address;
		} answers;
		if (inject_read(pp->pid, slot, &answers, sizeof answers, e) < 0)
			return -1;
		struct frame_altstack alt = {answers.sp, answers.flags, answers.size};
		struct vos_thread_rec *rec = &c->threads[i];
		memset(rec, 0, sizeof *rec);
		rec->tid = th->tid;
		rec->fs_base = th->regs.fs_base;
		rec->gs_base = th->regs.gs_base;
		rec->clear_child_tid = answers.tid_address;
		uint64_t head = 0;
		size_t len = 0;
		if (syscall(SYS_get_robust_list, th->tid, &head, &len) == 0) {
			rec->robust_list = head;
			rec->robust_len = len;
		}
		if (ptrace_frame_write(pp->pid, th->tid, &th->frame, th->sigmask, &alt, slot + pp->slot, &rec->frame, e) < 0)
			return -1;
		if (rec->frame < slot + SLOT_FRAME_AT)
			return fail(e, "the signal frame of thread %d does not fit its place", (int)th->tid);
	}
	c->nthreads = (uint32_t)pp->n;
	return 0;
}

int ptrace_stop_process(pid_t pid, struct frozen *fz, struct err *e)
{
	struct ptrace_proc *pp = xcalloc(1, sizeof *pp);
	fz->pt = pp;
	fz->ctl_addr = 0; /* no runtime: the image has no control block to find again */
	fz->ctl = xcalloc(1, sizeof *fz->ctl);
	struct vos_control *c = fz->ctl;
	c->magic = VOS_CONTROL_MAGIC;
	c->version = VOS_CONTROL_VERSION;
	c->state = VOS_STATE_STOPPED;
	c->uffd = -1;
	int rc = inject_seize(pp, pid, e);
	if (rc != 0)
		return rc; /* 1: it has no thread left (it ended) */
	if (prepare_threads(pp, e) < 0)
		return -1;
	int32_t xsize = ptrace_xstate_size(pp->t[0].tid);
	if (xsize < 0)
		return fail(e, "cannot read the FPU state of thread %d: %s", (int)pp->t[0].tid, strerror(errno));
	struct traced_thread *lead = &pp->t[0];
	if (unmap_leftovers(pp, lead, e) < 0 || make_scratch(pp, lead, (uint32_t)xsize, e) < 0 ||
	    read_process_state(pp, lead, c, e) < 0 || read_posix_timers(pp, lead, c, e) < 0 || record_threads(pp, c, e) < 0)
		return -1;
	return 0;
}

int ptrace_take_uffd(struct frozen *fz, struct err *e)
{
	struct ptrace_proc *pp = fz->pt;
	struct traced_thread *th = &pp->t[0];
	long fd;
	if (inject_call(pp, th, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */, 0, 0, 0, &fd, e) < 0)
		return -1;
	if (fd < 0)
		return fail(e, "process %d cannot make a userfaultfd: %s", (int)pp->pid, strerror((int)-fd));
	int ours = -1, err = 0;
	int pidfd = (int)syscall(SYS_pidfd_open, pp->pid, 0);
	if (pidfd >= 0) {
		ours = (int)syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0);
		err = errno;
		close(pidfd);
	} else {
		err = errno;
	}
	long ignored;
	if (inject_call(pp, th, SYS_close, fd, 0, 0, 0, &ignored, e) < 0) {
		if (ours >= 0)
			close(ours);
		return -1;
	}
	if (ours < 0)
		return fail(e, "cannot take the userfaultfd of process %d (pidfd_getfd): %s", (int)pp->pid, strerror(err));
	return ours;
}

void ptrace_resume_process(struct frozen *fz)
{
	struct ptrace_proc *pp = fz->pt;
	if (!pp)
		return;
	struct err ignore;
	long ret;
	if (pp->scratch && pp->n > 0)
		inject_call(pp, &pp->t[0], SYS_munmap, (long)pp->scratch, (long)pp->scratch_len, 0, 0, &ret, &ignore);
	pp->scratch = 0;
	reregister_rseq(pp);
	inject_release(pp);
}

void ptrace_proc_free(struct frozen *fz)
{
	if (!fz->pt)
		return;
	inject_release(fz->pt); /* nothing left to let go after ptrace_resume_process */
	free(fz->pt);
	fz->pt = NULL;
}
