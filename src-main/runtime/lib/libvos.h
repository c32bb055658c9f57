/*
 * What the parts of libvos.so share: the libc functions its wrappers stand in front of (resolved
 * in the constructor, libvos.c), the raw system call, and the program's view of VOS_SIGNAL.
 *
 *   libvos.c   the constructor: resolves libc, installs the handler, unblocks the signal
 *   stop.c     the handler: stopping, parking, the control block
 *   signals.c  sigaction/signal/sigprocmask/pthread_sigmask/sigsuspend
 *   exec.c     the exec* and posix_spawn* family
 */
#ifndef VOS_LIBVOS_H
#define VOS_LIBVOS_H

#include <signal.h>
#include <spawn.h>
#include <unistd.h>

/* The wrappers are the library's only exported symbols (built with -fvisibility=hidden). */
#define EXPORT __attribute__((visibility("default")))

/* A system call with no libc wrapper in between: usable in the handler and in the wrappers. */
static inline long sys(long n, long a, long b, long c, long d, long e)
{
	return syscall(n, a, b, c, d, e, 0);
}

typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
			char *const[], char *const[]);

/* The next definitions (libc's) of the functions libvos wraps. */
struct real_libc {
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	int (*sigprocmask)(int, const sigset_t *, sigset_t *);
	int (*pthread_sigmask)(int, const sigset_t *, sigset_t *);
	int (*sigsuspend)(const sigset_t *);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	spawn_fn posix_spawn;
	spawn_fn posix_spawnp;
};

/* libvos.c: the table, resolved by the constructor (or, before it ran, by the first wrapper
 * called: see resolve_libc). Never NULL; no dlsym once the constructor has run. */
const struct real_libc *real_libc(void);

/* stop.c: VOS_SIGNAL's handler (the constructor installs it). */
void on_vos_signal(int sig, siginfo_t *si, void *uc);

/* signals.c: what the program believes VOS_SIGNAL's disposition is, should it ever set one
 * (the stop saves it as the process's own, for a restore to give back). */
extern struct sigaction shadow_action;

#endif
