/* A thread's state as a signal frame (ptrace-thread.c): what a thread stopped from outside with
 * ptrace resumes from, by rt_sigreturn, like one parked by the runtime. */
#ifndef VOS_PTRACE_FRAME_H
#define VOS_PTRACE_FRAME_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "../common/util.h"

/* A thread's alternate signal stack (the kernel's stack_t). */
struct frame_altstack {
	uint64_t sp;
	int32_t flags;
	uint64_t size;
};

/* Bytes a frame takes with an extended state of xsize bytes (alignment included). */
size_t ptrace_frame_size(uint32_t xsize);
/* The size of the extended (XSAVE) state of a ptrace-stopped thread; -1 + errno. */
int32_t ptrace_xstate_size(pid_t tid);
/* Registers as a restored thread must have them: an interrupted system call is made again (one
 * the kernel would continue with restart_syscall too: its record does not survive a restore). */
void ptrace_frame_restart(struct user_regs_struct *r);
/* The same for a thread that runs on in this process: restart_syscall continues such a call. */
void ptrace_frame_restart_live(struct user_regs_struct *r);
/* Writes the frame of ptrace-stopped thread tid (registers r, blocked signals sigmask, alternate
 * stack alt, or SS_DISABLE if NULL) into process pid's memory just below address top; *uc_at:
 * the ucontext's address (the stack pointer for rt_sigreturn). */
int ptrace_frame_write(pid_t pid, pid_t tid, const struct user_regs_struct *r, uint64_t sigmask,
		       const struct frame_altstack *alt, uint64_t top, uint64_t *uc_at, struct err *e);

#endif
