/* What a checkpoint learns about the pod while it is frozen, before it is written. */
#ifndef VOS_DUMP_H
#define VOS_DUMP_H

#include <stdint.h>
#include <sys/types.h>

#include "../common/buf.h"
#include "../common/image-io.h"
#include "../common/util.h"
#include "vos-control.h"
#include "vos-image.h"

struct pod;

/* ---- sysv-ipc.c ---- */

struct freeze;
/* SYSV_IPC: the pod's SysV semaphore sets with their values (no record without any). Fails
 * (unsupported) on SysV shared memory, message queues and SEM_UNDO adjustments. */
int write_sysv_ipc(const struct freeze *f, struct image_writer *w, struct err *e);

/* ---- freeze.c ---- */

struct ptrace_proc;
struct frozen {
	pid_t pid;
	uint64_t ctl_addr;       /* 0: stopped from outside (pt), or not acknowledged yet */
	struct vos_control *ctl; /* copy of the process's control block (or the one pt filled) */
	struct ptrace_proc *pt;  /* stopped with ptrace, without the runtime (ptrace-dump.c) */
	char why_pt[160];        /* why: "statically linked", "a Go program", ... */
};

struct zombie {
	pid_t pid, ppid, pgid, sid;
	int exit_status; /* unknown to us: restored zombies exit 0 */
};

/* A thread's system call as /proc/PID/task/TID/syscall showed it before the stop. */
struct blocked_call {
	pid_t pid, tid;
	int64_t nr;
	uint64_t pc;
};

struct freeze {
	struct blocked_call *calls;
	int ncalls;
	struct frozen *procs;
	int nprocs;
	pid_t *traced; /* threads stopped with ptrace (see ptrace-thread.c) */
	int ntraced;
	struct zombie *zombies;
	int nzombies;
	uint32_t round;
	int64_t frozen_at_us;
	int64_t resumed_at_us; /* thaw_pod: just before the last process was told to run (0: not yet) */
};

/* Stops every process of the pod at the checkpoint barrier. On failure nothing stays stopped. */
int freeze_pod(struct pod *pod, struct freeze *f, struct err *e);
/* Lets them all run again; notes when in resumed_at_us. */
void thaw_pod(struct freeze *f);
/* While frozen: has process fz make a userfaultfd and takes a copy of it (pidfd_getfd); the
 * process closes its own when it resumes. Returns our fd. */
int freeze_take_uffd(struct pod *pod, struct freeze *f, struct frozen *fz, struct err *e);
void freeze_free(struct freeze *f);

/* ---- ptrace-thread.c ---- */

/* Stops thread tid (which keeps the checkpoint signal blocked) and gives it a signal frame, as
 * if it had parked in the runtime. ctid_offset: where glibc keeps a thread's tid from its TCB. */
int ptrace_thread(pid_t pid, pid_t tid, uint64_t ctid_offset, struct vos_thread_rec *out, struct err *e);
void ptrace_release(pid_t tid);

/* ---- ptrace-dump.c: a process stopped without the runtime ---- */

/* Stops every thread of pid with ptrace and fills fz->ctl as the runtime would have (fz->pt
 * set, ctl_addr 0). 0; 1 if the process has no thread left; -1 (e) with fz->pt possibly set
 * (ptrace_resume_process releases what was stopped). */
int ptrace_stop_process(pid_t pid, struct frozen *fz, struct err *e);
/* While stopped: a userfaultfd of the process's memory, made in it; our copy. */
int ptrace_take_uffd(struct frozen *fz, struct err *e);
/* Lets it run on exactly where it was (the stop's mapping removed). */
void ptrace_resume_process(struct frozen *fz);
void ptrace_proc_free(struct frozen *fz);

/* ---- proc.c: process state from /proc ---- */

struct proc_stat {
	pid_t pid, ppid, pgid, sid;
	char state;
	unsigned flags; /* the kernel's PF_* flags of the task */
	int tty_nr, tpgid;
	uint64_t start_code, end_code, start_stack;
	uint64_t start_data, end_data, start_brk, arg_start, arg_end, env_start, env_end;
	char comm[64];
};

int read_proc_stat(pid_t pid, struct proc_stat *st, struct err *e);
/* An adopted terminal session (init/adopt.c), served by a pod init outside namespaces: only its
 * processes are the pod's, and the image shows them as a pod's: in pod init's session (1), the
 * leader (whose parent is outside the session) a child of pod init (1). So it restores into a
 * pod with a fresh pid namespace, where the pids it keeps are free. */
void dump_note_adopted_session(pid_t sid);
/* A process's parent and session as the image records them (see above). */
void dump_pod_view(pid_t *ppid, pid_t *sid);
/* The set of pids in the pod (from the pod's /proc), without pod init itself. */
int list_pod_pids(pid_t **out, int *n, struct err *e);
/* "pid 7 (python3)" style name for messages. */
const char *describe_pid(pid_t pid, char *buf, size_t size);
/* Whether the dynamic loader can load the runtime into the process's program (dynamically
 * linked, not set-user-ID or set-group-ID). */
int runtime_can_load(pid_t pid);
/* The value of field `name` of /proc/PID/status (leading blanks skipped, cut to fit out); -1 if
 * the process or the field is not there. */
int status_field(pid_t pid, const char *name, char *out, size_t size);
/* Whether the process has pod init's user and groups (a restore gives it those); fails
 * (unsupported) naming it otherwise. Before it is stopped. */
int same_identity(pid_t pid, struct err *e);
/* Whether the process catches VOS_SIGNAL (the runtime is active in it). */
int has_runtime(pid_t pid);
/* ---- stoppable.c ---- */
/* How a process is stopped: by its runtime, from outside with ptrace (why says why the runtime
 * cannot: a Go program, statically linked, ...), or not at all (why: the refusal). */
enum stop_method { STOP_BY_RUNTIME, STOP_BY_PTRACE, STOP_REFUSED };
enum stop_method stop_method_of(pid_t pid, char *why, size_t size);
/* Whether libvos.so is mapped into the process; with at != 0, whether address at is in it. */
int runtime_mapped_at(pid_t pid, uint64_t at);
/* Whether a process that cannot be stopped yet will be, once its runtime starts: just exec'd,
 * its environment preloads the runtime, and nothing else (a tracer, Go) stands in the way. */
int runtime_on_its_way(pid_t pid);
/* Whether the process runs under a seccomp filter (or strict mode). */
int in_seccomp_sandbox(pid_t pid);

/* Appends the PROCESS record's fixed part (state, limits, signals, threads) to b. */
int dump_process_state(pid_t pid, const struct frozen *fz, uint64_t session_tty_rdev, struct buf *b, struct err *e);

/* ---- vmas.c: a process's memory areas ---- */

struct vma {
	uint64_t start, end, pgoff;
	uint32_t prot;  /* PROT_* */
	uint32_t flags; /* VOS_VMA_* */
	uint32_t kind;  /* enum vos_vma_kind */
	uint32_t file_id; /* VOS_VMA_FILE: index into mem_dump.files; VOS_VMA_SHMEM: shm id */
	uint64_t dev, ino;
	int uffd_wp; /* registered for userfaultfd write-protection (smaps "uw"); not in the image */
	char path[512];
};

struct vma_list {
	struct vma *v;
	int n;
};

struct mapped_file {
	uint64_t dev, ino;
	char path[4096];
	int deleted;
	uint64_t (*ranges)[2]; /* mapped file ranges: offset, length (merged when written) */
	int nranges;
	struct buf captured; /* deleted files: (u64 offset, u32 len, bytes)* read while frozen */
};

struct shm_object {
	uint64_t dev, ino;
	int dumped;
};

struct mem_dump {
	struct mapped_file *files;
	int nfiles;
	struct shm_object *shms;
	int nshms;
	uint64_t pages, zero_pages, kept_pages, bytes;
	int parent_files;    /* mapped files left to the parent (FILEREF) */
	int there_files;     /* mapped files left to a move's target (VOS_FILE_THERE) */
	uint64_t file_bytes; /* mapped files' content written (FILEDATA) */
};

int collect_vmas(pid_t pid, struct mem_dump *md, struct vma_list *out, struct err *e);
/* The same from `early`, the process's smaps read before the freeze, when its areas are still
 * those (/proc/PID/maps, which costs no walk of the pages, says the same); otherwise as
 * collect_vmas. */
int collect_vmas_early(pid_t pid, const char *early, struct mem_dump *md, struct vma_list *out, struct err *e);
void put_vmas(const struct vma_list *l, struct buf *b);
/* The device of a tmpfs only the pod sees (its JVM perf-data directory): areas mapping its files
 * shared are written as shared memory, with their content, since no restore finds the files. */
void dump_note_private_mount(uint64_t dev);
/* Whether a file of device dev is on that tmpfs: its open descriptors are carried as memfds. */
int dump_on_private_mount(uint64_t dev);
/* The shm id of a memfd / shared memory object, registering it; for the fd tables. */
uint32_t shm_id_for(struct mem_dump *md, uint64_t dev, uint64_t ino);
void mem_dump_free(struct mem_dump *md);
void vma_list_free(struct vma_list *l);

/* ---- pages.c: their content (PAGES records) ---- */

struct dirty_tracker;

/* Writes the PAGES records of one process (and those of shared memory met first here). With a
 * tracker (live migration), pages the target already has become KEPT runs. */
int dump_pages(pid_t pid, struct mem_dump *md, const struct vma_list *l, struct dirty_tracker *t,
	       struct image_writer *w, struct err *e);
/* Which pages of area v an image holds (touched; in a private file mapping, changed): want[i]. */
int wanted_pages(int pagemap_fd, const struct vma *v, uint8_t *want, struct err *e);
/* Opens /proc/PID/pagemap and /proc/PID/mem. */
int open_process_memory(pid_t pid, int *pagemap_fd, int *mem_fd, struct err *e);

/* Pages on their way into records of one type and owner. */
struct page_batch;
struct page_batch *page_batch_new(uint32_t rec_type, uint32_t owner_kind, uint32_t owner, struct err *e);
/* Reads count pages at src of process pid (area v), to go to dst_addr; writes full records. */
int page_batch_add(struct page_batch *b, pid_t pid, int mem_fd, const struct vma *v, uint64_t src, uint64_t dst_addr,
		   int count, struct mem_dump *md, struct image_writer *w, struct err *e);
int page_batch_flush(struct page_batch *b, struct mem_dump *md, struct image_writer *w, struct err *e);
void page_batch_free(struct page_batch *b);

/* ---- mapped-files.c ---- */

/* A mapped file as an image described it (FILE or FILEREF), with what identifies it on disk. */
struct file_memo {
	char *path;
	uint64_t dev, ino, size, hash;
	int64_t mtime;
	uint64_t (*ranges)[2];
	int nranges;
};

/* The files an image described: pod init keeps those of the latest incremental-chain image (the
 * chain holds their content) for the next one. */
struct file_memos {
	struct file_memo *v;
	int n;
};
void file_memos_free(struct file_memos *m);

/* Paths, one per line of a file (a move's list of the mapped files its target has). */
struct path_list {
	char **v;
	int n;
};
/* Reads the list at path (at most 1 MiB; a missing file is an empty list). 0, or -1 (e). */
int path_list_load(struct path_list *l, const char *path, struct err *e);
void path_list_free(struct path_list *l);

/* After the pod runs again: FILE and FILEDATA records for every mapped file. With parent (the
 * files of the parent image, in an incremental image), a file whose content the parent's chain
 * holds gets a FILEREF record instead. With there (may be NULL: a move, the files its target
 * said it has, same size and mtime), a file listed gets a FILE record of kind VOS_FILE_THERE and
 * no FILEDATA (its hash still read here: the restore checks the target's file against it). out
 * (may be NULL): the files this image describes. */
int dump_mapped_files(struct mem_dump *md, struct image_writer *w, const struct file_memos *parent, const struct path_list *there,
		      struct file_memos *out, struct err *e);

/* ---- dirty.c: which pages a running pod writes (live migration) ---- */

struct dirty_proc;

struct dirty_tracker {
	struct dirty_proc *procs;
	int nprocs;
	uint32_t rounds;
	uint64_t round_pages; /* pages sent by the last round */
	uint64_t sent_pages;  /* by all rounds */
	/* Incremental checkpoints: the tracker lasts from one image to the next (pod init keeps it);
	 * pages of the previous image not written since become PARENT runs (refer) instead of KEPT,
	 * and each area is watched again once written. */
	int incremental;
	int refer;
	uint32_t adopted; /* processes it started to follow at the latest checkpoint */
};

/* Starts tracking: a userfaultfd (write-protect, asynchronous) for every process of the pod,
 * taken during a short freeze. Fails, saying why, where the kernel cannot track writes. */
int dirty_start(struct pod *pod, struct dirty_tracker *t, struct err *e);
/* One round while the pod runs: PRECOPY records of the pages written since the last round (the
 * first round: every page the process touched), write-protecting them again. */
int dirty_round(struct dirty_tracker *t, struct image_writer *w, struct err *e);
/* The pid of the tracker's i-th process (0 <= i < nprocs). */
pid_t dirty_pid(const struct dirty_tracker *t, int i);
/* A process the tracker still follows (the same one: pid and start time), or NULL. */
struct dirty_proc *dirty_find(struct dirty_tracker *t, pid_t pid);
/* For the frozen pod's final image: keep[i] = 1 for each wanted page of area v that the target
 * has from a round and that was not written since (pagemap_fd: the process's /proc/PID/pagemap).
 * With protect (incremental checkpoints), the same walk write-protects the written pages again;
 * 1 if it did (dirty_rearm's `protected`), 0 if they are not (all of them) protected yet. */
int dirty_kept(struct dirty_proc *p, int pagemap_fd, const struct vma *v, const uint8_t *want, uint8_t *keep, int protect);
/* Whether this kernel (and the pod's environment) lets written pages be tracked; why not. */
int dirty_available(struct err *e);
/* dirty_available, and that this process can make a userfaultfd with asynchronous
 * write-protection (what `vos-init probe` reports for live moves and incremental images). */
int dirty_probe_full(struct err *e);
/* Incremental checkpoints, while the pod is frozen, before the image: forgets the processes
 * gone, replaced or exec'd (their pages go whole). */
void dirty_prune(const struct freeze *f, struct dirty_tracker *t);
/* ... and after it (a process's own userfaultfd must not be in the image): follows every frozen
 * process it does not follow yet (a userfaultfd for each), from the pages it has now. */
int dirty_adopt(struct pod *pod, struct freeze *f, struct dirty_tracker *t, struct err *e);
/* wanted_pages' answer through PAGEMAP_SCAN (a walk of the page tables instead of 8 bytes of
 * pagemap per page); -1 where the scan fails. */
int dirty_wanted(int pagemap_fd, const struct vma *v, uint8_t *want);
/* Incremental checkpoints, once area v is written into the image (want: its pages in it):
 * write-protects it again (unless dirty_kept did: `protected`) and notes those pages as the
 * image's. */
void dirty_rearm(struct dirty_proc *p, int pagemap_fd, const struct vma *v, const uint8_t *want, int protected);
/* Incremental checkpoints, just before the freeze: write-protects the pages written in the areas
 * the latest image watches, taking them out of that image's pages (the coming image has them as
 * data). While frozen, only those written in the moment since are left to protect: that walk
 * changes few entries (the cost of protecting is per written entry and its TLB flush). */
void dirty_protect_before_freeze(struct dirty_tracker *t);
/* Stops tracking (the kernel drops the write protection with the last userfaultfd). */
void dirty_stop(struct dirty_tracker *t);

/* ---- files.c, object-kinds.c, drain.c: open files (objects.h for what they share) ---- */

struct fd_entry {
	int fd;
	int cloexec;
	uint32_t object;
};

struct proc_fds {
	pid_t pid;
	struct fd_entry *fds;
	int nfds;
};

struct object;

struct files_dump {
	struct object *objects;
	int nobjects;
	struct proc_fds *procs;
	int nprocs;
	uint64_t tty_rdev; /* the session terminal */
	struct vos_lock_rec *locks; /* file locks held (LOCKS), from the fds' fdinfo */
	int nlocks;
	int relay; /* a move's image: stream connections to outside the pod are kept (VOS_OBJ_RELAYED) */
};

/* Collects the fds of every frozen process and their open file descriptions (objects),
 * draining pipes and socket pairs (the data goes into the image and back after). relay: stream
 * connections to outside the pod become VOS_OBJ_RELAYED (a move that keeps them at the source). */
int dump_files(const struct freeze *f, struct files_dump *fd, struct mem_dump *md, uint64_t tty_rdev, int relay,
	       struct err *e);
/* OBJECTS, then OBJDATA for drained data and deleted files' content. */
int write_objects(struct files_dump *fd, struct image_writer *w, struct err *e);
/* LOCKS, when the pod holds any file lock (nothing otherwise). */
int write_locks(const struct files_dump *fd, struct image_writer *w, struct err *e);
/* Appends the fd table of process pid to b. */
void put_fd_table(const struct files_dump *fd, pid_t pid, struct buf *b);
/* Puts drained data back where it was (for a pod that keeps running). */
void put_back_drained(struct files_dump *fd);
void files_dump_free(struct files_dump *fd);
/* listen.c (dump): what will not survive the restore (sockets to outside the pod, connections waiting
 * to be accepted), as "warn ..." lines for the requester; returns how many. The connections a
 * move keeps at the source are said too, as "relay ID LOCALPORT WHO: WHAT" lines (not counted). */
int warn_lost_sockets(const struct files_dump *fd, int conn);
/* listen.c (dump): a held pod's answer to "sockets": the connections its image keeps at the
 * source (VOS_OBJ_RELAYED), one "socket ID" line each with our duplicate of it, then
 * "sockets-end". The requester keeps them once the pod has ended (init/anchor.c); until then
 * they are the frozen program's too, and nothing reads or writes them. */
int send_relayed_sockets(const struct files_dump *fd, int conn);
/* prescan.c: before the freeze, while every process runs: the sockets a restore will not carry
 * (connections, Unix sockets to outside the pod; with relay, only those a move cannot keep:
 * datagram sockets and connections not established), as "prewarn ..." lines for the requester,
 * read from /proc only (nothing stopped or connected to); returns how many. */
int prescan_lost(int conn, int relay);

#endif
