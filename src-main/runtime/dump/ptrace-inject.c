/*
 * Running system calls inside a process stopped from outside (see ptrace-inject.h). A call is
 * made by pointing a stopped thread's registers at a `syscall` instruction of the process's
 * vDSO and letting it run to the call's exit (PTRACE_SYSCALL twice); its answer is in rax. The
 * thread's own registers are put back when it is released.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ptrace-frame.h"
#include "ptrace-inject.h"
#include "vos-control.h"

/* How many times a thread may take a signal before it stops for us (each one is delivered). */
#define MAX_SIGNAL_STOPS 64

static int is_event_stop(int status)
{
	return WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP;
}

/* Seizes thread tid and brings it to a ptrace stop. A signal that reaches it first is handed
 * on (delivered as it would have been) and the stop asked for again. 0; 1 if the thread is gone;
 * -1 (e), the thread let go. */
/* Thread tid has exited since it was listed (a zombie now, or gone): the kernel answers a
 * ptrace request for a task that has exited with EPERM, which is then no refusal. */
static int thread_exited(pid_t tid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
	char *text = read_text_file(path, NULL);
	if (!text)
		return errno == ENOENT || errno == ESRCH;
	const char *close = strrchr(text, ')');
	int exited = close && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X');
	free(text);
	return exited;
}

static int seize_thread(pid_t pid, pid_t tid, struct err *e)
{
	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)PTRACE_O_TRACESYSGOOD) < 0) {
		int err = errno;
		if (err == ESRCH || (err == EPERM && thread_exited(tid)))
			return 1; /* it ended meanwhile (a loop's short sleep): the next listing sees it as a zombie */
		errno = err;
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
	if (!d) {
		int err = errno;
		fail(e, "cannot list the threads of process %d: %s", (int)pid, strerror(err));
		errno = err;
		return -1;
	}
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
			return errno == ENOENT || errno == ESRCH ? 1 : -1; /* it ended meanwhile */
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

/* Waits for thread tid's next system-call stop. A notification stop on the way (a SIGCONT sent
 * to the process reaches a seized tracee as one, even blocked: TIOCNOTTY sends one) is let go. */
static int wait_syscall_stop(pid_t tid, struct err *e)
{
	for (int notices = 0;; notices++) {
		int status;
		if (waitpid(tid, &status, __WALL) != tid)
			return fail(e, "waiting for thread %d: %s", (int)tid, strerror(errno));
		if (WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80))
			return 0;
		if (!is_event_stop(status) || notices >= MAX_SIGNAL_STOPS)
			return fail(e, "thread %d stopped unexpectedly (status %#x) during a system call run in it", (int)tid,
				    (unsigned)status);
		if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
			return fail(e, "cannot run a system call in thread %d: %s", (int)tid, strerror(errno));
	}
}

/* Runs system call nr with args in thread th; its result (-errno on failure) in *ret. */
int inject_syscall(struct ptrace_proc *pp, struct traced_thread *th, long nr, const long args[6], long *ret,
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

int inject_call(struct ptrace_proc *pp, struct traced_thread *th, long nr, long a0, long a1, long a2, long a3, long *ret,
		 struct err *e)
{
	const long args[6] = {a0, a1, a2, a3, 0, 0};
	return inject_syscall(pp, th, nr, args, ret, e);
}

int inject_read(pid_t pid, uint64_t at, void *out, size_t len, struct err *e)
{
	struct iovec local = {out, len}, remote = {(void *)(uintptr_t)at, len};
	if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
		return fail(e, "cannot read the memory of process %d: %s", (int)pid, strerror(errno));
	return 0;
}

int inject_write(pid_t pid, uint64_t at, const void *data, size_t len, struct err *e)
{
	struct iovec local = {(void *)data, len}, remote = {(void *)(uintptr_t)at, len};
	if (process_vm_writev(pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
		return fail(e, "cannot write the memory of process %d: %s", (int)pid, strerror(errno));
	return 0;
}

/* The registers a thread that ran injected calls continues with: those it was stopped with, an
 * interrupted call made again as the kernel would have (its own restart record is still valid
 * here), and no restart on the way out of our last call. */
static void resume_regs(struct user_regs_struct *r)
{
	ptrace_frame_restart_live(r);
	r->orig_rax = (unsigned long long)-1;
}


/* Registers and signal mask of each thread; then every signal blocked. */
static int read_threads(struct ptrace_proc *pp, struct err *e)
{
	for (int i = 0; i < pp->n; i++) {
		struct traced_thread *th = &pp->t[i];
		if (ptrace(PTRACE_GETREGS, th->tid, 0, &th->regs) < 0 ||
		    ptrace(PTRACE_GETSIGMASK, th->tid, (void *)sizeof th->sigmask, &th->sigmask) < 0)
			return fail(e, "cannot read the state of thread %d of process %d: %s", (int)th->tid, (int)pp->pid,
				    strerror(errno));
		uint64_t all = ~0ull;
		if (ptrace(PTRACE_SETSIGMASK, th->tid, (void *)sizeof all, &all) < 0)
			return fail(e, "cannot block the signals of thread %d: %s", (int)th->tid, strerror(errno));
		th->masked = 1;
	}
	return 0;
}

int inject_seize(struct ptrace_proc *pp, pid_t pid, struct err *e)
{
	memset(pp, 0, sizeof *pp);
	pp->pid = pid;
	int rc = seize_all(pp, e);
	if (rc != 0)
		return rc;
	return read_threads(pp, e) < 0 || find_syscall_insn(pp, e) < 0 ? -1 : 0;
}

void inject_release(struct ptrace_proc *pp)
{
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
	free(pp->t);
	pp->t = NULL;
	pp->n = 0;
}
