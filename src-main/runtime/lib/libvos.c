/*
 * libvos.so: the vOS runtime injected (LD_PRELOAD) into every process of a pod.
 *
 * It stays out of the program's way: no wrappers on ordinary system calls. Its one job is to
 * stop the process's threads for a checkpoint in a way that can be resumed, on this machine or
 * another (stop.c). The few wrappers keep VOS_SIGNAL deliverable: a program that blocks "all
 * signals", installs its own handler for every signal (signals.c), or execs (which resets
 * handlers but keeps the mask; exec.c) would otherwise make its threads unstoppable or kill the
 * process at a checkpoint.
 *
 * This file starts the runtime: it resolves the libc functions the wrappers call, installs the
 * handler and unblocks the signal.
 */
#include <dlfcn.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>

#include "libvos.h"
#include "vos-control.h"

/*
 * The libc functions behind the wrappers. Global mutable state, written once: by the constructor
 * below, which runs before main() and before any thread of the program exists (the loader runs
 * constructors one after another in the starting thread), so every later call (from any
 * thread, from a signal handler, in a child after fork or vfork) only reads it: no dlsym there,
 * which is neither async-signal-safe nor safe after a fork.
 *
 * The one exception: another library's constructor may call a wrapper (sigaction, typically)
 * before ours ran, as the loader runs the constructors of the program's own libraries first.
 * Then that first call resolves the table, once. That is safe for the same reason: it happens
 * during the loader's start, from a constructor, where dlsym is allowed; `resolving` makes a
 * second thread (should such a constructor start one) wait for the table instead of writing it
 * too.
 */
static struct real_libc real;
enum { UNRESOLVED, RESOLVING, RESOLVED };
static int resolving = UNRESOLVED; /* atomic */

static void resolve_libc(void)
{
	int expected = UNRESOLVED;
	if (!__atomic_compare_exchange_n(&resolving, &expected, RESOLVING, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(&resolving, __ATOMIC_ACQUIRE) != RESOLVED)
			sched_yield();
		return;
	}
	real.sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
	real.sigprocmask = (int (*)(int, const sigset_t *, sigset_t *))dlsym(RTLD_NEXT, "sigprocmask");
	real.pthread_sigmask = (int (*)(int, const sigset_t *, sigset_t *))dlsym(RTLD_NEXT, "pthread_sigmask");
	real.sigsuspend = (int (*)(const sigset_t *))dlsym(RTLD_NEXT, "sigsuspend");
	real.execve = (int (*)(const char *, char *const[], char *const[]))dlsym(RTLD_NEXT, "execve");
	real.execvpe = (int (*)(const char *, char *const[], char *const[]))dlsym(RTLD_NEXT, "execvpe");
	real.fexecve = (int (*)(int, char *const[], char *const[]))dlsym(RTLD_NEXT, "fexecve");
	real.posix_spawn = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");
	real.posix_spawnp = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawnp");
	__atomic_store_n(&resolving, RESOLVED, __ATOMIC_RELEASE);
}

const struct real_libc *real_libc(void)
{
	if (__atomic_load_n(&resolving, __ATOMIC_ACQUIRE) != RESOLVED)
		resolve_libc(); /* only before our constructor ran: see above */
	return &real;
}

__attribute__((constructor)) static void vos_runtime_start(void)
{
	const struct real_libc *libc = real_libc();
	struct sigaction act;
	memset(&act, 0, sizeof act);
	act.sa_sigaction = on_vos_signal;
	act.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&act.sa_mask); /* nothing of the program runs in this thread while it is stopped */
	if (libc->sigaction(VOS_SIGNAL, &act, NULL) != 0)
		return; /* without the handler the pod init sees no runtime here and refuses to checkpoint */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, VOS_SIGNAL);
	sys(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&set, 0, 8, 0);
}
