/*
 * Threads that keep the checkpoint signal blocked (glibc's timer helper thread is one) cannot
 * park themselves. Pod init stops each such thread from outside with ptrace, reads its
 * registers and FPU/AVX state, and writes a signal frame for it below its stack pointer (past
 * the red zone), just like the one the kernel makes when it delivers a signal. From then on the
 * thread is like any other: it is restored by rt_sigreturn on that frame. When the pod runs on
 * after the checkpoint, the thread is released and the frame is just unused stack.
 *
 * The frame itself (ptrace-frame.h) is also what ptrace-dump.c gives every thread of a process
 * stopped wholly from outside, there in a mapping of its own rather than on the stack.
 */
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dump.h"
#include "ptrace-frame.h"

#define RED_ZONE 128
#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516
#define MAX_XSTATE (64 * 1024)

#ifndef FP_XSTATE_MAGIC1 /* glibc's bits/sigcontext.h has them */
#define FP_XSTATE_MAGIC1 0x46505853u
#define FP_XSTATE_MAGIC2 0x46505845u
#endif

/* The kernel's signal frame structures on x86-64 (uapi asm/sigcontext.h, which clashes with
 * glibc's signal.h, so written out here). */
struct sigcontext_64 {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t di, si, bp, bx, dx, ax, cx, sp, ip, flags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate;
	uint64_t reserved1[8];
};

/* Bytes 464..511 of the FXSAVE area, as the kernel reads them in a signal frame. */
struct fpx_sw_bytes {
	uint32_t magic1;
	uint32_t extended_size;
	uint64_t xfeatures;
	uint32_t xstate_size;
	uint32_t padding[7];
};

struct kernel_ucontext {
	uint64_t uc_flags;
	uint64_t uc_link;
	struct {
		uint64_t ss_sp;
		int32_t ss_flags;
		int32_t pad;
		uint64_t ss_size;
	} uc_stack;
	struct sigcontext_64 mc;
	uint64_t uc_sigmask;
};

static uint64_t blocked_mask(pid_t pid, pid_t tid)
{
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
	char *text = read_text_file(path, NULL);
	uint64_t mask = 0;
	if (text) {
		char *p = strstr(text, "\nSigBlk:");
		if (p)
			mask = strtoull(p + 8, NULL, 16);
		free(text);
	}
	return mask;
}

void ptrace_frame_restart(struct user_regs_struct *r)
{
	if ((int64_t)r->orig_rax < 0)
		return;
	switch (-(int64_t)r->rax) {
	case ERESTARTSYS:
	case ERESTARTNOINTR:
	case ERESTARTNOHAND:
	case ERESTART_RESTARTBLOCK:
		/* The kernel's own restart record does not survive a restore: the call itself is
		 * made again instead (a sleep or wait starts its timeout over). */
		r->rax = r->orig_rax;
		r->rip -= 2;
		break;
	}
}

void ptrace_frame_restart_live(struct user_regs_struct *r)
{
	if ((int64_t)r->orig_rax >= 0 && -(int64_t)r->rax == ERESTART_RESTARTBLOCK) {
		r->rax = SYS_restart_syscall;
		r->rip -= 2;
		return;
	}
	ptrace_frame_restart(r);
}

int32_t ptrace_xstate_size(pid_t tid)
{
	uint8_t *xstate = xcalloc(1, MAX_XSTATE);
	struct iovec iov = {xstate, MAX_XSTATE};
	long rc = ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov);
	free(xstate);
	return rc < 0 ? -1 : (int32_t)iov.iov_len;
}

size_t ptrace_frame_size(uint32_t xsize)
{
	return sizeof(struct kernel_ucontext) + 16 + xsize + 4 + 64;
}

int ptrace_frame_write(pid_t pid, pid_t tid, const struct user_regs_struct *r, uint64_t sigmask,
		       const struct frame_altstack *alt, uint64_t top, uint64_t *uc_at_out, struct err *e)
{
	uint8_t *xstate = xcalloc(1, MAX_XSTATE);
	struct iovec iov = {xstate, MAX_XSTATE};
	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov) < 0) {
		free(xstate);
		return fail(e, "cannot read the FPU state of thread %d: %s", (int)tid, strerror(errno));
	}
	uint32_t xsize = (uint32_t)iov.iov_len;

	/* Below top: the xstate (64-byte aligned, with MAGIC2 after it), then the frame. */
	uint64_t fp_at = (top - xsize - 4) & ~63ull;
	uint64_t uc_at = (fp_at - sizeof(struct kernel_ucontext)) & ~15ull; /* rsp for rt_sigreturn */

	struct fpx_sw_bytes sw;
	memset(&sw, 0, sizeof sw);
	sw.magic1 = FP_XSTATE_MAGIC1;
	sw.extended_size = xsize + 4;
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	sw.xfeatures = ((uint64_t)hi << 32) | lo;
	sw.xstate_size = xsize;
	memcpy(xstate + 464, &sw, sizeof sw);
	uint32_t magic2 = FP_XSTATE_MAGIC2;
	memcpy(xstate + xsize, &magic2, 4);

	struct kernel_ucontext uc;
	memset(&uc, 0, sizeof uc);
	uc.uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	if (alt) {
		uc.uc_stack.ss_sp = alt->sp;
		uc.uc_stack.ss_flags = alt->flags;
		uc.uc_stack.ss_size = alt->size;
	} else {
		uc.uc_stack.ss_flags = SS_DISABLE; /* its alternate signal stack, if any, is not known here */
	}
	struct sigcontext_64 *m = &uc.mc;
	m->r8 = r->r8, m->r9 = r->r9, m->r10 = r->r10, m->r11 = r->r11;
	m->r12 = r->r12, m->r13 = r->r13, m->r14 = r->r14, m->r15 = r->r15;
	m->di = r->rdi, m->si = r->rsi, m->bp = r->rbp, m->bx = r->rbx;
	m->dx = r->rdx, m->ax = r->rax, m->cx = r->rcx, m->sp = r->rsp;
	m->ip = r->rip, m->flags = r->eflags;
	m->cs = (uint16_t)r->cs, m->ss = (uint16_t)r->ss;
	m->fpstate = fp_at;
	uc.uc_sigmask = sigmask;

	struct iovec local[2] = {{&uc, sizeof uc}, {xstate, xsize + 4}};
	struct iovec remote[2] = {{(void *)(uintptr_t)uc_at, sizeof uc}, {(void *)(uintptr_t)fp_at, xsize + 4}};
	ssize_t written = process_vm_writev(pid, local, 2, remote, 2, 0);
	free(xstate);
	if (written != (ssize_t)(sizeof uc + xsize + 4))
		return fail(e, "cannot write the signal frame of thread %d: %s", (int)tid, strerror(errno));
	*uc_at_out = uc_at;
	return 0;
}

int ptrace_thread(pid_t pid, pid_t tid, uint64_t ctid_offset, struct vos_thread_rec *out, struct err *e)
{
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0)
		return fail(e, "cannot stop thread %d of process %d: %s", (int)tid, (int)pid, strerror(errno));
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return fail(e, "cannot stop thread %d of process %d: %s", (int)tid, (int)pid, strerror(errno));
	}
	int status;
	if (waitpid(tid, &status, __WALL) != tid || !WIFSTOPPED(status)) {
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return fail(e, "thread %d of process %d did not stop", (int)tid, (int)pid);
	}
	struct user_regs_struct r;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0) {
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return fail(e, "cannot read the registers of thread %d: %s", (int)tid, strerror(errno));
	}
	ptrace_frame_restart(&r);
	memset(out, 0, sizeof *out);
	/* On its own stack, below the red zone. */
	if (ptrace_frame_write(pid, tid, &r, blocked_mask(pid, tid), NULL, r.rsp - RED_ZONE, &out->frame, e) < 0) {
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return -1;
	}
	out->tid = tid;
	out->fs_base = r.fs_base;
	out->gs_base = r.gs_base;
	out->clear_child_tid = ctid_offset ? r.fs_base + ctid_offset : 0;
	uint64_t head = 0;
	size_t len = 0;
	if (syscall(SYS_get_robust_list, tid, &head, &len) == 0) {
		out->robust_list = head;
		out->robust_len = len;
	}
	return 0; /* stays stopped until ptrace_release */
}

void ptrace_release(pid_t tid)
{
	ptrace(PTRACE_DETACH, tid, 0, 0);
}
