/*
 * The pod's SysV semaphore sets (SYSV_IPC), made again in the new pod's own IPC namespace by pod
 * init before any process exists: each with its id (sem_next_id, which pod init may write: it
 * has CAP_SYS_ADMIN in the user namespace that owns the IPC namespace), key, owner, mode and
 * values.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <unistd.h>

#include "restore.h"

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static int set_next_id(int id, struct err *e)
{
	const char *path = "/proc/sys/kernel/sem_next_id";
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fail(e, "cannot choose the ids of SysV semaphore sets: %s: %s", path, strerror(errno));
		return err_path(e, path);
	}
	char text[16];
	int len = snprintf(text, sizeof text, "%d\n", id);
	int rc = write_full(fd, text, (size_t)len);
	int er = errno;
	close(fd);
	if (rc < 0) {
		fail(e, "cannot choose the ids of SysV semaphore sets: %s: %s", path, strerror(er));
		return err_path(e, path);
	}
	return 0;
}

static int make_set(const struct img_sem_set *s, struct err *e)
{
	if (set_next_id(s->id, e) < 0)
		return -1;
	int id = semget(s->key, (int)s->nsems, IPC_CREAT | IPC_EXCL | (int)(s->mode & 0777));
	if (id < 0)
		return fail(e, "cannot make SysV semaphore set %d (key %#x) again: %s", s->id, (unsigned)s->key, strerror(errno));
	if (id != s->id)
		return fail(e, "SysV semaphore set %d came back as %d: this kernel does not let its id be chosen", s->id, id);
	struct semid_ds ds;
	union semun arg = {.buf = &ds};
	if (semctl(id, 0, IPC_STAT, arg) < 0)
		return fail(e, "SysV semaphore set %d: %s", id, strerror(errno));
	ds.sem_perm.uid = s->uid;
	ds.sem_perm.gid = s->gid;
	ds.sem_perm.mode = (unsigned short)(s->mode & 0777);
	if (semctl(id, 0, IPC_SET, arg) < 0)
		return fail(e, "cannot give SysV semaphore set %d its owner and mode back: %s", id, strerror(errno));
	arg.array = s->values;
	if (s->nsems && semctl(id, 0, SETALL, arg) < 0)
		return fail(e, "cannot set the values of SysV semaphore set %d: %s", id, strerror(errno));
	return 0;
}

int create_sysv_ipc(struct restore_ctx *c, struct err *e)
{
	/* The kernel forgets sem_next_id once a set took it (it is -1 again). */
	for (uint32_t i = 0; i < c->img.nsems; i++)
		if (make_set(&c->img.sems[i], e) < 0)
			return -1;
	return 0;
}
