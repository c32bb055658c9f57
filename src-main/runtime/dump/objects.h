/*
 * What the parts of the open-files dump share: an object (open file description) as the dump
 * learns it. files.c walks the fds and keeps the object table, object-kinds.c says what each new
 * object is, drain.c takes the data buffered in pipes and socket pairs (and puts it back).
 */
#ifndef VOS_DUMP_OBJECTS_H
#define VOS_DUMP_OBJECTS_H

#include <stdint.h>
#include <sys/types.h>

#include "dump.h"

struct object {
	uint32_t id;
	uint32_t kind;
	uint32_t flags; /* open flags, without O_CLOEXEC (that is per fd) */
	uint64_t pos;
	char path[4096];
	uint64_t p[4]; /* kind-specific, see docs/image-format.md */
	struct buf epoll; /* EPOLL: (i32 tfd, u32 events, u64 data)* */
	uint32_t nepoll;
	pid_t owner; /* the first process found holding it */
	int dup;     /* our duplicate of it, for inspection and draining */
	uint64_t dev, ino, rdev;
	mode_t mode;
	struct buf data; /* drained or captured content */
	int has_data;
	int messages;   /* data is (u32 len, bytes)* datagrams */
	int refill_fd;  /* where drained data goes back, or -1 */
};

/* object-kinds.c: what the new object o is (our duplicate of fd `fd` of process pid, whose
 * /proc link is `link` and fdinfo `info`): its kind and kind-specific fields, and the content of
 * files that live nowhere else. */
int classify_object(struct object *o, pid_t pid, int fd, const char *link, const char *info, uint64_t tty_rdev,
		    struct mem_dump *md, struct err *e);
/* inotify.c: the inotify instance o (fd `fd` of process pid, fdinfo `info`): its watches, each
 * with the path it watches; refuses a watch whose path cannot be found. */
int classify_inotify(struct object *o, pid_t pid, int fd, const char *info, struct err *e);
/* object-kinds.c: one line of /proc/PID/fdinfo/FD: the value after "key:", or NULL. */
const char *fdinfo_value(const char *text, const char *key);

/* listen.c: o (our duplicate of fd `fd` of process pid) listens: its kind and fields, or refused. */
int classify_listener(struct object *o, pid_t pid, int fd, int domain, int type, struct err *e);
/* listen.c: o, a Unix socket end whose peer is no socket yet, waits in the queue of one of the
 * pod's listeners: then (1) it becomes a VOS_OBJ_QUEUED_CLIENT, connected again at restore; 0 if not. */
int queued_client(struct files_dump *fd, struct object *o);
/* listen.c: where a listener listens, in words ("/path", "@6162", "127.0.0.1:8000"). */
void listener_words(const char *path, uint64_t domain, uint64_t p3, char *out, size_t size);
/* listen.c: words in the path of each socket the restore cannot carry (what it was connected to). */
void describe_closed_sockets(struct files_dump *fd);

/* tcp-pair.c: TCP connections whose two ends are both in the pod become VOS_OBJ_TCP_PAIR (their
 * unread data peeked, not taken); refused when bytes sent have not reached the other end. */
int pair_tcp_sockets(struct files_dump *fd, struct err *e);
/* drain.c: each Unix socket's peer (inode -> peer inode), from the kernel's socket diagnostics
 * (sock_diag) of this network namespace; read only, nothing is stopped or duplicated. */
struct peer_map {
	uint64_t (*pairs)[2]; /* inode, peer inode */
	int n;
};
int load_unix_peers(struct peer_map *m, struct err *e);
/* drain.c: the peer inode of the Unix socket `ino`, or 0 (none, or not known). */
uint64_t peer_of(const struct peer_map *m, uint64_t ino);

/* drain.c: pairs socket ends, drains pipes and sockets, and prepares the refill. */
int finish_objects(struct files_dump *fd, struct err *e);

#endif
