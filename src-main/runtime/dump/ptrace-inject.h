/*
 * Running system calls inside a process stopped from outside (ptrace-inject.c): what the stop
 * from outside (ptrace-dump.c) asks a process that has no runtime, and what adopting a program
 * (init/adopt.c) changes in it. Every thread of the process is stopped, with every signal
 * blocked so that none is taken (and lost) by a thread code runs in; released, each goes on
 * exactly where it was, its mask back.
 */
#ifndef VOS_PTRACE_INJECT_H
#define VOS_PTRACE_INJECT_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "../common/util.h"

struct traced_thread {
	pid_t tid;
	struct user_regs_struct regs;  /* as stopped */
	struct user_regs_struct frame; /* (ptrace-dump.c) as a restore resumes it */
	uint64_t rseq_at;              /* (ptrace-dump.c) its rseq area, unregistered for the stop; 0: none */
	uint32_t rseq_len, rseq_sig;
	uint64_t sigmask;              /* its blocked signals before we blocked them all */
	int masked;                    /* all its signals blocked by us (sigmask to put back) */
	int in_syscall_stop;           /* stopped at a system call's exit by an injected call */
};

struct ptrace_proc {
	pid_t pid;
	struct traced_thread *t;
	int n;
	uint64_t syscall_at; /* an executable `syscall` instruction (0f 05) in the process */
	/* The stop from outside's (ptrace-dump.c): its scratch mapping in the process. */
	uint64_t scratch, scratch_len;
	uint32_t slot;       /* bytes per thread in the scratch mapping */
};

/* Stops every thread of pid (listed again until no new one appears; a signal that reaches one
 * first is delivered, and the stop asked for again), reads its registers and mask and blocks
 * every signal in it. 0; 1 if the process has no thread left; -1 (e): what was stopped stays in
 * pp for inject_release. */
int inject_seize(struct ptrace_proc *pp, pid_t pid, struct err *e);
/* Runs system call nr with args in thread th (through a `syscall` instruction of the process's
 * vDSO, to the call's exit); its result (-errno on failure) in *ret. */
int inject_syscall(struct ptrace_proc *pp, struct traced_thread *th, long nr, const long args[6], long *ret,
		   struct err *e);
/* The same with up to four arguments. */
int inject_call(struct ptrace_proc *pp, struct traced_thread *th, long nr, long a0, long a1, long a2, long a3, long *ret,
		struct err *e);
/* Reads or writes len bytes at address at of process pid. */
int inject_read(pid_t pid, uint64_t at, void *out, size_t len, struct err *e);
int inject_write(pid_t pid, uint64_t at, const void *data, size_t len, struct err *e);
/* Lets every thread go on where it was (an interrupted call made again as the kernel would
 * have), its mask back; frees pp's threads. */
void inject_release(struct ptrace_proc *pp);

#endif
