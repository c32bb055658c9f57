/*
 * `vos-init adopt --pid PID --status PATH [--id ID] [--control PATH]`: takes a program that
 * runs on another terminal over onto this one, the pty of a new session (the terminal host
 * started us on it, as the session's program).
 *
 * What moves is the program's terminal session: every process whose session is PID's (a shell
 * and its jobs; PID itself if it leads its own session). Each is stopped from outside
 * (dump/ptrace-inject.h), and system calls run inside it switch every descriptor it has on the
 * old terminal to the new one (open, then dup2 over each, keeping the descriptor's close-on-exec
 * and non-blocking flags). The session leader gives up the old terminal as its controlling one
 * (TIOCNOTTY) and takes the new one (TIOCSCTTY), with the foreground process group it had. The
 * SIGHUP and SIGCONT the kernel sends the old foreground group then are taken back out of the
 * processes' pending signals (they were blocked meanwhile), so nobody hangs up. We give the new
 * terminal up first (we lead the session the host made for us, and a terminal belongs to one
 * session). The old terminal is told where the program went.
 *
 * Then we stay as the session's stand-in, a pod init outside namespaces (init/pod.c): with
 * --control, its checkpoints (every process of the session stopped from outside; the image shows
 * them as a pod's, see dump_note_adopted_session), signals sent to us (the session's kill) passed
 * on to the session leader, and our end when its comes. The outcome of the adoption is one
 * status line on PATH (success, or the failure with its code: a refusal says what to change).
 *
 * Refused before anything is stopped: another user's process, a set-user-ID program, a
 * process without a terminal or on ours, and what the kernel's ptrace rules forbid
 * (kernel.yama.ptrace_scope 1, 2 or 3: we are not the program's ancestor nor privileged).
 * VOS_TEST_PTRACE_SCOPE stands in for the setting, for the tests of those refusals (it grants
 * nothing: the kernel applies its own setting to every ptrace request all the same).
 *
 * Weak: every process is stopped and checked before the first switch, but a failure during the
 * switches themselves (opening the new terminal in a process, a dup2) is not rolled back: the
 * processes switched so far stay on the session's terminal, which ends with the failed session.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "../common/status.h"
#include "../common/util.h"
#include "../dump/dump.h"
#include "../dump/ptrace-inject.h"
#include "adopt.h"
#include "pod.h"

#define MAX_MEMBERS 256
#define MAX_TTY_FDS 64

/* A process of the adopted session, and its descriptors on the old terminal. */
struct member {
	pid_t pid;
	struct ptrace_proc pp;
	int seized;
	int fds[MAX_TTY_FDS];
	int fd_flags[MAX_TTY_FDS]; /* its open file's flags (fdinfo), O_CLOEXEC among them */
	int nfds;
	uint64_t pending_before; /* SIGHUP and SIGCONT pending before the switch */
	uint64_t scratch;
};

struct adoption {
	uid_t owner; /* whose programs may be taken */
	pid_t leader;
	pid_t sid;
	int fg_pgrp; /* the old terminal's foreground process group */
	dev_t old_tty, new_tty;
	char old_path[256], new_path[256];
	struct member *m;
	int n;
};

static int ptrace_scope(void)
{
	const char *hook = getenv("VOS_TEST_PTRACE_SCOPE");
	if (hook && *hook)
		return atoi(hook);
	char *text = read_text_file("/proc/sys/kernel/yama/ptrace_scope", NULL);
	if (!text)
		return 0; /* no Yama: the classic rules (same user) */
	int scope = atoi(text);
	free(text);
	return scope;
}

/* What makes pid impossible to adopt for user `owner`, before anything is touched. */
static int check_process(pid_t pid, uid_t owner, struct err *e)
{
	char who[128], v[256];
	describe_pid(pid, who, sizeof who);
	if (status_field(pid, "Uid", v, sizeof v) < 0)
		return fail_code(e, "not_found", "there is no process %d", (int)pid);
	unsigned r, eff, saved, fs;
	if (sscanf(v, "%u %u %u %u", &r, &eff, &saved, &fs) != 4 || r != owner || eff != owner || saved != owner ||
	    fs != owner)
		return fail_code(e, "unsupported", "%s belongs to another user (uid %u): only your own programs can be adopted",
				 who, eff);
	char exe_link[64], exe[4096];
	struct stat st;
	snprintf(exe_link, sizeof exe_link, "/proc/%d/exe", (int)pid);
	if (read_link(exe_link, exe, sizeof exe) >= 0 && stat(exe, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)))
		return fail_code(e, "unsupported", "%s runs %s, a set-user-ID program, which cannot be adopted", who, exe);
	return 0;
}

#define SCOPE_1_WORDS                                                                                                   \
	"kernel.yama.ptrace_scope is 1 on this machine (Ubuntu's default): only a program's parents may take it over; "  \
	"`sudo vos adopt PID` lets vOS take this one over (and checkpoint the processes it has now), "                   \
	"`sudo sysctl kernel.yama.ptrace_scope=0` allows it for all your programs"

/* What Yama's setting forbids us, up front. Under 1 we may still be allowed (an exception
 * `sudo vos adopt` made): the first ptrace request tells (see adopt()). */
static int check_ptrace_rules(struct err *e)
{
	int scope = ptrace_scope();
	if (scope >= 3)
		return fail_code(e, "unsupported",
				 "kernel.yama.ptrace_scope is 3 on this machine: no program can be taken over by another until "
				 "the machine restarts with a lower setting");
	if (scope == 2 && geteuid() != 0)
		return fail_code(e, "unsupported",
				 "kernel.yama.ptrace_scope is 2 on this machine: only an administrator may take a program over "
				 "(sysctl kernel.yama.ptrace_scope=0 allows it for your own programs)");
	if (scope == 1 && getenv("VOS_TEST_PTRACE_SCOPE"))
		return fail_code(e, "unsupported", SCOPE_1_WORDS); /* the test's stand-in for the kernel's no */
	return 0;
}

/* The device a /proc/PID/stat tty_nr names. */
static dev_t tty_dev(int tty_nr)
{
	unsigned nr = (unsigned)tty_nr;
	return makedev((nr >> 8) & 0xfff, (nr & 0xff) | ((nr >> 12) & 0xfff00));
}

static const char *path_of_fd(pid_t pid, int fd, char *buf, size_t size)
{
	snprintf(buf, size, "/proc/%d/fd/%d", (int)pid, fd);
	return buf;
}

/* The processes of the session and their descriptors on the old terminal (and its path). */
static int find_members(struct adoption *a, struct err *e)
{
	DIR *d = opendir("/proc");
	if (!d)
		return fail(e, "cannot list the processes: %s", strerror(errno));
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(de->d_name);
		struct proc_stat st;
		struct err ignore;
		if (pid <= 0 || pid == getpid() || read_proc_stat(pid, &st, &ignore) < 0 || st.sid != a->sid || st.state == 'Z')
			continue;
		if (a->n >= MAX_MEMBERS) {
			rc = fail_code(e, "unsupported", "the session of process %d has more than %d processes", (int)a->leader,
				       MAX_MEMBERS);
			break;
		}
		rc = check_process(pid, a->owner, e);
		if (rc < 0)
			break;
		struct member *m = &a->m[a->n++];
		memset(m, 0, sizeof *m);
		m->pid = pid;
		char dir[64];
		snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
		DIR *fdd = opendir(dir);
		if (!fdd)
			continue;
		struct dirent *fe;
		char dir_buf[64];
		while ((fe = readdir(fdd)) != NULL && m->nfds < MAX_TTY_FDS) {
			if (fe->d_name[0] < '0' || fe->d_name[0] > '9')
				continue;
			char path[128];
			struct stat fst;
			int fd = atoi(fe->d_name), flags = O_RDWR;
			if (stat(path_of_fd(pid, fd, path, sizeof path), &fst) < 0 || !S_ISCHR(fst.st_mode) || fst.st_rdev != a->old_tty)
				continue;
			snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)pid, fd);
			char *info = read_text_file(path, NULL);
			char *f = info ? strstr(info, "flags:") : NULL;
			if (f)
				flags = (int)strtol(f + 6, NULL, 8);
			free(info);
			if (!a->old_path[0] && read_link(path_of_fd(pid, fd, dir_buf, sizeof dir_buf), a->old_path, sizeof a->old_path) < 0)
				a->old_path[0] = 0;
			m->fds[m->nfds] = fd;
			m->fd_flags[m->nfds++] = flags;
		}
		closedir(fdd);
	}
	closedir(d);
	return rc;
}

/* SIGHUP and SIGCONT pending in pid, for the process or any of its threads' shared queue. */
static uint64_t hup_cont_pending(pid_t pid)
{
	char v[64];
	uint64_t mask = 0;
	if (status_field(pid, "ShdPnd", v, sizeof v) == 0)
		mask |= strtoull(v, NULL, 16);
	if (status_field(pid, "SigPnd", v, sizeof v) == 0)
		mask |= strtoull(v, NULL, 16);
	return mask & ((1ull << (SIGHUP - 1)) | (1ull << (SIGCONT - 1)));
}

/* Scratch layout in each member: the new terminal's path, a zero timeout, a signal set, an int. */
#define AT_PATH 0
#define AT_TIMEOUT 512
#define AT_SET 544
#define AT_INT 560

static int call(struct member *m, long nr, long a0, long a1, long a2, long a3, long *ret, struct err *e)
{
	return inject_call(&m->pp, &m->pp.t[0], nr, a0, a1, a2, a3, ret, e);
}

/* In member m: every descriptor on the old terminal now on the new one; for the leader, the new
 * terminal its session's controlling one, with the old foreground group. */
static int switch_member(struct adoption *a, struct member *m, struct err *e)
{
	const long map[6] = {0, (long)PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0};
	long ret;
	if (inject_syscall(&m->pp, &m->pp.t[0], SYS_mmap, map, &ret, e) < 0)
		return -1;
	if (ret < 0 && ret > -4096)
		return fail(e, "cannot map memory in process %d: %s", (int)m->pid, strerror((int)-ret));
	m->scratch = (uint64_t)ret;
	int leader = m->pid == a->leader;
	if (leader && m->nfds > 0) {
		/* The old terminal is no longer the session's: SIGHUP and SIGCONT go to its
		 * foreground group (blocked now; taken back below). */
		if (call(m, SYS_ioctl, m->fds[0], TIOCNOTTY, 0, 0, &ret, e) < 0)
			return -1;
	}
	if (m->nfds == 0 && !leader)
		return 0;
	if (inject_write(m->pid, m->scratch + AT_PATH, a->new_path, strlen(a->new_path) + 1, e) < 0 ||
	    call(m, SYS_openat, AT_FDCWD, (long)(m->scratch + AT_PATH), O_RDWR | O_NOCTTY, 0, &ret, e) < 0)
		return -1;
	if (ret < 0)
		return fail(e, "process %d cannot open the new terminal %s: %s", (int)m->pid, a->new_path, strerror((int)-ret));
	long fresh = ret;
	for (int i = 0; i < m->nfds; i++) {
		if (call(m, SYS_dup2, fresh, m->fds[i], 0, 0, &ret, e) < 0)
			return -1;
		if (ret < 0)
			return fail(e, "process %d: cannot move descriptor %d: %s", (int)m->pid, m->fds[i], strerror((int)-ret));
		if ((m->fd_flags[i] & O_CLOEXEC) && call(m, SYS_fcntl, m->fds[i], F_SETFD, FD_CLOEXEC, 0, &ret, e) < 0)
			return -1;
		if ((m->fd_flags[i] & O_NONBLOCK) && call(m, SYS_fcntl, m->fds[i], F_SETFL, O_RDWR | O_NONBLOCK, 0, &ret, e) < 0)
			return -1;
	}
	if (leader) {
		if (call(m, SYS_ioctl, fresh, TIOCSCTTY, 0, 0, &ret, e) < 0)
			return -1;
		if (ret < 0)
			return fail(e, "process %d cannot take the new terminal as its own: %s", (int)m->pid, strerror((int)-ret));
		int32_t pgrp = a->fg_pgrp > 0 ? a->fg_pgrp : a->leader;
		if (inject_write(m->pid, m->scratch + AT_INT, &pgrp, sizeof pgrp, e) < 0 ||
		    call(m, SYS_ioctl, fresh, TIOCSPGRP, (long)(m->scratch + AT_INT), 0, &ret, e) < 0)
			return -1;
	}
	return call(m, SYS_close, fresh, 0, 0, 0, &ret, e);
}

/* The SIGHUP and SIGCONT the switch raised in m, taken back out of its pending signals. */
static int take_back_hangup(struct member *m, struct err *e)
{
	uint64_t raised = hup_cont_pending(m->pid) & ~m->pending_before;
	for (int sig = 1; sig <= 64 && raised; sig++) {
		if (!(raised & (1ull << (sig - 1))))
			continue;
		uint64_t set = 1ull << (sig - 1);
		int64_t zero[2] = {0, 0};
		long ret;
		if (inject_write(m->pid, m->scratch + AT_SET, &set, sizeof set, e) < 0 ||
		    inject_write(m->pid, m->scratch + AT_TIMEOUT, zero, sizeof zero, e) < 0 ||
		    call(m, SYS_rt_sigtimedwait, (long)(m->scratch + AT_SET), 0, (long)(m->scratch + AT_TIMEOUT), 8, &ret, e) < 0)
			return -1;
	}
	return 0;
}

/* The new terminal in the modes the program set on the old one (a line editor's raw mode: in
 * the new one's cooked default every typed line would be echoed twice). */
static void copy_terminal_modes(const struct adoption *a)
{
	int fd = a->old_path[0] ? open(a->old_path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC) : -1;
	if (fd < 0)
		return;
	struct termios t;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == a->old_tty && tcgetattr(fd, &t) == 0)
		tcsetattr(0, TCSANOW, &t);
	close(fd);
}

static void release_all(struct adoption *a)
{
	for (int i = 0; i < a->n; i++) {
		struct member *m = &a->m[i];
		if (!m->seized)
			continue;
		struct err ignore;
		long ret;
		if (m->scratch)
			call(m, SYS_munmap, (long)m->scratch, (long)PAGE, 0, 0, &ret, &ignore);
		inject_release(&m->pp);
		m->seized = 0;
	}
}

static int adopt(struct adoption *a, struct err *e)
{
	struct proc_stat st;
	if (read_proc_stat(a->leader, &st, e) < 0)
		return fail_code(e, "not_found", "there is no process %d", (int)a->leader);
	if (check_process(a->leader, a->owner, e) < 0 || check_ptrace_rules(e) < 0)
		return -1;
	if (st.tty_nr == 0)
		return fail_code(e, "unsupported", "process %d has no terminal to take over", (int)a->leader);
	a->sid = st.sid;
	a->old_tty = tty_dev(st.tty_nr);
	struct stat ours;
	if (fstat(0, &ours) < 0 || ttyname_r(0, a->new_path, sizeof a->new_path) != 0)
		return fail(e, "the session's terminal is not on our standard input");
	a->new_tty = ours.st_rdev;
	if (a->old_tty == a->new_tty)
		return fail_code(e, "unsupported", "process %d runs on this session's terminal already", (int)a->leader);
	/* The session leader: its controlling terminal moves with it. */
	if (read_proc_stat(a->sid, &st, e) < 0)
		return fail_code(e, "unsupported", "the session of process %d has lost its leader: it cannot be taken over",
				 (int)a->leader);
	a->leader = a->sid;
	a->fg_pgrp = st.tpgid;
	a->m = xcalloc(MAX_MEMBERS, sizeof *a->m);
	if (find_members(a, e) < 0)
		return -1;
	for (int i = 0; i < a->n; i++) {
		struct member *m = &a->m[i];
		int rc = inject_seize(&m->pp, m->pid, e);
		m->seized = rc == 0 || m->pp.n > 0;
		if (rc < 0 && ptrace_scope() == 1 && strcmp(e->code, "unsupported") == 0)
			return fail_code(e, "unsupported", SCOPE_1_WORDS);
		if (rc < 0)
			return -1;
		m->pending_before = hup_cont_pending(m->pid);
	}
	copy_terminal_modes(a);
	/* Ours first: a terminal is the controlling one of one session at a time. */
	if (ioctl(0, TIOCNOTTY) < 0)
		return fail(e, "cannot give the session's terminal up: %s", strerror(errno));
	for (int i = 0; i < a->n; i++)
		if (a->m[i].seized && a->m[i].pid == a->leader && switch_member(a, &a->m[i], e) < 0)
			return -1;
	for (int i = 0; i < a->n; i++)
		if (a->m[i].seized && a->m[i].pid != a->leader && switch_member(a, &a->m[i], e) < 0)
			return -1;
	for (int i = 0; i < a->n; i++)
		if (a->m[i].seized && take_back_hangup(&a->m[i], e) < 0)
			return -1;
	return 0;
}

/* The old terminal says where its program went. */
static void tell_old_terminal(const struct adoption *a, const char *id)
{
	struct stat st;
	int fd = a->old_path[0] ? open(a->old_path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC) : -1;
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != a->old_tty) {
		close(fd); /* another device by now */
		return;
	}
	char line[256];
	int n = snprintf(line, sizeof line, "\n[vOS] this program moved to vOS: `vos attach %s` shows it\n", id);
	if (write(fd, line, (size_t)n) < 0) {
		/* a terminal that is gone or full: nothing to tell */
	}
	close(fd);
}

/* Serves the adopted session as a pod init outside namespaces (init/pod.c): its control socket
 * (checkpoints: every process stopped from outside), signals for us passed on to its leader,
 * and our end when the leader's comes. Never returns. */
static __attribute__((noreturn)) void serve(const struct adoption *a, const char *control_path)
{
	static struct pod pod; /* pod init's state, for the rest of our life */
	memset(&pod, 0, sizeof pod);
	pod.control_path = control_path;
	pod.tty_fd = 0;
	pod.status_fd = -1;
	pod.main_pid = a->leader;
	pod.adopted_sid = a->sid;
	pod.leader_fd = (int)syscall(SYS_pidfd_open, a->leader, 0);
	if (pod.leader_fd < 0)
		_exit(0); /* it ended already */
	dump_note_adopted_session(a->sid);
	pod_init_prepare(&pod);
	signal(SIGHUP, SIG_DFL); /* blocked now: a SIGHUP for us is read and passed on */
	pod_init_serve(&pod);
}

int adopt_main(int argc, char **argv)
{
	pid_t pid = 0;
	const char *status_path = NULL, *id = "", *control_path = NULL;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc)
			pid = (pid_t)atoi(argv[++i]);
		else if (strcmp(argv[i], "--status") == 0 && i + 1 < argc)
			status_path = argv[++i];
		else if (strcmp(argv[i], "--id") == 0 && i + 1 < argc)
			id = argv[++i];
		else if (strcmp(argv[i], "--control") == 0 && i + 1 < argc)
			control_path = argv[++i];
		else
			die("usage: vos-init adopt --pid PID --status PATH [--id ID] [--control PATH]");
	}
	if (pid <= 0 || !status_path)
		die("usage: vos-init adopt --pid PID --status PATH [--id ID] [--control PATH]");
	int status = status_connect(status_path);
	if (status < 0)
		die("cannot reach the agent's status socket %s: %s", status_path, strerror(errno));
	signal(SIGHUP, SIG_IGN); /* giving our terminal up sends us one */
	struct adoption a;
	memset(&a, 0, sizeof a);
	a.owner = getuid();
	a.leader = pid;
	struct err e;
	int rc = adopt(&a, &e);
	release_all(&a);
	char line[STATUS_LINE_MAX];
	if (rc < 0) {
		status_error_json(line, sizeof line, "spawn_failed", &e);
		status_send(status, line);
		fprintf(stderr, "vos: %s\n", e.msg);
		return 1;
	}
	tell_old_terminal(&a, id);
	/* Its size is this terminal's now: the foreground group hears of it as of any resize. */
	if (a.fg_pgrp > 0)
		kill(-a.fg_pgrp, SIGWINCH);
	struct json_out j;
	json_begin(&j, line, sizeof line);
	json_bool(&j, "ok", 1);
	json_int(&j, "adopted", a.n);
	json_int(&j, "leader", a.leader);
	json_end(&j);
	status_send(status, line);
	close(status);
	free(a.m);
	serve(&a, control_path);
}

/*
 * `vos-init adopt-grant --pid PID --uid UID`, run as root by `sudo vos adopt PID`: under Yama's
 * setting 1 only a program's parents may trace it, so this lets any process of its own user
 * trace each process of PID's terminal session (all UID's, none set-user-ID): it runs
 * prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY) inside each, and exits. The adoption itself is then
 * done without privilege by the user's agent (`vos adopt` continues as the user): nothing
 * privileged stays. Processes the session starts later have no such exception. Prints "ok N".
 */
int adopt_grant_main(int argc, char **argv)
{
	pid_t pid = 0;
	long uid = -1;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc)
			pid = (pid_t)atoi(argv[++i]);
		else if (strcmp(argv[i], "--uid") == 0 && i + 1 < argc)
			uid = atol(argv[++i]);
		else
			die("usage: vos-init adopt-grant --pid PID --uid UID");
	}
	if (pid <= 0 || uid < 0)
		die("usage: vos-init adopt-grant --pid PID --uid UID");
	if (geteuid() != 0)
		die("adopt-grant is what `sudo vos adopt` runs as root");
	struct adoption a;
	memset(&a, 0, sizeof a);
	a.owner = (uid_t)uid;
	a.leader = pid;
	struct err e;
	struct proc_stat st;
	int rc = read_proc_stat(pid, &st, &e) < 0 ? fail_code(&e, "not_found", "there is no process %d", (int)pid)
						    : check_process(pid, a.owner, &e);
	if (rc == 0 && st.tty_nr == 0)
		rc = fail_code(&e, "unsupported", "process %d has no terminal to take over", (int)pid);
	if (rc == 0) {
		a.sid = st.sid;
		a.old_tty = tty_dev(st.tty_nr);
		a.m = xcalloc(MAX_MEMBERS, sizeof *a.m);
		rc = find_members(&a, &e);
	}
	for (int i = 0; i < a.n && rc == 0; i++) {
		struct member *m = &a.m[i];
		rc = inject_seize(&m->pp, m->pid, &e) < 0 ? -1 : 0;
		m->seized = rc == 0 || m->pp.n > 0;
		long ret;
		/* EINVAL: a kernel without Yama, where no exception is needed. */
		if (rc == 0 && call(m, SYS_prctl, PR_SET_PTRACER, (long)PR_SET_PTRACER_ANY, 0, 0, &ret, &e) < 0)
			rc = -1;
	}
	release_all(&a);
	free(a.m);
	if (rc < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	printf("ok %d\n", a.n);
	return 0;
}
