/* Restoring, from pod init's side and in each restoring process. */
#ifndef VOS_RESTORE_H
#define VOS_RESTORE_H

#include <stdint.h>
#include <sys/types.h>

#include "../common/u64map.h"
#include "../common/util.h"
#include "blob.h"
#include "image.h"

struct pod;

/* staging.c: a migration's pages, put in memory as they arrive (the target of a move). */
#define STAGING_CHUNK (2ull << 20)
struct staged_chunk {
	pid_t pid;
	uint64_t base; /* the 2 MiB-aligned piece of the process's address space it stands for */
	uint8_t *mem;  /* here, in pod init (inherited by the restoring processes) */
	uint8_t keep[STAGING_CHUNK / PAGE / 8]; /* pages the final image takes from here */
	uint8_t have[STAGING_CHUNK / PAGE / 8]; /* pages staged (their content, or zero) */
};
struct staging {
	struct staged_chunk *chunks;
	size_t n, chunks_cap;
	struct u64map index; /* (pid, base) -> chunk index */
	uint64_t next; /* where the next chunk goes; [STAGING_BASE, next) holds them all */
	uint64_t records; /* PRECOPY records staged */
	/* The final image's PAGES records of processes staged as they arrived (their DATA runs'
	 * pages hold the final content); final_off: one was not (the stream broke off, a record
	 * did not check), so no DATA run is taken from staging. */
	uint64_t final_records;
	int final_off;
	int enabled;
};

struct restore_ctx {
	struct image img;
	/* An incremental image's parents, nearest first (chain.c); in a restoring process, their fds
	 * as the blob has them. */
	struct image parents[VOS_MAX_CHAIN];
	int nparents;
	int parent_fd[VOS_MAX_CHAIN];
	const char *cache_dir; /* where mapped files missing here are recreated */
	int tty_fd;
	/* The address-space hole shared by every restoring process (see blob.h). */
	uint64_t hole;
	uint64_t hole_size;
	struct restore_sync *sync;
	/* Every object of the image, open in pod init at fd object_fd[i] (inherited by all), or
	 * OBJECT_OPENED_LATER: a file under /proc/PID/ of a process of the image, which does not
	 * exist yet while pod init opens the objects; each process holding it opens it (place_fds). */
	int *object_fd;
	/* Shared memory objects as memfds, by shm id. */
	int *shm_fd;
	/* Mapped files opened for mapping, by file id (or -1). */
	int *file_fd;
	/* This kernel's vdso is not the image's: old entry points jump to the new one. */
	int vdso_proxy;
	/* Per process (same order as img.procs): where each piece of its memory comes from. */
	struct run_list *runs;
	/* A migration's target: wait at the barrier for "go" on this control socket (else -1). */
	int hold_listen_fd;
	/* Live migration's target: pages sent ahead, already in memory (see staging.c). */
	struct staging staging;
	/* The monotonic clocks: "same" (as on this machine), "kept" (a time namespace continues
	 * the image's), "jumped" (differed, and no time namespace could be made). */
	const char *clocks;
	/* A move's target: where the connections kept at the source are reached (relay.c). */
	struct relay_target {
		int on;
		uint16_t port;     /* the agent's TCP relay port on 127.0.0.1 */
		char unix_path[108]; /* the agent's Unix relay socket */
		uint8_t key[VOS_RELAY_KEY_BYTES];
		char tag[VOS_RELAY_TAG_CHARS + 1]; /* names its Unix sockets ("": none) */
	} relay;
	/* What the restore could not carry, for the user ("; "-separated; the status line's note). */
	char note[2048];
	/* Pages that move into place from staging (plan_memory): what arrived already in memory. */
	uint64_t placed_pages;
};

struct run_list {
	struct blob_run *v;
	uint64_t n;
};

/* precopy.c: where the latest content of each page a process's PRECOPY records sent is. */
struct precopy_runs {
	struct page_run *v; /* every run, in the order sent */
	size_t n;
	int loaded;
	uint64_t lookups;
	struct u64map ix; /* page -> offset, built past many lookups */
};
int precopy_runs_load(const struct image *img, pid_t pid, struct precopy_runs *out, struct err *e);
/* 1 and *offset (0: a zero page), or 0 if the page was not sent ahead. */
int precopy_runs_find(struct precopy_runs *l, uint64_t addr, uint64_t *offset);
void precopy_runs_free(struct precopy_runs *l);

/* staging.c */
void staging_init(struct staging *s);
/* A PRECOPY record's payload (checked already): its pages into their chunks. */
void staging_take(struct staging *s, const void *payload, uint64_t len);
/* A PAGES record of the final image as it arrives: a process's DATA and ZERO runs are staged
 * (over what the rounds staged), KEPT runs left as they are; shared memory's are not staged. */
void staging_take_final(struct staging *s, const void *payload, uint64_t len);
/* Whether a DATA run's pages may be taken from staging: every PAGES record of the image's
 * processes (`records` of them) was staged. */
int staging_final_complete(const struct staging *s, uint64_t records);
struct staged_chunk *staging_find(const struct staging *s, pid_t pid, uint64_t addr);
/* The final image takes the pages from addr on from the chunk (they move into place), up to n or
 * the first that was not sent ahead; returns how many it took. */
uint64_t staging_keep_run(struct staged_chunk *c, uint64_t addr, uint64_t n);
/* Drops every staged page not kept: what moves into place is exactly what the image says.
 * Returns the pages kept. */
uint64_t staging_drop_unkept(struct staging *s);
/* Whether [start, end) meets the staging area. */
int staging_overlaps(const struct staging *s, uint64_t start, uint64_t end);
/* [start, end) holding every chunk (0, 0 without any). */
uint64_t staging_start(const struct staging *s);
uint64_t staging_end(const struct staging *s);
void staging_free(struct staging *s);
/* While `skip`, a fork's child does not get the staged pages (a helper that needs none of them:
 * copying the page tables of a gigabyte takes tens of milliseconds). Undone with skip 0; if
 * that fails, staging is off. */
void staging_skip_forks(struct staging *s, int skip);

/* receive.c: a migrating image from the agent's socket into a memfd, checked as far as it can
 * be while it arrives (*checked: where the full check goes on), its pages sent ahead staged. */
int receive_image(const char *path, struct staging *st, struct image_reader *checked, struct err *e);

/* objects.c: creates every object (files, pipes, sockets, ...) and shared memory in pod init. */
int create_objects(struct restore_ctx *c, struct err *e);
#define OBJECT_OPENED_LATER (-2)
/* Opens a file object (FILE, DEVICE) by its path, with its flags and position: a new descriptor;
 * -1 + e. Pod init for most; the process holding it for an OBJECT_OPENED_LATER one. */
int open_file_object(const struct img_object *o, struct err *e);
/* objects.c: helpers of the object restore that tcp-pair.c shares. fd as a copy at or above
 * `base` (fd closed); an object's OBJDATA bytes (malloc'd, *len); the status flags that matter. */
int high_fd(int fd, int base);
void *load_data(struct restore_ctx *c, const struct img_object *o, size_t *len, struct err *e);
int set_status_flags(int fd, uint32_t flags);
/* relay.c: the agent's relay from the environment (VOS_RELAY_PORT, VOS_RELAY_UNIX,
 * VOS_RELAY_KEY: set by the agent for a move's restore only); t->on stays 0 without them. */
void relay_target_from_env(struct relay_target *t);
/* relay.c: the connection o (VOS_OBJ_RELAYED) kept at the source: a new socket of its family
 * connected to the agent here, which relays it; without a relay (a restore from a file), a
 * disconnected one, and the note says so. The fd, or -1. */
int relayed_socket(struct restore_ctx *c, const struct img_object *o, struct err *e);
/* tcp-pair.c: the TCP connections whose two ends were in the pod, connected again (once every
 * listener of the pod listens), with the bytes that were in flight. */
int tcp_pair_objects(struct restore_ctx *c, int base, struct err *e);
/* objects.c: adds to what the restore tells the user it could not carry (c->note, the status
 * line's note: `restoreNote`); never the program's terminal. */
void restore_note(struct restore_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* inotify.c: the inotify instance o, its watches (o's OBJDATA payload, data/len) at the numbers
 * the program knows; raises an event on each watched file that changed meanwhile (one it cannot
 * raise an event on goes into c's note). The fd, or -1. */
int inotify_object(struct restore_ctx *c, const struct img_object *o, const void *data, size_t len, struct err *e);

/* objects.c: takes the flock and OFD locks of the image on the objects (pod init, before any
 * process exists; the processes share the descriptions, and so the locks). A lock someone else
 * holds now fails the restore (unavailable, naming the file). */
int take_description_locks(struct restore_ctx *c, struct err *e);
/* objects.c: the failure for lock l, which could not be taken (errno err): unavailable with the
 * file's path when someone else holds it. */
int lock_unavailable(struct err *e, const struct image *img, const struct vos_lock_rec *l, int err);
const char *lock_words(const struct vos_lock_rec *l);
/* sysv-ipc.c: the image's SysV semaphore sets, made again with their ids and values in the new
 * pod's IPC namespace (pod init, before any process exists). */
int create_sysv_ipc(struct restore_ctx *c, struct err *e);
/* files.c: opens (or recreates from the image) every file the image maps. */
int open_mapped_files(struct restore_ctx *c, struct err *e);
/* process.c: in a freshly created process, everything up to the blob; does not return. */
void restore_process(struct restore_ctx *c, struct img_process *p) __attribute__((noreturn));
/* blob-plan.c: in a restoring process, its fds in place: lays out the blob's code, plan and
 * stacks in the hole and jumps into the blob (area_fd: an fd for each area, or -1). */
void build_and_jump(struct restore_ctx *c, struct img_process *p, int image_fd, int exe_fd, const int *area_fd,
		    struct run_list *runs) __attribute__((noreturn));
/* plan.c: how much of the hole a process's zone takes. */
uint64_t restore_zone_size(const struct img_process *p, uint64_t nruns);
/* plan.c: the vdso check (this kernel's vdso against the image's): sets c->vdso_proxy. */
int plan_vdso(struct restore_ctx *c, struct err *e);
/* plan.c: every process's runs (c->runs), the hole for the restorer (c->hole, c->hole_size). */
int plan_memory(struct restore_ctx *c, struct err *e);
/* plan.c: a free stretch of `size` bytes, used by no process of the image and not by us; 0 if none. */
uint64_t find_hole(const struct image *img, uint64_t size);
/* runs.c: the runs of a process's PAGES records (pod init does this once, before forking). */
int collect_runs(struct restore_ctx *c, struct img_process *p, struct run_list *runs, struct err *e);
/* runs.c: the moves of a process's staged chunks into its anonymous areas; their count (out
 * may be NULL to count). */
uint64_t staged_moves(const struct restore_ctx *c, const struct img_process *p, struct blob_move *out);
/* vdso-proxy.c: jumps from the old vdso's functions to this kernel's; how many. */
int vdso_proxy_pokes(const uint8_t *old_vdso, uint64_t old_len, uint64_t old_addr, const uint8_t *new_vdso,
		     uint64_t new_len, uint64_t new_addr, struct blob_poke *out, int max);
/* tree.c: creates the children of `parent` (restoring processes and zombies). */
void create_children(struct restore_ctx *c, pid_t parent);
/* tree.c: creates the process tree, returns when every process is waiting in the blob. */
int create_tree(struct restore_ctx *c, struct err *e);
/* Waits until the sync page's counter at `field` reaches n, or a failure; -1 on failure. */
int wait_count(struct restore_ctx *c, uint32_t *field, uint32_t n, int timeout_ms, struct err *e);
/* Creates a process with the given pid (clone3 set_tid); 0 in the child, pid in the parent. */
pid_t fork_with_pid(pid_t pid, struct err *e);
/* In a restoring process: record a failure with a message and exit. */
void restore_fail(struct restore_ctx *c, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
/* restore_fail() about a file or directory: the agent gets its path as a detail, not only in the words. */
void restore_fail_path(struct restore_ctx *c, const char *path, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));

#endif
