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
/* How many times a thread may take a signal before it stops for us (each one is delivered). */
#define MAX_SIGNAL_STOPS 64

struct traced_thread {
	pid_t tid;
	struct user_regs_struct regs;  /* as stopped */
	struct user_regs_struct frame; /* as a restore resumes it: an interrupted call made again */
	uint64_t sigmask;              /* its blocked signals before we blocked them all */
	int masked;                    /* all its signals blocked by us (sigmask to put back) */
	int in_syscall_stop;           /* stopped at a system call's exit by an injected call */
};

struct ptrace_proc {
	pid_t pid;
	struct traced_thread *t;
	int n;
	uint64_t syscall_at; /* an executable `syscall` instruction (0f 05) in the process */
	uint64_t scratch, scratch_len;
	uint32_t slot;       /* bytes per thread in the scratch mapping */
};

static int is_event_stop(int status)
{
	return WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP;
}

/* Seizes thread tid and brings it to a ptrace stop. A signal that reaches it first is handed
 * on (delivered as it would have been) and the stop asked for again. 0; 1 if the thread is gone;
 * -1 (e), the thread let go. */
static int seize_thread(pid_t pid, pid_t tid, struct err *e)
{
	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)PTRACE_O_TRACESYSGOOD) < 0) {
		if (errno == ESRCH)
			return 1;
		if (errno == EPERM)
			return fail_code(e, "unsupported",
					 "cannot stop process %d from outside (ptrace: %s): the kernel forbids tracing it "
					 "(kernel.yama.ptrace_scope 3, or another tracer took it)",
					 (int)pid, strerror(errno));
		return fail(e, "cannot stop thread %d of process %d (ptrace): %s", (int)tid, (int)pid, strerror(errno));
	}
	for (int signals = 0;; signals++) {
		if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 && errno != ESRCH) {
			int err = errno;
			ptrace(PTRACE_DETACH, tid, 0, 0);
			return fail(e, "cannot stop thread %d of process %d: %s", (int)tid, (int)pid, strerror(err));
		}
		int status;
		if (waitpid(tid, &status, __WALL) != tid) {
			int err = errno;
			ptrace(PTRACE_DETACH, tid, 0, 0);
			return fail(e, "waiting for thread %d of process %d: %s", (int)tid, (int)pid, strerror(err));
		}
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return 1;
		if (is_event_stop(status) && WSTOPSIG(status) != SIGTRAP) {
			/* A group stop (job control) caught after it was looked at: it stays stopped. */
			ptrace(PTRACE_DETACH, tid, 0, 0);
			return fail_code(e, "unsupported",
					 "process %d is stopped (Ctrl-Z or SIGSTOP), which vOS cannot carry yet; continue it "
					 "(fg or bg) first",
					 (int)pid);
		}
		if (is_event_stop(status))
			return 0;
		if (signals >= MAX_SIGNAL_STOPS) {
			ptrace(PTRACE_DETACH, tid, 0, (void *)(long)WSTOPSIG(status));
			return fail(e, "thread %d of process %d keeps taking signals and does not stop", (int)tid, (int)pid);
		}
		/* A signal-delivery stop: let the signal be delivered, then ask again. */
		if (ptrace(PTRACE_CONT, tid, 0, (void *)(long)WSTOPSIG(status)) < 0 && errno != ESRCH)
			return fail(e, "cannot resume thread %d of process %d: %s", (int)tid, (int)pid, strerror(errno));
	}
}

/* The threads of pid, from /proc/PID/task. */
static int list_threads(pid_t pid, pid_t **out, int *n, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return fail(e, "cannot list the threads of process %d: %s", (int)pid, strerror(errno));
	*out = NULL;
	*n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		*out = xrealloc(*out, (size_t)(*n + 1) * sizeof **out);
		(*out)[(*n)++] = (pid_t)atoi(de->d_name);
	}
	closedir(d);
	return 0;
}

static int known_thread(const struct ptrace_proc *pp, pid_t tid)
{
	for (int i = 0; i < pp->n; i++)
		if (pp->t[i].tid == tid)
			return 1;
	return 0;
}

/* Stops every thread, listing them again until a listing finds none new (a running thread may
 * have made one meanwhile). */
static int seize_all(struct ptrace_proc *pp, struct err *e)
{
	for (int pass = 0; pass < 100; pass++) {
		pid_t *tids = NULL;
		int n;
		if (list_threads(pp->pid, &tids, &n, e) < 0)
			return -1;
		int added = 0;
		for (int i = 0; i < n; i++) {
			if (known_thread(pp, tids[i]))
				continue;
			if (pp->n >= VOS_MAX_THREADS) {
				free(tids);
				return fail_code(e, "unsupported", "process %d has more than %d threads", (int)pp->pid, VOS_MAX_THREADS);
			}
			int rc = seize_thread(pp->pid, tids[i], e);
			if (rc < 0) {
				free(tids);
				return -1;
			}
			if (rc == 1)
				continue;
			pp->t = xrealloc(pp->t, (size_t)(pp->n + 1) * sizeof *pp->t);
			memset(&pp->t[pp->n], 0, sizeof pp->t[pp->n]);
			pp->t[pp->n++].tid = tids[i];
			added++;
		}
		free(tids);
		if (!added)
			return pp->n > 0 ? 0 : 1;
	}
	return fail(e, "process %d keeps making threads while it is being stopped", (int)pp->pid);
}

/* An executable `syscall` instruction of the process: in its vDSO (every x86-64 vDSO has the
 * system call fallbacks of its functions). */
static int find_syscall_insn(struct ptrace_proc *pp, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pp->pid);
	char *maps = read_text_file(path, NULL);
	if (!maps)
		return fail(e, "cannot read %s: %s", path, strerror(errno));
	unsigned long long start = 0, end = 0;
	for (char *line = maps; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		char perms[8];
		if (strstr(line, "[vdso]") && sscanf(line, "%llx-%llx %7s", &start, &end, perms) == 3 && perms[2] == 'x')
			break;
		start = end = 0;
		line = nl ? nl + 1 : NULL;
	}
	free(maps);
	if (!start || end <= start || end - start > (1 << 20))
		return fail_code(e, "unsupported", "process %d has no vDSO to run system calls through", (int)pp->pid);
	size_t len = (size_t)(end - start);
	uint8_t *code = xmalloc(len);
	struct iovec local = {code, len}, remote = {(void *)(uintptr_t)start, len};
	ssize_t got = process_vm_readv(pp->pid, &local, 1, &remote, 1, 0);
	for (ssize_t i = 0; i + 1 < got && !pp->syscall_at; i++)
		if (code[i] == 0x0f && code[i + 1] == 0x05)
			pp->syscall_at = start + (uint64_t)i;
	free(code);
	if (!pp->syscall_at)
		return fail_code(e, "unsupported", "process %d: no system call instruction found in its vDSO", (int)pp->pid);
	return 0;
}

static int wait_syscall_stop(pid_t tid, struct err *e)
{
	int status;
	if (waitpid(tid, &status, __WALL) != tid)
		return fail(e, "waiting for thread %d: %s", (int)tid, strerror(errno));
	if (!WIFSTOPPED(status) || WSTOPSIG(status) != (SIGTRAP | 0x80))
		return fail(e, "thread %d stopped unexpectedly (status %#x) during a system call made for the checkpoint",
			    (int)tid, (unsigned)status);
	return 0;
}

/* Runs system call nr with args in thread th; its result (-errno on failure) in *ret. */
static int remote_syscall(struct ptrace_proc *pp, struct traced_thread *th, long nr, const long args[6], long *ret,
			  struct err *e)
{
	struct user_regs_struct r = th->regs;
	r.rip = pp->syscall_at;
	r.rax = (unsigned long long)nr;
	r.orig_rax = (unsigned long long)-1; /* no restart of the call it was stopped in */
	r.rdi = (unsigned long long)args[0], r.rsi = (unsigned long long)args[1], r.rdx = (unsigned long long)args[2];
	r.r10 = (unsigned long long)args[3], r.r8 = (unsigned long long)args[4], r.r9 = (unsigned long long)args[5];
	if (ptrace(PTRACE_SETREGS, th->tid, 0, &r) < 0 || ptrace(PTRACE_SYSCALL, th->tid, 0, 0) < 0)
		return fail(e, "cannot run a system call in thread %d: %s", (int)th->tid, strerror(errno));
	th->in_syscall_stop = 1;
	if (wait_syscall_stop(th->tid, e) < 0)
		return -1;
	if (ptrace(PTRACE_SYSCALL, th->tid, 0, 0) < 0)
		return fail(e, "cannot run a system call in thread %d: %s", (int)th->tid, strerror(errno));
	if (wait_syscall_stop(th->tid, e) < 0)
		return -1;
	if (ptrace(PTRACE_GETREGS, th->tid, 0, &r) < 0)
		return fail(e, "cannot read the registers of thread %d: %s", (int)th->tid, strerror(errno));
	*ret = (long)r.rax;
	return 0;
}

static int rcall(struct ptrace_proc *pp, struct traced_thread *th, long nr, long a0, long a1, long a2, long a3, long *ret,
		 struct err *e)
{
	const long args[6] = {a0, a1, a2, a3, 0, 0};
	return remote_syscall(pp, th, nr, args, ret, e);
}

static int read_remote(pid_t pid, uint64_t at, void *out, size_t len, struct err *e)
{
	struct iovec local = {out, len}, remote = {(void *)(uintptr_t)at, len};
	if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
		return fail(e, "cannot read the memory of process %d: %s", (int)pid, strerror(errno));
	return 0;
}

static int write_remote(pid_t pid, uint64_t at, const void *data, size_t len, struct err *e)
{
	struct iovec local = {(void *)data, len}, remote = {(void *)(uintptr_t)at, len};
	if (process_vm_writev(pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
		return fail(e, "cannot write the memory of process %d: %s", (int)pid, strerror(errno));
	return 0;
}

/* Registers, signal mask (then all blocked), restartable sequences of each thread. */
static int read_threads(struct ptrace_proc *pp, struct err *e)
{
	for (int i = 0; i < pp->n; i++) {
		struct traced_thread *th = &pp->t[i];
		if (ptrace(PTRACE_GETREGS, th->tid, 0, &th->regs) < 0 ||
		    ptrace(PTRACE_GETSIGMASK, th->tid, (void *)sizeof th->sigmask, &th->sigmask) < 0)
			return fail(e, "cannot read the state of thread %d of process %d: %s", (int)th->tid, (int)pp->pid,
				    strerror(errno));
		struct {
			uint64_t abi_pointer;
			uint32_t abi_size, signature, flags, pad;
		} rseq = {0, 0, 0, 0, 0};
		long got = ptrace((enum __ptrace_request)PTRACE_GET_RSEQ_CONFIGURATION, th->tid, (void *)sizeof rseq, &rseq);
		if (got > 0 && rseq.abi_pointer)
			return fail_code(e, "unsupported",
					 "thread %d of process %d registered a restartable sequence (rseq) area, which a restore "
					 "cannot register again; with glibc, set GLIBC_TUNABLES=glibc.pthread.rseq=0",
					 (int)th->tid, (int)pp->pid);
		uint64_t all = ~0ull;
		if (ptrace(PTRACE_SETSIGMASK, th->tid, (void *)sizeof all, &all) < 0)
			return fail(e, "cannot block the signals of thread %d: %s", (int)th->tid, strerror(errno));
		th->masked = 1;
		th->frame = th->regs;
		ptrace_frame_restart(&th->frame);
	}
	return 0;
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
			rc = rcall(pp, th, SYS_munmap, (long)mark.start, (long)mark.len, 0, 0, &ret, e);
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
	if (remote_syscall(pp, th, SYS_mmap, map, &ret, e) < 0)
		return -1;
	if (ret < 0 && ret > -4096)
		return fail(e, "cannot map memory in process %d for its stop: %s", (int)pp->pid, strerror((int)-ret));
	pp->scratch = (uint64_t)ret;
	/* Not to be merged with a neighbour (its mark stays at the start of an area of its own). */
	const long dontfork[6] = {(long)pp->scratch, (long)pp->scratch_len, MADV_DONTFORK, 0, 0, 0};
	if (remote_syscall(pp, th, SYS_madvise, dontfork, &ret, e) < 0)
		return -1;
	struct vos_leftover_mark mark = {VOS_LEFTOVER_MAGIC, pp->scratch, pp->scratch_len};
	return write_remote(pp->pid, pp->scratch + SCRATCH_MARK_AT, &mark, sizeof mark, e);
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
		if (rcall(pp, th, SYS_rt_sigaction, sig, 0, (long)at, 8, &ret, e) < 0)
			return -1;
		if (ret < 0)
			return fail(e, "cannot read the handler of signal %d of process %d: %s", sig, (int)pp->pid,
				    strerror((int)-ret));
	}
	for (int which = 0; which < 3; which++) {
		if (rcall(pp, th, SYS_getitimer, which, (long)(pp->scratch + SCRATCH_ITIMERS_AT + (uint64_t)which * 32), 0, 0,
			  &ret, e) < 0)
			return -1;
		if (ret < 0)
			return fail(e, "cannot read the interval timers of process %d: %s", (int)pp->pid, strerror((int)-ret));
	}
	uint8_t answers[SCRATCH_ITIMERS_AT + 96];
	if (read_remote(pp->pid, pp->scratch, answers, sizeof answers, e) < 0)
		return -1;
	memcpy(c->sigactions, answers + SCRATCH_SIGACTIONS_AT, sizeof c->sigactions);
	memset(&c->sigactions[SIGKILL], 0, sizeof c->sigactions[SIGKILL]);
	memset(&c->sigactions[SIGSTOP], 0, sizeof c->sigactions[SIGSTOP]);
	memcpy(c->itimers, answers + SCRATCH_ITIMERS_AT, sizeof c->itimers);
	if (rcall(pp, th, SYS_brk, 0, 0, 0, 0, &ret, e) < 0)
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
			rc = rcall(pp, th, SYS_timer_gettime, id, (long)(pp->scratch + SCRATCH_TIMER_AT), 0, 0, &ret, e);
			if (rc == 0 && ret == 0)
				rc = read_remote(pp->pid, pp->scratch + SCRATCH_TIMER_AT, its, sizeof its, e);
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
		if (rcall(pp, th, SYS_sigaltstack, 0, (long)(slot + SLOT_ALTSTACK_AT), 0, 0, &ret, e) < 0 ||
		    rcall(pp, th, SYS_prctl, PR_GET_TID_ADDRESS, (long)(slot + SLOT_TIDADDR_AT), 0, 0, &ret, e) < 0)
			return -1;
		struct {
			uint64_t sp;
			int32_t flags, pad;
			uint64_t size;
			uint64_t pad2;
			uint64_t tid_address;
		} answers;
		if (read_remote(pp->pid, slot, &answers, sizeof answers, e) < 0)
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
	pp->pid = pid;
	fz->pt = pp;
	fz->ctl_addr = 0; /* no runtime: the image has no control block to find again */
	fz->ctl = xcalloc(1, sizeof *fz->ctl);
	struct vos_control *c = fz->ctl;
	c->magic = VOS_CONTROL_MAGIC;
	c->version = VOS_CONTROL_VERSION;
	c->state = VOS_STATE_STOPPED;
	c->uffd = -1;
	int rc = seize_all(pp, e);
	if (rc != 0)
		return rc; /* 1: it has no thread left (it ended) */
	if (read_threads(pp, e) < 0 || find_syscall_insn(pp, e) < 0)
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
	if (rcall(pp, th, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */, 0, 0, 0, &fd, e) < 0)
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
	if (rcall(pp, th, SYS_close, fd, 0, 0, 0, &ignored, e) < 0) {
		if (ours >= 0)
			close(ours);
		return -1;
	}
	if (ours < 0)
		return fail(e, "cannot take the userfaultfd of process %d (pidfd_getfd): %s", (int)pp->pid, strerror(err));
	return ours;
}

/* The registers a thread that ran injected calls continues with: those it was stopped with, an
 * interrupted call made again as the kernel would have (its own restart record is still valid
 * here), and no restart on the way out of our last call. */
static void resume_regs(struct user_regs_struct *r)
{
	ptrace_frame_restart_live(r);
	r->orig_rax = (unsigned long long)-1;
}

void ptrace_resume_process(struct frozen *fz)
{
	struct ptrace_proc *pp = fz->pt;
	if (!pp)
		return;
	struct err ignore;
	long ret;
	if (pp->scratch && pp->n > 0)
		rcall(pp, &pp->t[0], SYS_munmap, (long)pp->scratch, (long)pp->scratch_len, 0, 0, &ret, &ignore);
	pp->scratch = 0;
	for (int i = 0; i < pp->n; i++) {
		struct traced_thread *th = &pp->t[i];
		if (th->in_syscall_stop) {
			struct user_regs_struct r = th->regs;
			resume_regs(&r);
			ptrace(PTRACE_SETREGS, th->tid, 0, &r);
		}
		if (th->masked)
			ptrace(PTRACE_SETSIGMASK, th->tid, (void *)sizeof th->sigmask, &th->sigmask);
		ptrace(PTRACE_DETACH, th->tid, 0, 0);
	}
	pp->n = 0;
}

void ptrace_proc_free(struct frozen *fz)
{
	if (!fz->pt)
		return;
	free(fz->pt->t);
	free(fz->pt);
	fz->pt = NULL;
}
