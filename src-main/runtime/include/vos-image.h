/*
 * The vOS image format, version 1. The full description, field by field, is in
 * docs/image-format.md; keep the two in step.
 *
 * An image is a sequence of records, written front to back (it can be streamed: nothing is
 * ever patched afterwards). Each record:
 *
 *   u32 magic "VREC" | u32 type | u64 payload length | u32 flags | u32 CRC32C of these 20 bytes
 *   payload
 *   u32 CRC32C of the payload
 *
 * The first record is HEADER, the last TRAILER; TRAILER holds the number of records and bytes
 * before it and a CRC32C over all earlier payload CRCs, so a truncated image (no trailer, or a
 * trailer whose counts do not match) and a damaged one (a CRC mismatch) are both refused before
 * anything is restored. All integers are little-endian.
 *
 * vos-init writes every record: `vos-init checkpoint` (init/checkpoint-request.c) HEADER, then
 * pod init the pod's records, then the helper SESSION (content given by the agent) and TRAILER.
 */
#ifndef VOS_IMAGE_H
#define VOS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* 2: LOCKS, SYSV_IPC, listening sockets and inotify objects, which a version-1 reader would
 * pass over or refuse late; a reader takes every version from VOS_IMAGE_VERSION_OLDEST (a
 * version-1 image holds none of them and reads the same). */
#define VOS_IMAGE_VERSION 2
#define VOS_IMAGE_VERSION_OLDEST 1
#define VOS_REC_MAGIC 0x43455256u /* "VREC" */
#define VOS_REC_HEADER_SIZE 24
#define VOS_IMAGE_MAGIC "vOS image"
#define VOS_MAX_RECORD (64u << 20) /* no record payload is larger */
#define VOS_PAGES_CHUNK (1u << 20) /* page data per PAGES record, at most: one cache-sized batch */

/* What a reader accepts (docs/image-format.md, "Limits"): no count in an image may make the
 * restorer allocate without bound. */
#define VOS_MAX_METADATA (256u << 20) /* the restorer's whole in-memory description of an image */
#define VOS_MAX_IMG_THREADS 4096u     /* per process, and POSIX timers per process */
#define VOS_MAX_RLIMITS 32u
#define VOS_MAX_FD (1u << 20)         /* an fd number; also fds per process and epoll entries */
#define VOS_MAX_ADDRESS (1ull << 57)  /* user addresses end below (5-level paging) */
#define VOS_MAX_FILE_SIZE (1ull << 46) /* a mapped, deleted or memfd file's size */
#define VOS_MAX_PRECOPY_PAGES (1u << 24) /* pages in PRECOPY records (the restorer indexes them all) */
#define VOS_MAX_LOCKS (1u << 16)      /* file locks in a LOCKS record */
#define VOS_MAX_SEM_SETS 32000u       /* SysV semaphore sets in a SYSV_IPC record (the kernel's SEMMNI at most) */
#define VOS_MAX_SEMS 32000u           /* semaphores in one set (SEMMSL at most) */
#define VOS_MAX_SEM_VALUE 32767u      /* SEMVMX */

enum vos_rec_type {
	VOS_REC_HEADER = 1,   /* format version, page size, producer, kernel, machine (CPU state: in POD) */
	VOS_REC_SESSION = 2,  /* session metadata and screen (JSON the agent gives; vos-init writes it) */
	VOS_REC_POD = 3,      /* CPU state components (XCR0), the session terminal, the process tree, clocks */
	VOS_REC_OBJECTS = 4,  /* open file descriptions shared across the pod */
	VOS_REC_PROCESS = 5,  /* one process: its state, threads, memory areas, fds */
	VOS_REC_PAGES = 6,    /* memory content of one process, or of one shared memory object */
	VOS_REC_OBJDATA = 7,  /* buffered data of a pipe or socket, content of a deleted file or memfd, pty modes */
	VOS_REC_FILE = 8,     /* a file mapped by the pod: identity */
	VOS_REC_FILEDATA = 9, /* a range of a mapped file's content */
	VOS_REC_PRECOPY = 10, /* live migration: pages sent ahead while the pod ran (PAGES' layout) */
	VOS_REC_CHAIN = 11,   /* incremental checkpoints: this image's id and its parent's (PARENT runs) */
	VOS_REC_FILEREF = 12, /* incremental checkpoints: a mapped file whose content the parent holds (FILE's layout) */
	VOS_REC_LOCKS = 13,   /* file locks held at the freeze: flock, POSIX record locks, OFD locks */
	VOS_REC_SYSV_IPC = 14, /* the pod's SysV semaphore sets, with their values */
	VOS_REC_TRAILER = 15, /* counts and CRC chain of every record before it; the last record */
};

struct vos_rec_header {
	uint32_t magic;
	uint32_t type;
	uint64_t length;
	uint32_t flags;
	uint32_t crc;
};

/* POD process entry flags */
#define VOS_PROC_ZOMBIE 1u

/* FILE's second field: what the image holds of the file. */
enum vos_file_kind {
	VOS_FILE_ON_DISK = 0, /* its mapped ranges are in FILEDATA */
	VOS_FILE_DELETED = 1, /* deleted while mapped: FILEDATA holds what the pod could read */
	VOS_FILE_THERE = 2,   /* no FILEDATA: a move's target has the same file (its offer said so) */
};

/* Memory area kinds */
enum vos_vma_kind {
	VOS_VMA_ANON = 1,      /* private anonymous (heap, stack, malloc arenas) */
	VOS_VMA_FILE = 2,      /* private mapping of a file: content from FILE records + own COW pages */
	VOS_VMA_SHARED_FILE = 3, /* shared mapping of a regular file: content stays in the file */
	VOS_VMA_SHMEM = 4,     /* shared anonymous memory / memfd / deleted file: content in PAGES of its shm object */
	VOS_VMA_VDSO = 5,
	VOS_VMA_VVAR = 6,
	VOS_VMA_VVAR_VCLOCK = 7,
	VOS_VMA_VSYSCALL = 8,  /* not restored: the kernel provides it */
};

/* vma flags (from /proc/PID/smaps: the mapping's kind and the advice it was given) */
#define VOS_VMA_GROWSDOWN 1u    /* gd: a stack that grows down */
#define VOS_VMA_SHARED 2u
#define VOS_VMA_HUGEPAGE 4u     /* hg: MADV_HUGEPAGE */
#define VOS_VMA_NOHUGEPAGE 8u   /* nh: MADV_NOHUGEPAGE */
#define VOS_VMA_DONTFORK 16u    /* dc: MADV_DONTFORK */
#define VOS_VMA_WIPEONFORK 32u  /* wf: MADV_WIPEONFORK */
#define VOS_VMA_DONTDUMP 64u    /* dd: MADV_DONTDUMP */

/*
 * A PAGES or PRECOPY payload: a vos_pages_head, then runs, each a vos_page_run followed (for a
 * VOS_RUN_DATA run) by its pages' bytes. Both structs are their bytes in the image (little-endian
 * like the machines vOS runs on): they are written and read as they are.
 */
struct vos_pages_head {
	uint32_t owner_kind; /* 0: a process (owner: its pid), 1: a shared memory object (its shm id) */
	uint32_t owner;
};

struct vos_page_run {
	uint64_t addr;   /* address (or offset in a shared memory object) */
	uint32_t npages;
	uint32_t kind;   /* VOS_RUN_* */
};

_Static_assert(sizeof(struct vos_pages_head) == 8 && offsetof(struct vos_pages_head, owner) == 4,
	       "a PAGES record's head is u32 owner kind, u32 owner");
_Static_assert(sizeof(struct vos_page_run) == 16 && offsetof(struct vos_page_run, npages) == 8 &&
		       offsetof(struct vos_page_run, kind) == 12,
	       "a run's header is u64 address, u32 pages, u32 kind");

/* Run kinds */
#define VOS_RUN_DATA 0u
#define VOS_RUN_ZERO 1u
#define VOS_RUN_KEPT 2u /* the pages' content is the latest PRECOPY of them (nothing follows) */
#define VOS_RUN_PARENT 3u /* the pages' content is that of the same pages in the parent image (CHAIN) */

/* A CHAIN payload: the image's id (random), its parent's id (zero: the image is whole), and how
 * many images lie below it (0 for a whole one). */
#define VOS_CHAIN_ID 16
#define VOS_MAX_CHAIN 8 /* parents an image may need: at most this many below it */
struct vos_chain {
	uint8_t id[VOS_CHAIN_ID];
	uint8_t parent[VOS_CHAIN_ID];
	uint32_t depth;
	uint32_t pad;
};
_Static_assert(sizeof(struct vos_chain) == 40, "a CHAIN record is u8[16] id, u8[16] parent, u32 depth, u32 0");

/* Object (open file description) kinds */
enum vos_obj_kind {
	VOS_OBJ_FILE = 1,      /* regular file or directory, reopened by path */
	VOS_OBJ_DELETED = 2,   /* regular file deleted while open: content in OBJDATA */
	VOS_OBJ_DEVICE = 3,    /* /dev/null, /dev/zero, /dev/urandom, ... by path */
	VOS_OBJ_SESSION_TTY = 4, /* the session's terminal, rebound to the new pty */
	VOS_OBJ_PIPE = 5,      /* one end of a pipe or FIFO */
	VOS_OBJ_SOCKETPAIR = 6, /* one end of a Unix socket pair inside the pod */
	VOS_OBJ_EVENTFD = 7,
	VOS_OBJ_EPOLL = 8,
	VOS_OBJ_TIMERFD = 9,
	VOS_OBJ_SIGNALFD = 10,
	VOS_OBJ_CLOSED_SOCKET = 11, /* a socket to outside the pod: restored as a disconnected socket */
	VOS_OBJ_MEMFD = 12,    /* memfd: content in OBJDATA (if also mapped: the shm object's PAGES are used) */
	VOS_OBJ_PTY_MASTER = 13, /* a pty created inside the pod */
	VOS_OBJ_PTY_SLAVE = 14,
	VOS_OBJ_LISTEN_SOCKET = 15, /* a listening socket: bound and listening again at its address */
	VOS_OBJ_INOTIFY = 16,  /* an inotify instance: its watches in OBJDATA (see docs/image-format.md) */
	VOS_OBJ_QUEUED_CLIENT = 17, /* a Unix socket whose connection waits in a pod listener's queue */
	VOS_OBJ_TCP_PAIR = 18, /* one end of a TCP connection whose other end is in the pod too */
	VOS_OBJ_RELAYED = 19,  /* a move's connection to outside the pod, kept open at the source: its
				* bytes come through the target's agent (docs/image-format.md) */
};

/* VOS_OBJ_PTY_MASTER: p[1]'s flags. */
#define VOS_PTY_PACKET 1u /* the master was in packet mode (TIOCPKT) */

/* VOS_OBJ_INOTIFY: a watch's flags, and the bounds a restorer accepts. */
#define VOS_INOTIFY_NO_FOLLOW 1u       /* the watch is on a symbolic link itself (IN_DONT_FOLLOW) */
#define VOS_MAX_INOTIFY_WATCHES 65536u /* per instance */
#define VOS_MAX_INOTIFY_WD (1 << 20)   /* a watch number (lower ones are made and dropped to reach it) */

/* A LOCKS payload: u32 n, then n of these (docs/image-format.md). Whose a lock is: a POSIX
 * record lock belongs to a process (pid), a flock or OFD lock to an open file description
 * (object; pid 0). */
enum vos_lock_kind {
	VOS_LOCK_FLOCK = 1,
	VOS_LOCK_POSIX = 2,
	VOS_LOCK_OFD = 3,
};
#define VOS_LOCK_READ 1u
#define VOS_LOCK_WRITE 2u
#define VOS_LOCK_TO_EOF UINT64_MAX /* end: the lock reaches past the end of the file */
struct vos_lock_rec {
	uint32_t kind;   /* enum vos_lock_kind */
	uint32_t type;   /* VOS_LOCK_READ or VOS_LOCK_WRITE */
	int32_t pid;     /* POSIX: the process that holds it; otherwise 0 */
	uint32_t object; /* the open file description it was taken through (its id in OBJECTS) */
	uint64_t start;  /* first byte (flock: 0) */
	uint64_t end;    /* last byte, or VOS_LOCK_TO_EOF (flock: VOS_LOCK_TO_EOF) */
};
_Static_assert(sizeof(struct vos_lock_rec) == 32, "a lock is u32 kind, u32 type, i32 pid, u32 object, u64 start, u64 end");

/* VOS_OBJ_LISTEN_SOCKET: p[0] = backlog (low 32 bits) | connections waiting at the checkpoint
 * (high 32, not carried); p[1] = domain; p[2] = type; p[3] = port (bits 0-15) | the flags below |
 * the Unix socket file's mode (bits 20-31) | TCP_DEFER_ACCEPT seconds (high 32); path = the
 * address (docs/image-format.md). */
#define VOS_LISTEN_REUSEADDR (1ull << 16)
#define VOS_LISTEN_REUSEPORT (1ull << 17)
#define VOS_LISTEN_V6ONLY (1ull << 18)
#define VOS_LISTEN_MODE_SHIFT 20

/* VOS_OBJ_TCP_PAIR: p[0] = the other end's object id; p[1] = domain (AF_INET, AF_INET6); p[2] =
 * local port (bits 0-15) | peer port (bits 16-31); p[3] = the flags below; path = "LOCAL PEER"
 * (numeric addresses as this end saw them); OBJDATA = its unread receive queue
 * (docs/image-format.md). */
#define VOS_TCP_SHUT_WR 1ull   /* this end had shut down writing (its FIN reached the other end) */
#define VOS_TCP_NODELAY 2ull   /* TCP_NODELAY */
#define VOS_TCP_KEEPALIVE 4ull /* SO_KEEPALIVE */
#define VOS_TCP_REUSEADDR 8ull /* SO_REUSEADDR */
#define VOS_TCP_FLAGS 15ull

/* VOS_OBJ_RELAYED: p[1] = domain (AF_INET, AF_INET6, AF_UNIX); p[2] = SOCK_STREAM; p[3] =
 * VOS_TCP_NODELAY | VOS_TCP_KEEPALIVE (TCP); path = what it is connected to, in words. The
 * restorer connects a new socket of that domain to the target's agent and first sends it
 * VOS_RELAY_MAGIC, the restore's 16-byte key and the object id (u32, big-endian). The agent
 * answers one byte, VOS_RELAY_ACK, once it has taken the connection (or closes it): the restorer
 * waits for it, so that every relayed connection is the agent's before the restore says it is
 * done. */
#define VOS_RELAY_MAGIC "VOSRELAY"
#define VOS_RELAY_KEY_BYTES 16
#define VOS_RELAY_HELLO_BYTES (8 + VOS_RELAY_KEY_BYTES + 4)
#define VOS_RELAY_ACK 0x06
#define VOS_RELAY_ACK_WAIT_MS 10000
/* A Unix one is bound first to the abstract name VOS_RELAY_NAME "TAG-ID" (TAG: the restore's
 * VOS_RELAY_TAG, 16 hex digits, given by the agent with the key; ID the object id, decimal):
 * a later checkpoint names it by that ("relay ID @NAME ..."), so that the agent knows a Unix
 * connection it relays itself, as it knows a TCP one by its port. */
#define VOS_RELAY_NAME "vos-relay-"
#define VOS_RELAY_TAG_CHARS 16

#endif
