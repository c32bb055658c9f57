/*
 * The restore blob: the last steps of restoring a process, run from the zone (see blob.h) after
 * the restorer's own memory is gone. Freestanding: raw system calls only, no libc, no strings,
 * no TLS (the thread pointer still points at the restorer's vanished TLS until the very end).
 * Compiled with -ffreestanding -fno-stack-protector -mgeneral-regs-only -fno-jump-tables
 * -fno-builtin -fno-tree-loop-distribute-patterns (see the Makefile) and kept in its own
 * section so that it can be copied as one position-independent piece.
 */
#include <asm/prctl.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <linux/mman.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/time.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "blob.h"
#include "../include/vos-image.h"
#include "vos-control.h"

#define BLOB __attribute__((section("vos_blob")))
#define BLOB_NORETURN __attribute__((section("vos_blob"), noreturn))

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

BLOB static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

BLOB static long sys3(long n, long a, long b, long c)
{
	return sys6(n, a, b, c, 0, 0, 0);
}

BLOB_NORETURN static void die_now(void)
{
	for (;;)
		sys3(__NR_exit_group, 1, 0, 0);
}

BLOB static void futex_wake(uint32_t *addr)
{
	sys6(__NR_futex, (long)addr, FUTEX_WAKE, 0x7fffffff, 0, 0, 0);
}

BLOB static void futex_wait(uint32_t *addr, uint32_t val)
{
	struct timespec ts;
	ts.tv_sec = 1;
	ts.tv_nsec = 0;
	sys6(__NR_futex, (long)addr, FUTEX_WAIT, val, (long)&ts, 0, 0);
}

/* Records the failure where pod init looks, and ends this process. */
BLOB_NORETURN static void fail(struct blob_plan *p, int step, long err, uint64_t addr)
{
	struct restore_sync *s = p->sync;
	if (__atomic_exchange_n(&s->failed, 1, __ATOMIC_SEQ_CST) == 0) {
		s->fail_pid = p->pid;
		s->fail_step = step;
		s->fail_errno = -err;
		s->fail_addr = addr;
	}
	futex_wake(&s->prepared);
	die_now();
}

BLOB static void zero(uint8_t *p, uint64_t len)
{
	volatile uint64_t *w = (volatile uint64_t *)(void *)p;
	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = 0;
}

BLOB static void advise_if(struct blob_plan *p, const struct blob_area *a, uint32_t flag, int advice)
{
	if (!(a->advice & flag))
		return;
	long rc = sys3(__NR_madvise, (long)a->start, (long)(a->end - a->start), advice);
	if (rc < 0)
		fail(p, STEP_ADVISE, rc, a->start);
}

/* Gives a restored area the madvise advice the program had given it (no tables: the blob
 * carries no data section). */
BLOB static void advise(struct blob_plan *p, const struct blob_area *a)
{
	advise_if(p, a, VOS_VMA_HUGEPAGE, 14 /* MADV_HUGEPAGE */);
	advise_if(p, a, VOS_VMA_NOHUGEPAGE, 15 /* MADV_NOHUGEPAGE */);
	advise_if(p, a, VOS_VMA_DONTFORK, 10 /* MADV_DONTFORK */);
	advise_if(p, a, VOS_VMA_WIPEONFORK, 18 /* MADV_WIPEONFORK */);
	advise_if(p, a, VOS_VMA_DONTDUMP, 16 /* MADV_DONTDUMP */);
}

BLOB static void load_memory(struct blob_plan *p)
{
	for (uint64_t i = 0; i < p->nunmap; i++) {
		long rc = sys3(__NR_munmap, (long)p->unmap[i].start, (long)(p->unmap[i].end - p->unmap[i].start), 0);
		if (rc < 0)
			fail(p, STEP_UNMAP, rc, p->unmap[i].start);
	}
	for (uint32_t i = 0; i < p->nmoves; i++) {
		struct blob_move *m = &p->moves[i];
		if (m->from == m->to)
			continue;
		long rc = sys6(__NR_mremap, (long)m->from, (long)m->len, (long)m->len, MREMAP_MAYMOVE | MREMAP_FIXED,
			       (long)m->to, 0);
		if (rc != (long)m->to)
			fail(p, STEP_VDSO, rc, m->to);
	}
	for (uint64_t i = 0; i < p->nareas; i++) {
		struct blob_area *a = &p->areas[i];
		/* Writable while it is filled; shared file mappings are never written by us. */
		uint32_t prot = a->fd >= 0 && (a->map_flags & 0x01 /* MAP_SHARED */) ? a->prot : PROT_READ | PROT_WRITE;
		long rc = sys6(__NR_mmap, (long)a->start, (long)(a->end - a->start), prot,
			       (long)(a->map_flags | MAP_FIXED_NOREPLACE), a->fd, (long)a->pgoff);
		if (rc != (long)a->start)
			fail(p, STEP_MAP, rc < 0 ? rc : -17 /* EEXIST: placed elsewhere */, a->start);
	}
	/* Pages sent ahead, in memory already: their page tables move into the areas. */
	for (uint64_t i = 0; i < p->nstaged; i++) {
		struct blob_move *m = &p->staged[i];
		long rc = sys6(__NR_mremap, (long)m->from, (long)m->len, (long)m->len, MREMAP_MAYMOVE | MREMAP_FIXED,
			       (long)m->to, 0);
		if (rc != (long)m->to)
			fail(p, STEP_STAGED, rc, m->to);
	}
	if (p->staging_end > p->staging_start)
		sys3(__NR_munmap, (long)p->staging_start, (long)(p->staging_end - p->staging_start), 0);
	for (uint64_t i = 0; i < p->nareas; i++)
		advise(p, &p->areas[i]); /* over the moved pages too */
	for (uint64_t i = 0; i < p->nruns; i++) {
		struct blob_run *r = &p->runs[i];
		if (r->zero) {
			zero((uint8_t *)r->addr, r->len);
			continue;
		}
		uint64_t done = 0;
		while (done < r->len) {
			long n = sys6(__NR_pread64, r->pad ? p->parent_fd[r->pad - 1] : p->image_fd, (long)(r->addr + done),
				      (long)(r->len - done),
				      (long)(r->offset + done), 0, 0);
			if (n == -4 /* EINTR */)
				continue;
			if (n <= 0)
				fail(p, STEP_READ, n == 0 ? -5 /* EIO */ : n, r->addr + done);
			done += (uint64_t)n;
		}
	}
	for (uint64_t i = 0; i < p->npokes; i++) {
		uint8_t *dst = (uint8_t *)p->pokes[i].addr;
		for (uint32_t k = 0; k < p->pokes[i].len; k++)
			dst[k] = p->pokes[i].bytes[k];
	}
	for (uint64_t i = 0; i < p->nareas; i++) {
		struct blob_area *a = &p->areas[i];
		if (a->prot != (PROT_READ | PROT_WRITE)) {
			long rc = sys3(__NR_mprotect, (long)a->start, (long)(a->end - a->start), a->prot);
			if (rc < 0)
				fail(p, STEP_PROTECT, rc, a->start);
		}
		if (a->fd >= 0)
			sys3(__NR_close, a->fd, 0, 0);
	}
	sys3(__NR_close, p->image_fd, 0, 0);
	for (int k = 0; k < 8; k++)
		if (p->parent_fd[k] >= 0)
			sys3(__NR_close, p->parent_fd[k], 0, 0);
}

BLOB static void set_mm(struct blob_plan *p)
{
	struct prctl_mm_map map;
	map.start_code = p->start_code;
	map.end_code = p->end_code;
	map.start_data = p->start_data;
	map.end_data = p->end_data;
	map.start_brk = p->start_brk;
	map.brk = p->brk;
	map.start_stack = p->start_stack;
	map.arg_start = p->arg_start;
	map.arg_end = p->arg_end;
	map.env_start = p->env_start;
	map.env_end = p->env_end;
	map.auxv = (__u64 *)p->auxv;
	map.auxv_size = p->auxv_size;
	map.exe_fd = p->exe_fd >= 0 ? (uint32_t)p->exe_fd : (uint32_t)-1;
	long rc = sys6(__NR_prctl, PR_SET_MM, PR_SET_MM_MAP, (long)&map, sizeof map, 0, 0);
	if (rc < 0)
		fail(p, STEP_MM, rc, p->brk);
	if (p->exe_fd >= 0)
		sys3(__NR_close, p->exe_fd, 0, 0);
}

/* The kernel's struct flock (x86-64). */
struct k_flock {
	int16_t type, whence;
	int32_t pad;
	int64_t start, len;
	int32_t pid, pad2;
};

/* The process's POSIX record locks, taken again by the process itself (they are its own), after
 * the last fd of the restorer is closed (a close drops the process's POSIX locks on that file).
 * One held by someone else now fails the restore: the program never runs without its lock. */
BLOB static void take_locks(struct blob_plan *p)
{
	for (uint64_t i = 0; i < p->nlocks; i++) {
		struct blob_lock *l = &p->locks[i];
		struct k_flock fl;
		fl.type = (int16_t)l->type;
		fl.whence = 0; /* SEEK_SET */
		fl.pad = 0;
		fl.start = l->start;
		fl.len = l->len;
		fl.pid = 0;
		fl.pad2 = 0;
		long rc = sys3(__NR_fcntl, l->fd, 6 /* F_SETLK */, (long)&fl);
		if (rc < 0)
			fail(p, STEP_LOCK, rc, l->index);
	}
}

/* The runtime's view: running again, with the trampoline pages to remove at the next stop. */
BLOB static void reset_runtime(struct blob_plan *p)
{
	if (!p->ctl_addr)
		return;
	struct vos_control *ctl = (struct vos_control *)p->ctl_addr;
	if (ctl->magic != VOS_CONTROL_MAGIC)
		return;
	ctl->state = VOS_STATE_RUNNING;
	ctl->parked = 0;
	ctl->nthreads = 0;
	ctl->leftover_start = p->trampoline;
	ctl->leftover_len = 2 * 4096;
}

BLOB static void restore_signals(struct blob_plan *p)
{
	for (int which = 0; which < 3; which++) {
		int64_t *t = p->itimers[which];
		if (t[0] | t[1] | t[2] | t[3]) {
			long it[4] = {(long)t[0], (long)t[1], (long)t[2], (long)t[3]};
			sys3(__NR_setitimer, which, (long)it, 0);
		}
	}
	for (int sig = 1; sig <= 64; sig++)
		if (p->shared_pending & (1ull << (sig - 1)))
			sys3(__NR_kill, p->pid, sig, 0);
}

/* The kernel's struct sigevent. */
struct k_sigevent {
	uint64_t value;
	int32_t signo;
	int32_t notify;
	int32_t tid;
	int32_t pad[11];
};

#define PR_TIMER_CREATE_RESTORE_IDS 77

/* POSIX timers with their old ids (their signals may go to any thread: all exist by now). */
BLOB static void restore_timers(struct blob_plan *p)
{
	if (p->ntimers == 0)
		return;
	long rc = sys6(__NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0, 0);
	if (rc < 0)
		fail(p, STEP_TIMERS, rc, 0);
	for (uint64_t i = 0; i < p->ntimers; i++) {
		struct blob_timer *t = &p->timers[i];
		struct k_sigevent ev;
		int32_t *w = (int32_t *)(void *)&ev;
		for (size_t k = 0; k < sizeof ev / 4; k++)
			w[k] = 0;
		ev.value = t->value;
		ev.signo = t->signo;
		ev.notify = t->notify;
		ev.tid = t->target_tid;
		int32_t id = t->id;
		rc = sys3(__NR_timer_create, t->clock, (long)&ev, (long)&id);
		if (rc < 0 || id != t->id)
			fail(p, STEP_TIMERS, rc < 0 ? rc : -17, (uint64_t)t->id);
		if (t->value_ns || t->interval_ns) {
			long its[4] = {(long)(t->interval_ns / 1000000000), (long)(t->interval_ns % 1000000000),
				       (long)(t->value_ns / 1000000000), (long)(t->value_ns % 1000000000)};
			if (its[2] == 0 && its[3] == 0)
				its[3] = 1; /* due: fire at once */
			sys6(__NR_timer_settime, id, 0, (long)its, 0, 0, 0);
		}
	}
	sys6(__NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0, 0);
}

/* Each thread, last: its own kernel state, no privileges, then out through the trampoline. */
BLOB_NORETURN static void finish_thread(struct blob_plan *p, struct blob_thread *t)
{
	while (__atomic_load_n(&p->hold, __ATOMIC_SEQ_CST))
		sys6(__NR_futex, (long)&p->hold, FUTEX_WAIT_PRIVATE, 1, 0, 0, 0);
	sys3(__NR_arch_prctl, ARCH_SET_FS, (long)t->fs_base, 0);
	if (t->gs_base)
		sys3(__NR_arch_prctl, ARCH_SET_GS, (long)t->gs_base, 0);
	sys3(__NR_set_tid_address, (long)t->clear_child_tid, 0, 0);
	if (t->robust_list)
		sys3(__NR_set_robust_list, (long)t->robust_list, (long)t->robust_len, 0);
	for (int sig = 1; sig <= 64; sig++)
		if (t->pending & (1ull << (sig - 1)))
			sys3(__NR_tgkill, p->pid, t->tid, sig);
	struct __user_cap_header_struct hdr;
	struct __user_cap_data_struct data[2];
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	hdr.pid = 0;
	for (int i = 0; i < 2; i++) {
		data[i].effective = 0;
		data[i].permitted = 0;
		data[i].inheritable = 0;
	}
	if (sys3(__NR_capset, (long)&hdr, (long)data, 0) < 0)
		fail(p, STEP_THREAD, -1, 0);
	register long rdi __asm__("rdi") = (long)p->unmap_start;
	register long rsi __asm__("rsi") = (long)p->unmap_len;
	register long r12 __asm__("r12") = (long)t->frame;
	register long r13 __asm__("r13") = (long)p->tramp_counter;
	register long target __asm__("rax") = (long)p->trampoline;
	__asm__ volatile("jmp *%%rax" : : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13), "r"(target) : "memory");
	__builtin_unreachable();
}

BLOB_NORETURN static void thread_entry(struct blob_thread *t, struct blob_plan *p)
{
	finish_thread(p, t);
}

BLOB static void start_thread(struct blob_plan *p, struct blob_thread *t)
{
	struct clone_args args;
	int32_t tid = t->tid;
	uint64_t *w = (uint64_t *)(void *)&args;
	for (size_t i = 0; i < sizeof args / 8; i++)
		w[i] = 0;
	args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS;
	args.stack = t->stack_top - BLOB_THREAD_STACK;
	args.stack_size = BLOB_THREAD_STACK;
	args.tls = t->fs_base;
	args.set_tid = (uint64_t)(uintptr_t)&tid;
	args.set_tid_size = 1;
	register long r12 __asm__("r12") = (long)t;
	register long r13 __asm__("r13") = (long)thread_entry;
	register long r14 __asm__("r14") = (long)p;
	long ret;
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "mov %%r12, %%rdi\n\t"
			 "mov %%r14, %%rsi\n\t"
			 "call *%%r13\n\t"
			 "ud2\n"
			 "1:"
			 : "=a"(ret)
			 : "a"((long)__NR_clone3), "D"((long)&args), "S"((long)sizeof args), "r"(r12), "r"(r13), "r"(r14)
			 : "rcx", "r11", "memory");
	if (ret < 0)
		fail(p, STEP_THREAD, ret, (uint64_t)t->tid);
}

BLOB_NORETURN void blob_main(struct blob_plan *p)
{
	load_memory(p);
	set_mm(p);
	take_locks(p);
	reset_runtime(p);
	restore_signals(p);

	/* Everyone restored? Then run; if anything failed anywhere, end quietly. */
	__atomic_add_fetch(&p->sync->prepared, 1, __ATOMIC_SEQ_CST);
	futex_wake(&p->sync->prepared);
	for (;;) {
		uint32_t stage = __atomic_load_n(&p->sync->stage, __ATOMIC_SEQ_CST);
		if (stage == STAGE_GO)
			break;
		if (stage == STAGE_ABORT)
			die_now();
		futex_wait(&p->sync->stage, stage);
	}
	for (uint64_t i = 1; i < p->nthreads; i++)
		start_thread(p, &p->threads[i]);
	restore_timers(p);
	__atomic_store_n(&p->hold, 0, __ATOMIC_SEQ_CST);
	sys6(__NR_futex, (long)&p->hold, FUTEX_WAKE_PRIVATE, 0x7fffffff, 0, 0, 0);
	finish_thread(p, &p->threads[0]);
}
