/*
 * Launching a pod and being its init.
 *
 *   agent ── node-pty ── vos-init (outer; host pid namespace; owns nothing but the wait)
 *                           └── pod init (pid 1 of the pod: session leader with the terminal,
 *                                │         control socket, checkpoint coordinator, reaper)
 *                                └── the program (pid 2, its own process group, foreground)
 *
 * The outer process exists because a new pid namespace only applies to children. It hands the
 * terminal to pod init (TIOCNOTTY, then pod init's setsid + TIOCSCTTY), so the whole session
 * (its session id, process groups and the terminal's foreground group) lives inside the pod
 * and can be recreated with the same numbers on restore.
 */
#include "pod.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../common/util.h"
#include "../common/status.h"
#include "../dump/dump.h"
#include "checkpoint.h"
#include "control.h"
#include "vos-control.h"

/* Signals a user or the agent may send the session on purpose; forwarded to the program. */
static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH};

void pod_signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, VOS_SIGNAL);
	for (size_t i = 0; i < ARRAY_LEN(forwarded); i++)
		sigaddset(set, forwarded[i]);
}

static int is_forwarded(int sig)
{
	for (size_t i = 0; i < ARRAY_LEN(forwarded); i++)
		if (forwarded[i] == sig)
			return 1;
	return 0;
}

/*
 * Root's pod maps every id to itself (as the machine has them), so that what programs do as root
 * with ids other than 0 works in the pod as outside: GNU screen gives its pty to group tty, a
 * daemon switches to its own user. Writing such a map needs CAP_SETUID/CAP_SETGID in the parent
 * user namespace, which the process that entered the new one no longer has there: a helper forked
 * before the unshare, still outside, writes the maps of its parent. 0, or -1 with errno.
 */
static int map_all_ids(pid_t target, int go_fd)
{
	char c;
	if (read(go_fd, &c, 1) != 1)
		return -1;
	static const char *const files[] = {"uid_map", "gid_map"};
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/%s", (int)target, files[i]);
		if (write_text_to(path, "0 0 4294967295\n") < 0)
			return -1;
	}
	return 0;
}

/* unshare, with root's ids mapped by a helper outside (map_all_ids): 1 mapped, 0 not (a root
 * without CAP_SETUID over the machine's ids, e.g. in a container: the caller maps itself), -1 no
 * namespaces. */
static int unshare_as_root(int flags, char *why, size_t size)
{
	int go[2], done[2];
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC) < 0) {
		snprintf(why, size, "cannot make the pod: pipe: %s", strerror(errno));
		return -1;
	}
	pid_t parent = getpid();
	pid_t helper = fork();
	if (helper < 0) {
		snprintf(why, size, "cannot make the pod: fork: %s", strerror(errno));
		return -1;
	}
	if (helper == 0) {
		close(go[1]);
		close(done[0]);
		int err = map_all_ids(parent, go[0]) < 0 ? errno : 0;
		if (write(done[1], &err, sizeof err) != (ssize_t)sizeof err)
			_exit(1);
		_exit(0);
	}
	close(go[0]);
	close(done[1]);
	int rc = unshare(flags);
	int err = errno;
	if (rc == 0 && write(go[1], "g", 1) != 1)
		err = errno, rc = -1;
	close(go[1]); /* without "g" the helper ends */
	int mapped = -1;
	if (rc == 0 && read_full(done[0], &mapped, sizeof mapped) < 0)
		mapped = EIO;
	close(done[0]);
	while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
		;
	if (rc < 0) {
		snprintf(why, size, "this system does not let unprivileged users create namespaces (unshare: %s)", strerror(err));
		return -1;
	}
	return mapped == 0;
}

int pod_enter_namespaces(char *why, size_t size)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	/* Its own IPC namespace: the SysV objects the pod makes are its own, and a checkpoint can carry
	 * them (dump/sysv-ipc.c); a restored copy never shares the original's by id. */
	int flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC;
	if (uid == 0 && geteuid() == 0) {
		int mapped = unshare_as_root(flags, why, size);
		if (mapped != 0)
			return mapped > 0 ? 0 : -1;
	} else if (unshare(flags) < 0) {
		snprintf(why, size, "this system does not let unprivileged users create namespaces (unshare: %s)",
			 strerror(errno));
		return -1;
	}
	/* Anyone else maps their own user and group, which needs no privilege (more would need
	 * newuidmap/newgidmap and the machine's subordinate ids). Programs that give a file to another
	 * group (screen's pty to group tty) are refused that, as they are outside when not root, and
	 * go on without it (screen does). */
	char map[64];
	snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if (write_text_to("/proc/self/setgroups", "deny") < 0 || write_text_to("/proc/self/uid_map", map) < 0) {
		snprintf(why, size, "cannot map the user into the pod's user namespace: %s", strerror(errno));
		return -1;
	}
	snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if (write_text_to("/proc/self/gid_map", map) < 0) {
		snprintf(why, size, "cannot map the group into the pod's user namespace: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int pod_enter_time_namespace(int64_t monotonic_ns, int64_t boottime_ns, char *why, size_t size)
{
	/* Test hook: as on a kernel without time namespaces. Safe in a shipped build: the restorer's
	 * environment is the agent's (only the user who starts it sets it; no peer, client or
	 * restored program can), and it only takes the path every kernel without time namespaces
	 * takes: the clocks jump, and the restore status says so ("jumped"). */
	if (getenv("VOS_TEST_NO_TIME_NAMESPACE")) {
		snprintf(why, size, "cannot make a time namespace: %s", strerror(EINVAL));
		return -1;
	}
	if (unshare(CLONE_NEWTIME) < 0) {
		snprintf(why, size, "cannot make a time namespace: %s", strerror(errno));
		return -1;
	}
	/* Seconds and nanoseconds, the nanoseconds in [0, 1e9) also for a negative offset. */
	long long ms = monotonic_ns / 1000000000, mn = monotonic_ns % 1000000000;
	long long bs = boottime_ns / 1000000000, bn = boottime_ns % 1000000000;
	if (mn < 0)
		ms--, mn += 1000000000;
	if (bn < 0)
		bs--, bn += 1000000000;
	char offsets[128];
	snprintf(offsets, sizeof offsets, "monotonic %lld %lld\nboottime %lld %lld\n", ms, mn, bs, bn);
	if (write_text_to("/proc/self/timens_offsets", offsets) < 0) {
		snprintf(why, size, "cannot set the clocks of the time namespace: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int pod_terminal_can_pass(int tty_fd, char *why, size_t size)
{
	if (tty_fd < 0)
		return 0;
	pid_t owner = tcgetsid(tty_fd);
	if (owner < 0 && errno == ENOTTY)
		return 0; /* not our controlling terminal: pod init finds out whether it is anyone's */
	if (owner < 0) {
		snprintf(why, size, "cannot tell whose terminal this is: %s", strerror(errno));
		return -1;
	}
	if (owner != getpid()) {
		snprintf(why, size,
		    "the terminal belongs to the session of process %d, which this process does not lead: "
		    "start it as the session leader (exec it, or run it under setsid or script)",
		    (int)owner);
		return -1;
	}
	return 0;
}

/*
 * Every JVM maps /tmp/hsperfdata_<user>/<pid> shared (its performance counters, read by jps and
 * jstat), named by its pid as the pod numbers it, and at start deletes the files there of pids it
 * cannot see. JVMs in different pods would share names (every pod has a pid 2): the second one
 * finds the file locked, one deletes another's, and a restore maps a file another live JVM now
 * owns, or one that is gone, then the JVM dies after a restore that said ok. So each pod gets an
 * empty tmpfs of its own there, seen only in its mount namespace; a checkpoint carries what its
 * files hold as shared memory (dump_note_private_mount). Without a user name, or where the
 * directory cannot be made, the pod goes on without it, as JVMs share the machine's then.
 */
static void private_perf_dir(void)
{
	struct passwd *pw = getpwuid(geteuid());
	if (!pw || !pw->pw_name[0] || strchr(pw->pw_name, '/'))
		return;
	char dir[300];
	if (snprintf(dir, sizeof dir, "/tmp/hsperfdata_%s", pw->pw_name) >= (int)sizeof dir)
		return;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return;
	/* Mounted through a descriptor: a symlink planted at that name is not followed. */
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	char target[64];
	snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
	struct stat st;
	if (mount("vos-pod", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64m") == 0 &&
	    stat(dir, &st) == 0)
		dump_note_private_mount((uint64_t)st.st_dev);
	close(fd);
}

int pod_init_become_leader(struct pod *pod, char *why, size_t size)
{
	if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0) {
		snprintf(why, size, "cannot make the pod's mounts private: %s", strerror(errno));
		return -1;
	}
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		snprintf(why, size, "cannot mount the pod's own /proc: %s", strerror(errno));
		return -1;
	}
	if (!pod->shared_perf_dir)
		private_perf_dir();
	if (setsid() < 0) {
		snprintf(why, size, "setsid: %s", strerror(errno));
		return -1;
	}
	if (pod->tty_fd >= 0 && ioctl(pod->tty_fd, TIOCSCTTY, 0) < 0) {
		snprintf(why, size, "cannot take the session terminal: %s", errno == EPERM ?
		    "it is the controlling terminal of another session (start vos-init as its session leader)" : strerror(errno));
		return -1;
	}
	return 0;
}

/* In the child: own process group in the foreground, the runtime in its environment, exec. */
static void exec_program(struct pod *pod, char **argv)
{
	sigset_t none;
	sigemptyset(&none);
	if (setpgid(0, 0) < 0)
		die("setpgid: %s", strerror(errno));
	if (pod->tty_fd >= 0) {
		/* All signals pod init handles are still blocked here, SIGTTOU included below. */
		sigset_t ttou;
		sigemptyset(&ttou);
		sigaddset(&ttou, SIGTTOU);
		sigprocmask(SIG_BLOCK, &ttou, NULL);
		if (tcsetpgrp(pod->tty_fd, getpid()) < 0)
			die("tcsetpgrp: %s", strerror(errno));
	}
	if (pod->runtime && pod->in_namespaces) {
		const char *old = getenv("LD_PRELOAD");
		char *value = xmalloc(strlen(pod->runtime) + (old ? strlen(old) + 2 : 1));
		sprintf(value, old && *old ? "%s:%s" : "%s", pod->runtime, old ? old : "");
		setenv("LD_PRELOAD", value, 1);
		/* glibc registers every thread with the kernel for restartable sequences; a restored
		 * thread could not be re-registered where glibc expects, so do without. */
		const char *tunables = getenv("GLIBC_TUNABLES");
		char *t = xmalloc((tunables ? strlen(tunables) : 0) + 32);
		sprintf(t, tunables && *tunables ? "%s:glibc.pthread.rseq=0" : "glibc.pthread.rseq=0", tunables);
		setenv("GLIBC_TUNABLES", t, 1);
	}
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvp(argv[0], argv);
	fprintf(stderr, "vos-init: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

void pod_init_prepare(struct pod *pod)
{
	sigset_t set;
	pod_signal_set(&set);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		die("sigprocmask: %s", strerror(errno));
	pod->sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (pod->sig_fd < 0)
		die("signalfd: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN); /* a vanished reader of the image is an error, not a death */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		die("prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
	pod->listen_fd = -1;
	if (pod->control_path) {
		pod->listen_fd = control_listen(pod->control_path);
		if (pod->listen_fd < 0)
			die("cannot listen on %s: %s", pod->control_path, strerror(errno));
	}
}

void pod_handle_control(struct pod *pod)
{
	char line[CONTROL_LINE_MAX];
	int fd = -1;
	int conn = control_accept_request(pod->listen_fd, line, sizeof line, &fd, 0);
	if (conn < 0)
		return;
	char reply[CONTROL_LINE_MAX];
	if (strncmp(line, "checkpoint", 10) == 0) {
		if (!pod->in_namespaces && !pod->adopted_sid)
			status_reply_printf(reply, sizeof reply, "unavailable", "checkpoints are unavailable: %s", pod->unavailable);
		else if (fd < 0)
			status_reply_printf(reply, sizeof reply, "checkpoint_failed", "no image stream was passed with the request");
		else
			checkpoint_run(pod, &fd, conn, line, reply, sizeof reply);
	} else if (strcmp(line, "restore-status") == 0) {
		snprintf(reply, sizeof reply, "%s", pod->restore_status[0] ? pod->restore_status : "ok");
	} else if (strcmp(line, "status") == 0) {
		snprintf(reply, sizeof reply, "ok pod=%d main=%d", pod->in_namespaces, (int)pod->main_pid);
	} else {
		status_reply_printf(reply, sizeof reply, "invalid_params", "unknown request");
	}
	if (fd >= 0)
		close(fd);
	control_send(conn, reply, -1);
	close(conn);
	if (pod->stop_after_reply) {
		dirty_stop(pod->stop_after_reply);
		free(pod->stop_after_reply);
		pod->stop_after_reply = NULL;
	}
}

/* Ends this process the way the program ended: the same exit code, or the same signal. */
static void end_like(int status) __attribute__((noreturn));
static void end_like(int status)
{
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core); /* the program's core, if any, was its own */
		signal(sig, SIG_DFL);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		kill(getpid(), sig);
		_exit(128 + sig);
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* Reaps everything that ended; when the program did, reports and exits like it. */
static void reap(struct pod *pod)
{
	for (;;) {
		int status;
		/* __WALL: threads a checkpoint stopped with ptrace (dump/ptrace-dump.c) that were
		 * killed while stopped are ours to reap too, or their process is never reaped. */
		pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		if (pid == pod->main_pid) {
			if (pod->control_path)
				unlink(pod->control_path);
			if (!pod->in_namespaces)
				end_like(status); /* no outer process: we are the session's process */
			/* pid 1 of a namespace cannot die of most signals: the outer one ends like it. */
			write_full(pod->status_fd, &status, sizeof status);
			_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		}
	}
}

static void handle_signal(struct pod *pod, const struct signalfd_siginfo *si)
{
	int sig = (int)si->ssi_signo;
	if (sig == SIGCHLD) {
		reap(pod);
		return;
	}
	if (sig == VOS_SIGNAL)
		return; /* a late acknowledgement from a checkpoint that is over */
	if (sig == SIGHUP && si->ssi_code == SI_KERNEL) {
		/* The terminal hung up (the agent is gone). A shell, as session leader, would exit and
		 * the kernel would tell the foreground job; we are the leader, so tell everyone. */
		pid_t target = pod->in_namespaces ? -1 : -pod->main_pid;
		kill(target, SIGHUP);
		kill(target, SIGCONT);
		return;
	}
	/* Only what someone sent on purpose; the terminal's signals reached the program directly. */
	if (is_forwarded(sig) && (si->ssi_code == SI_USER || si->ssi_code == SI_QUEUE) && pod->main_pid > 0)
		kill(pod->main_pid, sig);
}

int pod_next_signal(struct pod *pod, int want, struct signalfd_siginfo *out, int timeout_ms)
{
	int64_t deadline = now_monotonic_us() + (int64_t)timeout_ms * 1000;
	for (;;) {
		int64_t left = (deadline - now_monotonic_us()) / 1000;
		if (timeout_ms >= 0 && left <= 0)
			return 0;
		struct pollfd p = {pod->sig_fd, POLLIN, 0};
		int pr = poll(&p, 1, timeout_ms < 0 ? -1 : (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -1;
		if (pr == 0)
			return 0;
		struct signalfd_siginfo si;
		ssize_t n = read(pod->sig_fd, &si, sizeof si);
		if (n != sizeof si)
			continue;
		if (want == 0 || (int)si.ssi_signo == want) {
			*out = si;
			return 1;
		}
		if (pod->ndeferred < POD_DEFERRED_MAX)
			pod->deferred[pod->ndeferred++] = si;
	}
}

void pod_init_serve(struct pod *pod)
{
	reap(pod); /* the program may have ended before we got here */
	for (;;) {
		while (pod->ndeferred > 0) {
			struct signalfd_siginfo si = pod->deferred[0];
			memmove(pod->deferred, pod->deferred + 1, (size_t)(--pod->ndeferred) * sizeof si);
			handle_signal(pod, &si);
		}
		struct pollfd p[3] = {{pod->sig_fd, POLLIN, 0}, {pod->listen_fd, POLLIN, 0}, {pod->adopted_sid ? pod->leader_fd : -1, POLLIN, 0}};
		int n = poll(p, 3, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(pod->sig_fd, &si, sizeof si) == sizeof si)
				handle_signal(pod, &si);
		}
		if (pod->listen_fd >= 0 && (p[1].revents & POLLIN))
			pod_handle_control(pod);
		if (p[2].revents & POLLIN) {
			/* The adopted session's leader ended: so does its stand-in. */
			if (pod->control_path)
				unlink(pod->control_path);
			_exit(0);
		}
	}
}

void pod_fork_init(struct pod *pod)
{
	int status_pipe[2];
	if (pipe2(status_pipe, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	/* Give up the terminal so that pod init can take it; the hangup this sends goes to our own
	 * (foreground) process group, that is, to us: ignored for the moment. */
	if (pod->tty_fd >= 0) {
		signal(SIGHUP, SIG_IGN);
		signal(SIGCONT, SIG_IGN);
		if (ioctl(pod->tty_fd, TIOCNOTTY) < 0 && errno != ENOTTY)
			die("cannot give up the terminal: %s", strerror(errno));
		signal(SIGHUP, SIG_DFL);
		signal(SIGCONT, SIG_DFL);
	}
	sigset_t set;
	pod_signal_set(&set);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) /* from before the fork: nothing is lost in between */
		die("sigprocmask: %s", strerror(errno));
	pid_t init = fork();
	if (init < 0)
		die("fork: %s", strerror(errno));
	if (init > 0) {
		close(status_pipe[1]);
		if (pod->outer_lets_go)
			pod->outer_lets_go(pod->outer_lets_go_arg);
		outer_supervise(init, status_pipe[0]);
	}
	close(status_pipe[0]);
	pod->status_fd = status_pipe[1];
	/* The outer process gone (the agent killed it): the pod goes too. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		die("prctl: %s", strerror(errno));
}

void outer_supervise(pid_t child, int status_fd)
{
	sigset_t set;
	pod_signal_set(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd: %s", strerror(errno));
	int reported = 0, status = 0;
	for (;;) {
		struct pollfd p[2] = {{sfd, POLLIN, 0}, {status_fd, POLLIN, 0}};
		int n = poll(p, status_fd >= 0 ? 2 : 1, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (status_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP))) {
			int s;
			if (read(status_fd, &s, sizeof s) == sizeof s) {
				status = s;
				reported = 1;
			}
			close(status_fd);
			status_fd = -1;
		}
		if (!(p[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof si) != sizeof si)
			continue;
		if (si.ssi_signo == SIGCHLD) {
			int ws;
			pid_t pid;
			while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
				if (pid != child)
					continue;
				if (status_fd >= 0) {
					/* The status pipe may still hold the report. */
					int s;
					if (read(status_fd, &s, sizeof s) == sizeof s) {
						status = s;
						reported = 1;
					}
				}
				end_like(reported ? status : ws);
			}
		} else if (is_forwarded((int)si.ssi_signo) && (si.ssi_code == SI_USER || si.ssi_code == SI_QUEUE)) {
			kill(child, (int)si.ssi_signo);
		}
	}
}

static void start_program(struct pod *pod, char **argv)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		if (pod->listen_fd >= 0)
			close(pod->listen_fd);
		close(pod->sig_fd);
		if (pod->status_fd >= 0)
			close(pod->status_fd);
		exec_program(pod, argv);
	}
	pod->main_pid = pid;
}

int launch_main(const struct launch_options *o)
{
	struct pod pod;
	memset(&pod, 0, sizeof pod);
	pod.control_path = o->control_path;
	pod.runtime = o->runtime;
	pod.tty_fd = isatty(STDIN_FILENO) ? STDIN_FILENO : -1;
	pod.status_fd = -1;

	char why[256];
	if (o->no_pod) {
		snprintf(pod.unavailable, sizeof pod.unavailable, "the session was started without a pod");
	} else if (pod_terminal_can_pass(pod.tty_fd, why, sizeof why) < 0) {
		die("%s", why);
	} else if (pod_enter_namespaces(pod.unavailable, sizeof pod.unavailable) == 0) {
		pod.in_namespaces = 1;
	}

	if (!pod.in_namespaces) {
		/* No pod: this process is the init of a plain session. */
		pod_init_prepare(&pod);
		start_program(&pod, o->argv);
		pod_init_serve(&pod);
	}

	pod_fork_init(&pod);
	if (pod_init_become_leader(&pod, why, sizeof why) < 0)
		die("%s", why);
	pod_init_prepare(&pod);
	start_program(&pod, o->argv);
	pod_init_serve(&pod);
}
