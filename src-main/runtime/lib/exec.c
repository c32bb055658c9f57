/*
 * The exec* and posix_spawn* family: VOS_SIGNAL stays blocked across exec until the new
 * program's runtime is up.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libvos.h"
#include "vos-control.h"

/*
 * exec resets our handler to the default (terminate) but keeps the signal mask: block
 * VOS_SIGNAL across it, so a checkpoint arriving before the new program's runtime is set up
 * waits for the runtime instead of killing the process. The runtime unblocks it at start.
 */
static void block_vos(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, VOS_SIGNAL);
	sys(SYS_rt_sigprocmask, SIG_BLOCK, (long)&set, (long)old, 8, 0);
}

static void restore_mask(const sigset_t *old)
{
	sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)old, 0, 8, 0);
}

#define EXEC_WRAPPER(call)                                                                  \
	do {                                                                                \
		sigset_t old;                                                               \
		block_vos(&old);                                                            \
		int rc = (call);                                                            \
		int e = errno;                                                              \
		restore_mask(&old);                                                         \
		errno = e;                                                                  \
		return rc;                                                                  \
	} while (0)

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	EXEC_WRAPPER(real_libc()->execve(path, argv, envp));
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	EXEC_WRAPPER(real_libc()->execvpe(file, argv, envp));
}

EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	EXEC_WRAPPER(real_libc()->fexecve(fd, argv, envp));
}

/* execl, execlp, execle: collect the variadic arguments (and execle's environment after
 * them), then go through the wrappers above. */
#define MAX_EXECL_ARGS 4096
enum exec_list_kind { EXEC_L, EXEC_LP, EXEC_LE };

static int exec_list(enum exec_list_kind kind, const char *path, const char *arg, va_list ap)
{
	char *argv[MAX_EXECL_ARGS];
	int n = 0;
	argv[n++] = (char *)arg;
	while (n < MAX_EXECL_ARGS && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	if (n == MAX_EXECL_ARGS) {
		errno = E2BIG;
		return -1;
	}
	if (kind == EXEC_LE)
		return execve(path, argv, va_arg(ap, char *const *));
	return kind == EXEC_LP ? execvpe(path, argv, environ) : execve(path, argv, environ);
}

EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	int rc = exec_list(EXEC_L, path, arg, ap);
	va_end(ap);
	return rc;
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	int rc = exec_list(EXEC_LP, file, arg, ap);
	va_end(ap);
	return rc;
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	int rc = exec_list(EXEC_LE, path, arg, ap);
	va_end(ap);
	return rc;
}

/* posix_spawn's child execs inside libc: ask it to start the child with VOS_SIGNAL blocked. */
static int spawn_blocked(spawn_fn fn, pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
			 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	posix_spawnattr_t mine;
	short flags = 0;
	sigset_t mask;
	if (posix_spawnattr_init(&mine) != 0)
		return fn(pid, path, actions, attr, argv, envp);
	if (attr) {
		/* Carry the caller's attributes over, adding our signal to the child's mask. */
		posix_spawnattr_getflags(attr, &flags);
		sigset_t def;
		posix_spawnattr_getsigdefault(attr, &def);
		posix_spawnattr_setsigdefault(&mine, &def);
		pid_t pgroup;
		posix_spawnattr_getpgroup(attr, &pgroup);
		posix_spawnattr_setpgroup(&mine, pgroup);
		struct sched_param sp;
		posix_spawnattr_getschedparam(attr, &sp);
		posix_spawnattr_setschedparam(&mine, &sp);
		int policy;
		posix_spawnattr_getschedpolicy(attr, &policy);
		posix_spawnattr_setschedpolicy(&mine, policy);
	}
	if (flags & POSIX_SPAWN_SETSIGMASK)
		posix_spawnattr_getsigmask(attr, &mask);
	else
		sys(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&mask, 8, 0);
	sigaddset(&mask, VOS_SIGNAL);
	posix_spawnattr_setsigmask(&mine, &mask);
	posix_spawnattr_setflags(&mine, (short)(flags | POSIX_SPAWN_SETSIGMASK));
	int rc = fn(pid, path, actions, &mine, argv, envp);
	posix_spawnattr_destroy(&mine);
	return rc;
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn_blocked(real_libc()->posix_spawn, pid, path, actions, attr, argv, envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn_blocked(real_libc()->posix_spawnp, pid, file, actions, attr, argv, envp);
}
