/*
 * The stop: how a process's threads park for a checkpoint in a way that can be resumed, on this
 * machine or another. Each thread parks inside the handler for VOS_SIGNAL, so that everything
 * about it (all registers, the FPU/SSE/AVX state, its signal mask and alternate stack) sits in the
 * kernel's signal frame on its own stack. The pod init reads the rest from /proc and from the
 * process's memory while the threads are parked, and a restored thread continues with
 * rt_sigreturn on that same frame. See include/vos-control.h for the protocol.
 *
 * Everything here runs in the signal handler: raw system calls only, no libc state, no dlsym.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <asm/prctl.h>
#include <sys/types.h>

#include "libvos.h"
#include "vos-control.h"

/*
 * The control block, read (and on restore, found again) by the pod init at the address this
 * process reports in its acknowledgement. Global mutable state by design: it is the process's
 * checkpoint state, written only by the handler below.
 */
static struct vos_control ctl = {.magic = VOS_CONTROL_MAGIC, .version = VOS_CONTROL_VERSION, .uffd = -1};

/* Tids the stopping thread has asked to park in the current round (handler-only state). */
static int32_t signaled[VOS_MAX_THREADS];

/* The control block is shared between the threads of a stopping process: every access is atomic. */
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define ADD(x, v) __atomic_fetch_add(&(x), (v), __ATOMIC_SEQ_CST)

static void futex_wait(uint32_t *addr, uint32_t val, long timeout_ms)
{
	struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
	sys(SYS_futex, (long)addr, FUTEX_WAIT_PRIVATE, val, timeout_ms >= 0 ? (long)&ts : 0, 0);
}

static void futex_wake(uint32_t *addr)
{
	sys(SYS_futex, (long)addr, FUTEX_WAKE_PRIVATE, INT_MAX, 0, 0);
}

static long now_ms(void)
{
	struct timespec ts;
	sys(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, 0, 0);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Async-signal-safe decimal formatting for error messages. */
static char *put_str(char *p, char *end, const char *s)
{
	while (*s && p < end - 1)
		*p++ = *s++;
	*p = 0;
	return p;
}

static char *put_int(char *p, char *end, long v)
{
	char buf[24];
	int i = 0;
	if (v < 0) {
		p = put_str(p, end, "-");
		v = -v;
	}
	do
		buf[i++] = (char)('0' + v % 10);
	while ((v /= 10) && i < (int)sizeof buf);
	while (i > 0 && p < end - 1)
		*p++ = buf[--i];
	*p = 0;
	return p;
}

static void record_thread(struct vos_thread_rec *t, void *uc)
{
	uint64_t fs = 0, gs = 0, ctid = 0, rlen = 0;
	uint64_t rhead = 0;
	sys(SYS_arch_prctl, ARCH_GET_FS, (long)&fs, 0, 0, 0);
	sys(SYS_arch_prctl, ARCH_GET_GS, (long)&gs, 0, 0, 0);
	sys(SYS_prctl, PR_GET_TID_ADDRESS, (long)&ctid, 0, 0, 0);
	sys(SYS_get_robust_list, 0, (long)&rhead, (long)&rlen, 0, 0);
	t->tid = (int32_t)sys(SYS_gettid, 0, 0, 0, 0, 0);
	t->fs_base = fs;
	t->gs_base = gs;
	t->frame = (uint64_t)(uintptr_t)uc;
	t->clear_child_tid = ctid;
	t->robust_list = rhead;
	t->robust_len = rlen;
}

static int queue_to_thread(pid_t pid, pid_t tid, int value)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = VOS_SIGNAL;
	si.si_code = SI_QUEUE;
	si.si_pid = pid;
	si.si_uid = (uid_t)sys(SYS_getuid, 0, 0, 0, 0, 0);
	si.si_value.sival_int = value;
	return (int)sys(SYS_rt_tgsigqueueinfo, pid, tid, VOS_SIGNAL, (long)&si, 0);
}

static int already_signaled(int32_t tid, int n)
{
	for (int i = 0; i < n; i++)
		if (signaled[i] == tid)
			return 1;
	return 0;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Reads a small /proc file into buf (NUL-terminated); the length, or -1. */
static long read_small(const char *path, char *buf, long size)
{
	int fd = (int)sys(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0, 0);
	if (fd < 0)
		return -1;
	long total = 0;
	for (;;) {
		long n = sys(SYS_read, fd, (long)(buf + total), size - 1 - total, 0, 0);
		if (n <= 0)
			break;
		total += n;
		if (total >= size - 1)
			break;
	}
	sys(SYS_close, fd, 0, 0, 0, 0);
	buf[total] = 0;
	return total;
}

static const char *find_line(const char *text, const char *key)
{
	for (const char *p = text; *p;) {
		const char *k = key;
		const char *q = p;
		while (*k && *q == *k)
			q++, k++;
		if (!*k)
			return q;
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	return 0;
}

static uint64_t parse_hex(const char *p)
{
	uint64_t v = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	for (;; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
		if (d < 0)
			return v;
		v = v * 16 + (uint64_t)d;
	}
}

static int64_t parse_dec(const char **pp)
{
	const char *p = *pp;
	int64_t v = 0, sign = 1;
	while (*p == ' ')
		p++;
	if (*p == '-')
		sign = -1, p++;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (*p++ - '0');
	*pp = p;
	return v * sign;
}

/* Whether thread tid of this process keeps VOS_SIGNAL blocked. */
static int blocks_vos(int32_t tid)
{
	char path[64], text[2048];
	char *p = put_str(path, path + sizeof path, "/proc/self/task/");
	p = put_int(p, path + sizeof path, tid);
	put_str(p, path + sizeof path, "/status");
	if (read_small(path, text, sizeof text) < 0)
		return 0;
	const char *v = find_line(text, "SigBlk:");
	return v && ((parse_hex(v) >> (VOS_SIGNAL - 1)) & 1);
}

static void skip_thread(int32_t tid)
{
	for (uint32_t i = 0; i < ctl.nskipped; i++)
		if (ctl.skipped[i] == tid)
			return;
	if (ctl.nskipped < VOS_MAX_SKIPPED)
		ctl.skipped[ctl.nskipped++] = tid;
}

/* Asks every thread not asked yet to park; returns how many were asked in total, or -1.
 * Threads that keep the signal blocked are listed for pod init to stop from outside. */
static int signal_threads(pid_t pid, pid_t self, uint32_t round, int n)
{
	int fd = (int)sys(SYS_openat, AT_FDCWD, (long)"/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0);
	if (fd < 0)
		return -1;
	char buf[4096];
	for (;;) {
		long len = sys(SYS_getdents64, fd, (long)buf, sizeof buf, 0, 0);
		if (len <= 0)
			break;
		for (long off = 0; off < len;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
			off += d->d_reclen;
			if (d->d_name[0] < '0' || d->d_name[0] > '9')
				continue;
			int32_t tid = 0;
			for (const char *c = d->d_name; *c; c++)
				tid = tid * 10 + (*c - '0');
			if (tid == self || already_signaled(tid, n) || n >= VOS_MAX_THREADS)
				continue;
			if (blocks_vos(tid)) {
				skip_thread(tid);
				continue;
			}
			if (queue_to_thread(pid, tid, VOS_CMD(round, VOS_CMD_PARK)) == 0)
				signaled[n++] = tid;
		}
	}
	sys(SYS_close, fd, 0, 0, 0, 0);
	return n;
}

/* The process's POSIX timers: /proc/self/timers says what they are, timer_gettime when due. */
static void save_posix_timers(void)
{
	static char text[16384]; /* handler-only scratch: one stopping thread per process */
	if (read_small("/proc/self/timers", text, sizeof text) <= 0)
		return;
	for (const char *p = find_line(text, "ID:"); p && ctl.ntimers < VOS_MAX_TIMERS; p = find_line(p, "ID:")) {
		struct vos_posix_timer *t = &ctl.timers[ctl.ntimers];
		t->id = (int32_t)parse_dec(&p);
		const char *v = find_line(p, "signal:");
		if (!v)
			break;
		t->signo = (int32_t)parse_dec(&v);
		if (*v == '/')
			t->value = parse_hex(v + 1);
		v = find_line(p, "notify:");
		if (!v)
			break;
		while (*v == ' ')
			v++;
		t->notify = v[0] == 'n' ? SIGEV_NONE : v[0] == 't' ? SIGEV_THREAD : SIGEV_SIGNAL;
		while (*v && *v != '/')
			v++;
		if (v[0] == '/' && v[1] == 't')
			t->notify |= SIGEV_THREAD_ID;
		while (*v && *v != '.')
			v++;
		if (*v == '.') {
			v++;
			t->target_tid = (int32_t)parse_dec(&v);
		}
		v = find_line(p, "ClockID:");
		if (v)
			t->clock = (int32_t)parse_dec(&v);
		struct itimerspec its;
		if (sys(SYS_timer_gettime, t->id, (long)&its, 0, 0, 0) == 0) {
			t->interval_ns = its.it_interval.tv_sec * 1000000000LL + its.it_interval.tv_nsec;
			t->value_ns = its.it_value.tv_sec * 1000000000LL + its.it_value.tv_nsec;
		}
		ctl.ntimers++;
	}
}

static void save_process_state(void)
{
	for (int sig = 1; sig < VOS_NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		sys(SYS_rt_sigaction, sig, 0, (long)&ctl.sigactions[sig], 8, 0);
	}
	/* VOS_SIGNAL's is ours (this handler) and stays so in the image: the program's own idea of
	 * it (shadow_action) is in its memory and comes back with it. Recording the program's handler
	 * here made a restore install it, so the next checkpoint's stop signal reached the program
	 * (top then reported "signal 62 was caught" and crashed itself). */
	for (int which = 0; which < 3; which++) {
		struct itimerval it;
		if (sys(SYS_getitimer, which, (long)&it, 0, 0, 0) == 0) {
			ctl.itimers[which].interval_sec = it.it_interval.tv_sec;
			ctl.itimers[which].interval_usec = it.it_interval.tv_usec;
			ctl.itimers[which].value_sec = it.it_value.tv_sec;
			ctl.itimers[which].value_usec = it.it_value.tv_usec;
		}
	}
	ctl.brk = (uint64_t)sys(SYS_brk, 0, 0, 0, 0, 0);
	save_posix_timers();
}

/* Tells the pod init (pid 1) that this process is stopped (or failed to stop). */
static void acknowledge(pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = VOS_SIGNAL;
	si.si_code = SI_QUEUE;
	si.si_pid = pid;
	si.si_uid = (uid_t)sys(SYS_getuid, 0, 0, 0, 0, 0);
	si.si_value.sival_ptr = &ctl;
	sys(SYS_rt_sigqueueinfo, 1, VOS_SIGNAL, (long)&si, 0, 0);
}

/* Waits (all signals blocked: we are in the handler) for init to say "resume". */
static void wait_for_resume(uint32_t round)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, VOS_SIGNAL);
	for (;;) {
		siginfo_t si;
		if (sys(SYS_rt_sigtimedwait, (long)&set, (long)&si, 0, 8, 0) != VOS_SIGNAL)
			continue; /* EINTR */
		if (si.si_code != SI_QUEUE)
			continue;
		uint32_t v = (uint32_t)si.si_value.sival_int;
		if (VOS_CMD_OF(v) == VOS_CMD_RESUME && VOS_ROUND_OF(v) == round) {
			if (ctl.uffd >= 0)
				sys(SYS_close, ctl.uffd, 0, 0, 0, 0); /* init has its own copy */
			ctl.uffd = -1;
			return;
		}
		if (VOS_CMD_OF(v) == VOS_CMD_UFFD && VOS_ROUND_OF(v) == round && ctl.uffd < 0) {
			/* Live migration: a userfaultfd for this process's memory, so init can see which
			 * pages are written from now on. User-mode faults only: no privilege needed. */
			long fd = sys(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */, 0, 0, 0, 0);
			ctl.uffd = fd >= 0 ? (int32_t)fd : -errno;
			acknowledge((pid_t)sys(SYS_getpid, 0, 0, 0, 0, 0));
			continue;
		}
		if (VOS_CMD_OF(v) == VOS_CMD_STOP)
			acknowledge((pid_t)sys(SYS_getpid, 0, 0, 0, 0, 0)); /* init lost our ack: say it again */
	}
}

static void release_threads(void)
{
	STORE(ctl.state, VOS_STATE_RUNNING);
	ADD(ctl.resume_gen, 1);
	futex_wake(&ctl.resume_gen);
}

/* The thread that received STOP from init: stops the others, reports, waits, resumes. */
static void stop_process(uint32_t round, void *uc)
{
	if (LOAD(ctl.state) != VOS_STATE_RUNNING)
		return;
	pid_t pid = (pid_t)sys(SYS_getpid, 0, 0, 0, 0, 0);
	pid_t self = (pid_t)sys(SYS_gettid, 0, 0, 0, 0, 0);
	if (ctl.leftover_len) {
		sys(SYS_munmap, (long)ctl.leftover_start, (long)ctl.leftover_len, 0, 0, 0);
		ctl.leftover_len = 0;
	}
	ctl.round = round;
	ctl.error[0] = 0;
	ctl.nskipped = 0;
	ctl.ntimers = 0;
	STORE(ctl.parked, 0);
	STORE(ctl.nthreads, 1);
	STORE(ctl.state, VOS_STATE_STOPPING);
	record_thread(&ctl.threads[0], uc);

	int n = 0;
	long deadline = now_ms() + 3000;
	int failed = 0;
	for (;;) {
		int before = n;
		n = signal_threads(pid, self, round, n);
		if (n < 0) {
			put_str(ctl.error, ctl.error + sizeof ctl.error, "cannot list /proc/self/task");
			failed = 1;
			break;
		}
		uint32_t parked;
		while ((parked = LOAD(ctl.parked)) < (uint32_t)n && now_ms() < deadline)
			futex_wait(&ctl.parked, parked, 20);
		if (LOAD(ctl.parked) < (uint32_t)n) {
			char *p = put_str(ctl.error, ctl.error + sizeof ctl.error, "a thread of process ");
			p = put_int(p, ctl.error + sizeof ctl.error, pid);
			put_str(p, ctl.error + sizeof ctl.error, " does not take the checkpoint signal (it keeps it blocked)");
			failed = 1;
			break;
		}
		if (n == before)
			break; /* no thread appeared since the last look */
	}
	if (!failed && LOAD(ctl.nthreads) > VOS_MAX_THREADS) {
		put_str(ctl.error, ctl.error + sizeof ctl.error, "too many threads for the vOS runtime");
		failed = 1;
	}
	if (!failed)
		save_process_state();
	STORE(ctl.state, failed ? VOS_STATE_FAILED : VOS_STATE_STOPPED);
	acknowledge(pid);
	wait_for_resume(round);
	release_threads();
}

/* Any other thread: record itself, then wait for the release. */
static void park_thread(uint32_t round, void *uc)
{
	if (LOAD(ctl.state) != VOS_STATE_STOPPING || round != ctl.round)
		return; /* a late request from an earlier round */
	uint32_t gen = LOAD(ctl.resume_gen);
	uint32_t i = ADD(ctl.nthreads, 1);
	if (i < VOS_MAX_THREADS)
		record_thread(&ctl.threads[i], uc);
	ADD(ctl.parked, 1);
	futex_wake(&ctl.parked);
	while (LOAD(ctl.resume_gen) == gen)
		futex_wait(&ctl.resume_gen, gen, -1);
}

void on_vos_signal(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	int saved_errno = errno;
	if (si->si_code == SI_QUEUE) {
		uint32_t v = (uint32_t)si->si_value.sival_int;
		if (VOS_CMD_OF(v) == VOS_CMD_STOP)
			stop_process(VOS_ROUND_OF(v), uc);
		else if (VOS_CMD_OF(v) == VOS_CMD_PARK)
			park_thread(VOS_ROUND_OF(v), uc);
	}
	errno = saved_errno;
}
