/*
 * Keeping VOS_SIGNAL ours and deliverable: a program that installs its own handler for every
 * signal, or blocks "all signals", would otherwise kill the process at a checkpoint or make its
 * threads unstoppable. Its handler for VOS_SIGNAL is kept aside (shadow_action) instead of
 * installed, and VOS_SIGNAL is taken out of every mask it blocks.
 */
#include <signal.h>
#include <string.h>

#include "libvos.h"
#include "vos-control.h"

/* What the program believes VOS_SIGNAL's disposition is, should it ever set one. */
struct sigaction shadow_action;

static const sigset_t *without_vos(const sigset_t *set, sigset_t *copy)
{
	if (!set || !sigismember(set, VOS_SIGNAL))
		return set;
	*copy = *set;
	sigdelset(copy, VOS_SIGNAL);
	return copy;
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (sig == VOS_SIGNAL) {
		if (old)
			*old = shadow_action;
		if (act)
			shadow_action = *act;
		return 0;
	}
	return real_libc()->sigaction(sig, act, old);
}

EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction act, old;
	memset(&act, 0, sizeof act);
	act.sa_handler = handler;
	act.sa_flags = SA_RESTART;
	if (sigaction(sig, &act, &old) != 0)
		return SIG_ERR;
	return old.sa_handler;
}

EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	struct sigaction act, old;
	memset(&act, 0, sizeof act);
	act.sa_handler = handler;
	act.sa_flags = (int)(SA_ONESHOT | SA_NOMASK);
	if (sigaction(sig, &act, &old) != 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* Not declared by glibc's headers any more, still exported by libc. */
sighandler_t bsd_signal(int sig, sighandler_t handler);

EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return signal(sig, handler);
}

EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t copy;
	return real_libc()->sigprocmask(how, how == SIG_UNBLOCK ? set : without_vos(set, &copy), old);
}

EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t copy;
	return real_libc()->pthread_sigmask(how, how == SIG_UNBLOCK ? set : without_vos(set, &copy), old);
}

EXPORT int sigsuspend(const sigset_t *mask)
{
	sigset_t copy;
	return real_libc()->sigsuspend(without_vos(mask, &copy));
}
