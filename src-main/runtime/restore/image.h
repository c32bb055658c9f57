/* An image, loaded for restoring: the metadata in memory, the bulk (pages, file contents,
 * drained data) as offsets into the image file, read when needed. */
#ifndef VOS_RESTORE_IMAGE_H
#define VOS_RESTORE_IMAGE_H

#include <stdint.h>
#include <sys/types.h>

#include "../common/image-io.h"
#include "../common/util.h"
#include "vos-image.h"

struct img_thread {
	int32_t tid;
	uint64_t fs_base, gs_base, frame, clear_child_tid, robust_list, robust_len, pending;
};

struct img_timer {
	int32_t id, clock, signo, notify, target_tid;
	uint64_t value;
	int64_t interval_ns, value_ns;
};

struct img_vma {
	uint64_t start, end, pgoff;
	uint32_t prot, flags, kind, file_id;
	char path[512];
};

struct img_fd {
	int32_t fd;
	uint32_t cloexec;
	uint32_t object;
};

struct img_process {
	pid_t pid, ppid, pgid, sid;
	int32_t inner_tty;   /* index of a pod pty that is its controlling terminal, or -1 */
	pid_t inner_fg;      /* that terminal's foreground group */
	char comm[64];
	char exe[4096];
	char cwd[4096];
	uint32_t umask, no_new_privs;
	uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint8_t *auxv;
	uint32_t auxv_len;
	uint32_t nrlimits;
	uint64_t rlimits[32][2];
	uint64_t sigactions[65][4];
	int64_t itimers[3][4];
	uint64_t shared_pending;
	uint64_t ctl_addr;
	struct img_thread *threads;
	uint32_t nthreads;
	struct img_timer *timers;
	uint32_t ntimers;
	struct img_vma *vmas;
	uint32_t nvmas;
	struct img_fd *fds;
	uint32_t nfds;
	uint32_t nlocks;      /* POSIX record locks it holds (LOCKS; counted by image_check) */
	struct record *pages; /* PAGES records of this process */
	int npages;
	struct record rec;    /* its PROCESS record (for messages) */
};

struct img_zombie {
	pid_t pid, ppid, pgid, sid;
	int32_t status;
};

struct img_object {
	uint32_t id, kind, flags;
	pid_t owner;
	uint64_t pos;
	uint64_t p[4];
	char path[4096];
	uint32_t nepoll;
	struct {
		int32_t tfd;
		uint32_t events;
		uint64_t data;
	} *epoll;
	int has_data;
	uint32_t messages;
	struct record data; /* OBJDATA: payload = u32 id, u32 messages, bytes */
};

/* inotify.c: one watch of an inotify object's OBJDATA (docs/image-format.md). */
struct img_watch {
	int32_t wd;
	uint32_t mask, flags;
	uint64_t dev, ino, size;
	int64_t mtime, ctime;
	char path[4096];
};
/* inotify.c: the watches of inotify object o from its OBJDATA payload (data/len), every field
 * checked (an array the caller frees, and their number); -1 and e if the payload is malformed. */
int inotify_watches_read(const struct img_object *o, const void *data, size_t len, struct img_watch **out,
			 uint32_t *count, struct err *e);

struct img_file {
	uint32_t id;
	uint32_t kind; /* enum vos_file_kind: on disk (FILEDATA here), deleted, or the target's */
	uint64_t size;
	int64_t mtime;
	uint64_t hash;
	char path[4096];
	uint64_t (*ranges)[2];
	uint32_t nranges;
	struct record *data; /* FILEDATA records: u32 id, u32 pad, u64 offset, bytes */
	int ndata;
	int present;         /* FILE (or FILEREF) record seen */
	int in_parent;       /* FILEREF: its content is in the parent image, no FILEDATA here */
	struct record rec;   /* that record (for messages) */
	/* Where the content is, for a FILEREF once chain_load linked it: the file of a parent image
	 * whose FILEDATA hold it, and that image. NULL: this file's own FILEDATA. */
	const struct img_file *content;
	const struct image *content_img;
};

/* A SysV semaphore set (SYSV_IPC). */
struct img_sem_set {
	int32_t id, key;
	uint32_t uid, gid, mode, nsems;
	unsigned short *values;
};

struct img_shm {
	struct record *pages; /* PAGES records with owner kind 1 */
	int npages;
};

/* A PRECOPY record (live migration): pages of a process sent ahead, by pid. */
struct img_precopy {
	pid_t pid;
	struct record rec;
};

struct image {
	int fd;
	const char *name;
	/* header */
	uint32_t page_size;
	uint64_t xfeatures;
	char kernel[80];
	char machine[80];
	/* pod */
	pid_t main_pid;
	uint32_t have_terminal;
	pid_t fg_pgrp;
	uint32_t c_iflag, c_oflag, c_cflag, c_lflag;
	uint8_t c_line;
	uint8_t c_cc[64];
	uint32_t nccs, ispeed, ospeed;
	uint16_t ws_row, ws_col, ws_xpixel, ws_ypixel;
	struct img_process *procs;
	int nprocs;
	struct img_zombie *zombies;
	int nzombies;
	/* CLOCK_MONOTONIC, CLOCK_BOOTTIME and CLOCK_REALTIME (ns) as the pod saw them at the freeze */
	int have_clocks;
	int64_t clock_monotonic, clock_boottime, clock_realtime;
	struct img_object *objects;
	int nobjects;
	struct img_file *files;
	int nfiles;
	struct img_shm *shms;
	int nshms;
	struct img_precopy *precopy; /* in the order sent: a later one of a page is newer */
	int nprecopy;
	/* LOCKS: the file locks held at the freeze (none without the record). */
	struct vos_lock_rec *locks;
	uint32_t nlocks;
	int have_locks;
	struct record locks_rec;
	/* SYSV_IPC: the pod's SysV semaphore sets. */
	struct img_sem_set *sems;
	uint32_t nsems;
	int have_sysv;
	struct record sysv_rec;
	/* CHAIN (incremental checkpoints): this image's id, its parent's (zero: whole) and depth. */
	int have_chain;
	struct vos_chain chain;
	/* While loading (image-check.c): memory granted so far against VOS_MAX_METADATA, and
	 * the shared-memory areas seen (a shm id names one of them). */
	struct record objects_rec; /* OBJECTS (for messages) */
	uint64_t granted;
	int over_budget;
	uint32_t shm_areas;
};

/* A run of a PAGES or PRECOPY record: its header, and where a data run's bytes are. */
struct page_run {
	uint64_t addr; /* address (or offset in a shared memory object) */
	uint32_t npages, kind;
	uint64_t data; /* offset of the bytes in the image (VOS_RUN_DATA) */
};

/* The next run's header from a PAGES or PRECOPY payload in memory (its data, if any, follows in
 * r); -1 when the payload is cut short. */
struct reader;
int page_run_read(struct reader *r, struct vos_page_run *run);

/* The runs of a pages record, header by header (pread; the data is not read). */
struct run_cursor {
	int fd;
	uint64_t pos, end;
	struct record rec; /* for messages */
};
void run_cursor_init(struct run_cursor *c, int fd, const struct record *rec);
/* 1: *r is the next run; 0: there are no more; -1: it cannot be read, or overruns its record. */
int run_next(struct run_cursor *c, struct page_run *r, struct err *e);

/* Reads every metadata record and checks every field the restorer uses (image-check.c): a
 * loaded image can be trusted. Run image_verify first (the checksums and the trailer). */
int image_load(struct image *img, int fd, const char *name, struct err *e);
/* Frees what image_load allocated (the fd stays open). */
void image_free(struct image *img);

/* image-check.c: a VOS_OBJ_TCP_PAIR end's addresses (path "LOCAL PEER", ports in p[2]) as
 * socket addresses of its domain; -1 when they cannot be. */
struct sockaddr_storage;
int tcp_pair_addresses(const struct img_object *o, struct sockaddr_storage *local, struct sockaddr_storage *peer);
/* image-check.c: the checks of what image_load read. */
/* Memory for n items of size bytes, charged to the image's budget (VOS_MAX_METADATA); NULL (and
 * over_budget set) when a sane image would not need it. Zeroed. */
void *image_grant(struct image *img, uint64_t n, size_t size);
/* Grows *list by one item (capacity doubles), charged to the budget; NULL when over it. */
void *image_grow(struct image *img, void *list, int n, size_t size);
/* Whether a record of this type may come after the ones before it (docs/image-format.md,
 * "Record order"); *phase is where the image stands. */
int record_in_order(uint32_t type, int *phase, uint32_t seen_process);
/* After every record is loaded: ids, references between records, every run of pages. */
int image_check(struct image *img, struct err *e);
struct img_process *image_process(struct image *img, pid_t pid);
/* Whether the image needs a parent (PARENT runs refer to it). */
int image_needs_parent(const struct image *img);
/* An id as 32 hex digits. */
void chain_id_text(const uint8_t id[VOS_CHAIN_ID], char out[2 * VOS_CHAIN_ID + 1]);

/* chain.c: loads an incremental image's parents (paths nearest first; each verified and loaded
 * whole) into parents[], checking each is the one the image below names. Fails naming the
 * first parent that is missing, damaged or another image. *n: how many were loaded. Then links
 * every FILEREF of the chain to the parent's file whose FILEDATA hold its content (content,
 * content_img), failing naming the parent that lacks it. */
int chain_load(struct image *img, const char *const *paths, int npaths, struct image *parents, int *n, struct err *e);

#endif
