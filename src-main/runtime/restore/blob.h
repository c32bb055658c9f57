/*
 * The restore blob's plan. The blob (blob.c) is the part of a restoring process that runs after
 * the restorer's own memory is gone: it is copied, with this plan, into a "zone" of the address
 * space that no area of the image uses, and runs from there with no libc, no relocations and no
 * vdso. Everything it needs is in the plan, at absolute addresses inside the zone.
 *
 * Address space of a restoring process while the blob runs:
 *
 *   hole + 0      trampoline code (1 page, r-x) — stays, see below
 *   hole + 4K     trampoline counter (1 page, rw-) — stays
 *   hole + 8K     sync page shared by the whole pod (pod init waits on it)
 *   hole + 12K    zone: blob code, plan, stacks — unmapped by the last thread to leave
 *   hole end - 64 pages   free: where the vdso passes through when its old and new places overlap
 *
 * Every thread leaves the zone through the trampoline: it decrements the counter, the last one
 * unmaps the zone and the sync page, then each does rt_sigreturn on its saved signal frame.
 * The two trampoline pages stay mapped; the runtime (libvos) unmaps them at the next checkpoint.
 */
#ifndef VOS_BLOB_H
#define VOS_BLOB_H

#include <stdint.h>

#define BLOB_THREAD_STACK (32 * 1024)
#define BLOB_MAIN_STACK (256 * 1024)
#define BLOB_MAX_VDSO_PARTS 8
#define HOLE_TEMP_PAGES 64 /* free pages at the end of the hole: room to move the vdso through */

/* Restore stages, published by pod init in sync.stage. */
enum {
	STAGE_CREATING = 0,
	STAGE_GROUP_LEADERS = 1, /* every process exists: group leaders set their group */
	STAGE_GROUP_MEMBERS = 2, /* members join */
	STAGE_PREPARE = 3,       /* terminal and groups done: fds, memory */
	STAGE_GO = 4,            /* every process is restored: run */
	STAGE_ABORT = 5,         /* something failed: every restoring process exits */
};

/* Where a restoring process reports a failure (blob steps have no strings). */
enum blob_step {
	STEP_UNMAP = 1,
	STEP_VDSO = 2,
	STEP_MAP = 3,
	STEP_READ = 4,
	STEP_PROTECT = 5,
	STEP_MM = 6,
	STEP_THREAD = 7,
	STEP_SIGNALS = 8,
	STEP_TIMERS = 9,
	STEP_ADVISE = 10,
	STEP_STAGED = 11,
	STEP_LOCK = 12, /* fail_addr: the lock's index in the image's LOCKS */
};

struct restore_sync {
	uint32_t stage;
	uint32_t created;  /* processes that exist with their session */
	uint32_t leaders;  /* group leaders done */
	uint32_t members;  /* members done */
	uint32_t prepared; /* memory restored, waiting for GO */
	uint32_t failed;
	int32_t fail_pid;
	int32_t fail_step;
	int64_t fail_errno;
	uint64_t fail_addr;
	char fail_text[256]; /* failures before the blob: a message */
	char fail_path[1024]; /* and the file or directory it concerns, if any ("" if none) */
};

struct blob_area {
	uint64_t start, end, pgoff;
	uint32_t prot;
	uint32_t map_flags; /* MAP_* */
	int32_t fd;         /* file or memfd to map, or -1 */
	uint32_t advice;    /* VOS_VMA_* advice flags the area had (madvise again) */
};

struct blob_run {
	uint64_t addr;
	uint64_t len;
	uint64_t offset; /* in the image file */
	uint32_t zero;   /* 1: write zeros (over file content) instead of reading */
	uint32_t pad;    /* which file: 0 the image, k its k-th parent (parent_fd[k - 1]) */
};

struct blob_range {
	uint64_t start, end;
};

struct blob_move {
	uint64_t from, to, len;
};

struct blob_thread {
	int32_t tid;
	int32_t pad;
	uint64_t fs_base;
	uint64_t gs_base;
	uint64_t frame;
	uint64_t clear_child_tid;
	uint64_t robust_list;
	uint64_t robust_len;
	uint64_t pending;   /* thread-directed pending signals to raise again */
	uint64_t stack_top; /* in the zone */
};

struct blob_timer {
	int32_t id, clock, signo, notify, target_tid, pad;
	uint64_t value;
	int64_t interval_ns, value_ns;
};

/* A POSIX record lock the process takes again (fcntl F_SETLK), once no fd of the restorer's
 * remains open: closing any fd of a file drops the process's POSIX locks on it. */
struct blob_lock {
	int32_t fd;     /* one of the process's own fds on the file */
	int32_t type;   /* F_RDLCK or F_WRLCK */
	uint32_t index; /* in the image's LOCKS record (for the message) */
	uint32_t pad;
	int64_t start;
	int64_t len;    /* 0: to the end of the file */
};

/* Bytes written over restored memory before it is protected (the vdso proxy's jumps). */
struct blob_poke {
	uint64_t addr;
	uint32_t len;
	uint8_t bytes[20];
};

struct blob_plan {
	uint64_t self;          /* where this plan lives */
	uint64_t unmap_start;   /* sync page + zone: removed by the last thread */
	uint64_t unmap_len;
	uint64_t trampoline;    /* code address */
	uint64_t tramp_counter; /* its counter */
	int32_t pid;
	int32_t image_fd;
	int32_t parent_fd[8];   /* an incremental image's parents (VOS_MAX_CHAIN), nearest first */
	int32_t exe_fd;         /* for PR_SET_MM_MAP, or -1 */
	uint32_t nprocs;
	struct restore_sync *sync;

	/* prctl(PR_SET_MM_MAP) */
	uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint64_t auxv; /* address in the zone */
	uint32_t auxv_size;
	uint32_t pad;

	uint64_t ctl_addr; /* the runtime's control block in the restored memory */
	int64_t itimers[3][4];
	uint64_t shared_pending;

	uint32_t nmoves;
	struct blob_move moves[BLOB_MAX_VDSO_PARTS];

	uint64_t nunmap;
	struct blob_range *unmap;
	uint64_t nareas;
	struct blob_area *areas;
	uint64_t nruns;
	struct blob_run *runs;
	uint64_t nthreads;
	struct blob_thread *threads; /* [0] is the main thread */
	uint64_t ntimers;
	struct blob_timer *timers;
	uint64_t npokes;
	struct blob_poke *pokes;
	/* Live migration: staged pages moved into the areas (after they are mapped), then the whole
	 * staging range [staging_start, staging_end) goes (see restore/staging.c). */
	uint64_t nstaged;
	struct blob_move *staged;
	uint64_t staging_start, staging_end;
	uint64_t nlocks;
	struct blob_lock *locks;
	uint32_t hold; /* futex: new threads wait for the timers that may point at them */
	uint32_t pad2;
};

/* The blob's code, as linked into vos-init: copied into the zone before use. */
extern char __start_vos_blob[], __stop_vos_blob[];
void blob_main(struct blob_plan *plan) __attribute__((noreturn));

#endif
