/*
 * SysV IPC of the pod (SYSV_IPC record). The pod has an IPC namespace of its own (init/pod.c),
 * so every SysV object its programs made is in it, and pod init, which is in it too, sees them in
 * /proc/sysvipc. Semaphore sets are carried with their ids, keys, owners, modes and values;
 * shared memory segments and message queues are refused, as are SEM_UNDO adjustments (the kernel
 * shows no process's undo list), each with its reason.
 */
#include <errno.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dump.h"
#include "vos-image.h"

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

/* The first data line of /proc/sysvipc/NAME (after its header), or NULL when there is none. */
static char *first_object(const char *name, char **text, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/sysvipc/%s", name);
	*text = read_text_file(path, NULL);
	if (!*text) {
		if (errno == ENOENT)
			return NULL; /* a kernel without SysV IPC: nothing to carry */
		fail(e, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	char *line = strchr(*text, '\n');
	return line && line[1] ? line + 1 : NULL;
}

static int refuse_others(struct err *e)
{
	static const char *const kinds[][2] = {{"shm", "a SysV shared memory segment"}, {"msg", "a SysV message queue"}};
	for (size_t i = 0; i < ARRAY_LEN(kinds); i++) {
		char *text = NULL;
		e->msg[0] = 0;
		char *line = first_object(kinds[i][0], &text, e);
		if (!line && e->msg[0]) {
			free(text);
			return -1;
		}
		if (line) {
			long long key = 0, id = 0;
			sscanf(line, "%lld %lld", &key, &id);
			free(text);
			return fail_code(e, "unsupported", "the pod has %s (key %#llx, id %lld), which vOS cannot carry yet", kinds[i][1],
					 (unsigned long long)key & 0xffffffffull, id);
		}
		free(text);
	}
	return 0;
}

/* A process that ever used SEM_UNDO has an undo list (pod init, which never did, has none); the
 * kernel does not show what is in it. A multi-threaded process has one too (its threads share
 * it, made at the first thread), so this is asked only when the pod has semaphore sets, and the
 * refusal says which of the two it is. */
static int refuse_undo(const struct freeze *f, struct err *e)
{
	pid_t me = getpid();
	for (int i = 0; i < f->nprocs; i++) {
		pid_t pid = f->procs[i].pid;
		long r = syscall(SYS_kcmp, me, pid, KCMP_SYSVSEM, 0, 0);
		if (r < 0 && errno == ENOSYS)
			return 0; /* no kcmp: the kernel has no way to tell, nor SysV semaphores to undo */
		if (r > 0) {
			char name[96], threads[32] = "1";
			describe_pid(pid, name, sizeof name);
			if (status_field(pid, "Threads", threads, sizeof threads) == 0 && strtol(threads, NULL, 10) > 1)
				return fail_code(e, "unsupported",
						 "%s has %ld threads and the session uses SysV semaphores: the kernel gives every "
						 "multi-threaded process a semaphore undo list (SEM_UNDO) and does not show what is in "
						 "it, so vOS cannot tell whether adjustments would be lost at its exit, and does not "
						 "checkpoint it (a single-threaded process that never used SEM_UNDO is carried)",
						 name, strtol(threads, NULL, 10));
			return fail_code(e, "unsupported",
					 "%s used SysV semaphores with SEM_UNDO: it has adjustments to undo at its exit, which "
					 "the kernel does not show and vOS cannot carry",
					 name);
		}
	}
	return 0;
}

int write_sysv_ipc(const struct freeze *f, struct image_writer *w, struct err *e)
{
	if (refuse_others(e) < 0)
		return -1;
	char *text = NULL;
	e->msg[0] = 0;
	char *line = first_object("sem", &text, e);
	if (!line) {
		free(text);
		return e->msg[0] ? -1 : 0; /* no semaphore sets: no record, and nothing to undo */
	}
	if (refuse_undo(f, e) < 0) {
		free(text);
		return -1;
	}
	struct buf b;
	buf_init(&b);
	uint32_t n = 0;
	buf_u32(&b, 0); /* the count, set below */
	int rc = 0;
	for (; line && *line && rc == 0; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		long long key, id;
		if (sscanf(line, "%lld %lld", &key, &id) != 2)
			continue;
		struct semid_ds ds;
		union semun arg = {.buf = &ds};
		if (semctl((int)id, 0, IPC_STAT, arg) < 0) {
			rc = fail(e, "cannot read SysV semaphore set %lld: %s", id, strerror(errno));
			break;
		}
		unsigned short *values = xcalloc(ds.sem_nsems ? ds.sem_nsems : 1, sizeof *values);
		arg.array = values;
		if (semctl((int)id, 0, GETALL, arg) < 0) {
			rc = fail(e, "cannot read the values of SysV semaphore set %lld: %s", id, strerror(errno));
			free(values);
			break;
		}
		buf_i32(&b, (int32_t)id);
		buf_i32(&b, (int32_t)key);
		buf_u32(&b, ds.sem_perm.uid);
		buf_u32(&b, ds.sem_perm.gid);
		buf_u32(&b, ds.sem_perm.mode & 0777);
		buf_u32(&b, (uint32_t)ds.sem_nsems);
		for (unsigned long k = 0; k < ds.sem_nsems; k++)
			buf_u16(&b, values[k]);
		free(values);
		n++;
	}
	free(text);
	if (rc == 0) {
		memcpy(b.data, &n, sizeof n); /* little-endian, as buf_u32 writes */
		rc = iw_record1(w, VOS_REC_SYSV_IPC, b.data, b.len, e);
	}
	buf_free(&b);
	return rc;
}
