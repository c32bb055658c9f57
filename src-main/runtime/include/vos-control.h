/*
 * The contract between the injected runtime (libvos.so, in every process of a pod) and the pod
 * init (vos-init, pid 1 of the pod), which coordinates checkpoints.
 *
 * Checkpoint signal protocol (all on VOS_SIGNAL, commands in si_value):
 *   init -> process        VOS_CMD_STOP(round)     stop every thread of the process
 *   process leader -> own threads VOS_CMD_PARK(round) park in the handler
 *   process -> init        ack: si_value = address of the process's struct vos_control
 *   init -> process        VOS_CMD_UFFD(round)     (while stopped, for live migration) make a
 *                                                  userfaultfd; ack again with control.uffd set
 *   init -> process        VOS_CMD_RESUME(round)   release the threads (closing that userfaultfd:
 *                                                  init took its own copy with pidfd_getfd)
 * While stopped, every thread sits in the signal handler: its registers, FPU/AVX state, signal
 * mask and alternate stack are in the kernel's signal frame on its stack (part of the memory
 * image). A restored thread resumes by rt_sigreturn on that frame.
 */
#ifndef VOS_CONTROL_H
#define VOS_CONTROL_H

#include <stdint.h>

/* SIGRTMIN+28 with glibc (SIGRTMIN is 34): real-time, so it queues and carries a value. */
#define VOS_SIGNAL 62

#define VOS_CMD_STOP 1
#define VOS_CMD_PARK 2
#define VOS_CMD_RESUME 3
#define VOS_CMD_UFFD 4

/* si_value.sival_int = round << 8 | command */
#define VOS_CMD(round, cmd) ((int)(((uint32_t)(round) << 8) | (uint32_t)(cmd)))
#define VOS_CMD_OF(v) ((uint32_t)(v) & 0xffu)
#define VOS_ROUND_OF(v) ((uint32_t)(v) >> 8)

#define VOS_CONTROL_MAGIC 0x6c6f72746e6f4376ull /* "vControl" */
#define VOS_CONTROL_VERSION 2
#define VOS_MAX_THREADS 1024
#define VOS_NSIG 65 /* signals 1..64 */

enum vos_state {
	VOS_STATE_RUNNING = 0,
	VOS_STATE_STOPPING = 1,
	VOS_STATE_STOPPED = 2,
	VOS_STATE_FAILED = 3,
};

struct vos_thread_rec {
	int32_t tid;
	int32_t pad;
	uint64_t fs_base;
	uint64_t gs_base;
	/* Address of the ucontext in the signal frame: rsp for rt_sigreturn. */
	uint64_t frame;
	uint64_t clear_child_tid;
	uint64_t robust_list;
	uint64_t robust_len;
};

/* The kernel's struct sigaction for rt_sigaction (not glibc's). */
struct vos_ksigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

struct vos_itimer {
	int64_t interval_sec, interval_usec, value_sec, value_usec;
};

#define VOS_MAX_SKIPPED 64
#define VOS_MAX_TIMERS 64

/* A POSIX timer (timer_create) of the process, from /proc/self/timers and timer_gettime. */
struct vos_posix_timer {
	int32_t id;
	int32_t clock;
	int32_t signo;
	int32_t notify;     /* SIGEV_SIGNAL, SIGEV_NONE, ... | SIGEV_THREAD_ID */
	int32_t target_tid; /* for SIGEV_THREAD_ID */
	int32_t pad;
	uint64_t value;     /* sigev_value */
	int64_t interval_ns;
	int64_t value_ns;   /* time left; 0: disarmed */
};

struct vos_control {
	uint64_t magic;
	uint32_t version;
	uint32_t state;
	uint32_t round;
	uint32_t nthreads;
	uint32_t parked;
	uint32_t resume_gen; /* futex: parked threads wait for it to change */
	int32_t uffd;        /* VOS_CMD_UFFD's answer: the fd, or -errno; -1 otherwise */
	uint32_t pad;
	uint64_t brk;
	/* Left behind by a restore (its trampoline pages); unmapped at the next checkpoint. */
	uint64_t leftover_start;
	uint64_t leftover_len;
	char error[160];
	struct vos_ksigaction sigactions[VOS_NSIG];
	struct vos_itimer itimers[3]; /* ITIMER_REAL, _VIRTUAL, _PROF */
	/* Threads that keep VOS_SIGNAL blocked (e.g. glibc's timer helper): pod init stops them
	 * from outside (ptrace) instead. */
	uint32_t nskipped;
	int32_t skipped[VOS_MAX_SKIPPED];
	uint32_t ntimers;
	struct vos_posix_timer timers[VOS_MAX_TIMERS];
	struct vos_thread_rec threads[VOS_MAX_THREADS];
};

/*
 * Memory vOS leaves in a process that has no runtime to remove it: the scratch mapping of a stop
 * from outside (dump/ptrace-dump.c), which a restored process keeps (its threads' frames were
 * there), and a restore's trampoline pages (restore/blob-plan.c). Each starts a page with this
 * mark, at offset 0 (scratch) or 64 (the trampoline's second page); the next stop from outside
 * finds the marks in the process's anonymous memory and removes [start, start + len).
 */
#define VOS_LEFTOVER_MAGIC "vOS leftover v1"
struct vos_leftover_mark {
	char magic[16];
	uint64_t start;
	uint64_t len;
};

#endif
