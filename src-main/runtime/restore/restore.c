/*
 * `vos-init restore`: the image is checked (every checksum, then this machine: CPU features,
 * kernel), a new pod is made on this terminal, and pod init recreates the pod's open files and
 * its process tree; each process restores itself and waits at the barrier; when all are ready,
 * the terminal's foreground group is set and they all run. Any failure ends every restoring
 * process: nothing half-restored ever runs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../common/status.h"
#include "../init/control.h"
#include "../init/pod.h"
#include "../init/restore.h"
#include "restore.h"
#include "vos-image.h"

#define STAGE_TIMEOUT_MS 60000

static uint64_t xcr0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static void set_terminal(struct restore_ctx *c)
{
	struct image *img = &c->img;
	if (!img->have_terminal || c->tty_fd < 0)
		return;
	struct termios t;
	if (tcgetattr(c->tty_fd, &t) < 0)
		return;
	t.c_iflag = img->c_iflag;
	t.c_oflag = img->c_oflag;
	t.c_cflag = img->c_cflag;
	t.c_lflag = img->c_lflag;
	t.c_line = img->c_line;
	memcpy(t.c_cc, img->c_cc, img->nccs < NCCS ? img->nccs : NCCS);
	cfsetispeed(&t, (speed_t)img->ispeed);
	cfsetospeed(&t, (speed_t)img->ospeed);
	tcsetattr(c->tty_fd, TCSANOW, &t);
	struct winsize ws = {img->ws_row, img->ws_col, img->ws_xpixel, img->ws_ypixel};
	ioctl(c->tty_fd, TIOCSWINSZ, &ws);
}

/*
 * The agent's status channel (--status): the restore's outcome goes there as one status line
 * (common/status.h), sent once, by whichever process ends the restore: the restorer before
 * there is a pod, pod init after. A file-wide variable because refuse() runs before anything
 * else exists to hold it; -1: no channel, or the line is sent.
 */
static int status_sock = -1;

static void send_status(const char *line)
{
	if (status_sock < 0)
		return;
	if (status_send(status_sock, line) < 0)
		fprintf(stderr, "vos: cannot tell the agent how the restore went: %s\n", strerror(errno));
	close(status_sock);
	status_sock = -1;
}

static void send_failure(const struct err *e)
{
	char line[STATUS_LINE_MAX];
	status_error_json(line, sizeof line, "restore_failed", e);
	send_status(line);
}

/* Every process is restored: "held" (waiting for go) or running. */
static void send_success(const struct restore_ctx *c, int held)
{
	char line[STATUS_LINE_MAX];
	struct json_out j;
	json_begin(&j, line, sizeof line);
	json_bool(&j, "ok", 1);
	json_bool(&j, "held", held);
	json_int(&j, "restored", c->img.nprocs);
	json_str(&j, "clocks", c->clocks, 32);
	json_int(&j, "placed", (long long)(c->placed_pages * PAGE));
	if (c->note[0])
		json_str(&j, "note", c->note, STATUS_LINE_MAX - 200);
	json_end(&j);
	send_status(line);
}

static void publish(struct restore_ctx *c, uint32_t stage)
{
	__atomic_store_n(&c->sync->stage, stage, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &c->sync->stage, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

/* Everything from the files to the running processes. 0, or -1 with everything ended. */
/* How long restored processes wait at the barrier for a migration's source to say go. */
#define HOLD_TIMEOUT_MS (10 * 60 * 1000)

/*
 * A migration's target: every process is restored and waits at the barrier; the agent answers
 * "go" once the source has ended the original (so the session never runs in two places), or
 * "abort". restore-status meanwhile says "held" (with the counts and the clocks, as "ok" would).
 * 0 on go, -1 (with the reason) otherwise.
 */
static int await_go(struct restore_ctx *c, struct err *e)
{
	int64_t deadline = now_monotonic_us() + (int64_t)HOLD_TIMEOUT_MS * 1000;
	for (;;) {
		int64_t left_ms = (deadline - now_monotonic_us()) / 1000;
		if (left_ms <= 0)
			return fail(e, "the migration's source did not say go within %d s", HOLD_TIMEOUT_MS / 1000);
		char line[CONTROL_LINE_MAX], reply[64];
		int fd = -1;
		int conn = control_accept_request(c->hold_listen_fd, line, sizeof line, &fd, (int)left_ms);
		if (conn < 0)
			continue;
		if (fd >= 0)
			close(fd);
		int verdict = strcmp(line, "go") == 0 ? 1 : strcmp(line, "abort") == 0 ? -1 : 0;
		snprintf(reply, sizeof reply, verdict ? "ok" : "held restored=%d clocks=%s", c->img.nprocs, c->clocks);
		control_send(conn, reply, -1);
		close(conn);
		if (verdict > 0)
			return 0;
		if (verdict < 0)
			return fail(e, "the migration was called off by its source");
	}
}

/* The outer process (it only waits for pod init) lets go of the staged pages: pod init has its
 * own copy, and pages both map would be copied at the restored program's first write to each. */
static void outer_drops_staging(void *staging)
{
	staging_free(staging);
}

static int restore_pod(struct restore_ctx *c, struct err *e)
{
	struct image *img = &c->img;
	uint32_t n = (uint32_t)img->nprocs;
	if (open_mapped_files(c, e) < 0 || plan_memory(c, e) < 0)
		return -1;
	c->sync = mmap((void *)(uintptr_t)(c->hole + 2 * PAGE), PAGE, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (c->sync == MAP_FAILED)
		return fail(e, "cannot map the restore barrier: %s", strerror(errno));
	memset(c->sync, 0, sizeof *c->sync);
	if (create_objects(c, e) < 0 || take_description_locks(c, e) < 0 || create_sysv_ipc(c, e) < 0)
		return -1;

	create_children(c, 1);
	int rc = wait_count(c, &c->sync->created, n, STAGE_TIMEOUT_MS, e);
	/* Every process exists and has its copy of the staged pages: ours would only make their
	 * first writes copy the pages instead of taking them. */
	staging_free(&c->staging);
	if (rc == 0) {
		publish(c, STAGE_GROUP_LEADERS);
		rc = wait_count(c, &c->sync->leaders, n, STAGE_TIMEOUT_MS, e);
	}
	if (rc == 0) {
		publish(c, STAGE_GROUP_MEMBERS);
		rc = wait_count(c, &c->sync->members, n, STAGE_TIMEOUT_MS, e);
	}
	if (rc == 0 && img->have_terminal && img->fg_pgrp > 0 && c->tty_fd >= 0) {
		/* The job that had the terminal gets it back (Ctrl-C reaches it, not the shell). */
		sigset_t ttou, old;
		sigemptyset(&ttou);
		sigaddset(&ttou, SIGTTOU);
		sigprocmask(SIG_BLOCK, &ttou, &old);
		if (tcsetpgrp(c->tty_fd, img->fg_pgrp) < 0)
			rc = fail(e, "cannot give the terminal to process group %d: %s", (int)img->fg_pgrp, strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	if (rc == 0) {
		publish(c, STAGE_PREPARE);
		rc = wait_count(c, &c->sync->prepared, n, STAGE_TIMEOUT_MS, e);
	}
	if (rc == 0 && c->hold_listen_fd >= 0) {
		send_success(c, 1);
		rc = await_go(c, e);
	}
	if (rc < 0) {
		publish(c, STAGE_ABORT);
		kill(-1, SIGKILL);
		return -1;
	}
	publish(c, STAGE_GO);
	return 0;
}

/* How long pod init waits for the foreground job's threads to be back in their calls. */
#define REISSUE_WAIT_MS 500

/* Whether a thread is back in its own code and waiting in a system call (or gone, or will not
 * wait: stopped), not still on its way out of the restore zone (the hole). */
static int waits_in_own_code(const struct restore_ctx *c, pid_t pid, pid_t tid)
{
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
	char *text = read_text_file(path, NULL);
	if (!text)
		return 1; /* gone (or a zombie): nothing to wait for */
	long long nr;
	unsigned long long a[6], sp, pc;
	int ready = 0;
	if (sscanf(text, "%lld %llx %llx %llx %llx %llx %llx %llx %llx", &nr, &a[0], &a[1], &a[2], &a[3], &a[4], &a[5],
		   &sp, &pc) == 9)
		ready = pc < c->hole || pc >= c->hole + c->hole_size;
	else if (sscanf(text, "%lld %llx %llx", &nr, &sp, &pc) == 3) /* -1: blocked outside a call */
		ready = pc < c->hole || pc >= c->hole + c->hole_size;
	free(text);
	return ready; /* "running": not yet, or never (it computes) */
}

/* Whether pred holds for a thread of the foreground job (it stops at the first that does). */
static int any_fg_thread(const struct restore_ctx *c, int (*pred)(const struct restore_ctx *c, pid_t pid, pid_t tid))
{
	int found = 0;
	for (int i = 0; i < c->img.nprocs && !found; i++) {
		const struct img_process *p = &c->img.procs[i];
		if (p->pgid != c->img.fg_pgrp)
			continue;
		char dir[64];
		snprintf(dir, sizeof dir, "/proc/%d/task", (int)p->pid);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *de;
		while (!found && (de = readdir(d)) != NULL)
			if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
				found = pred(c, p->pid, (pid_t)atoi(de->d_name));
		closedir(d);
	}
	return found;
}

static int still_on_its_way(const struct restore_ctx *c, pid_t pid, pid_t tid)
{
	return !waits_in_own_code(c, pid, tid);
}

/*
 * A thread frozen inside a blocking call (read on the terminal, poll...) is restored to make the
 * call again (dump/freeze.c). The restore's SIGWINCH must find it back in that call, as a real
 * resize would: the kernel then interrupts the call and decides by the handler's SA_RESTART
 * whether it returns EINTR or goes on after the handler. Sent before, the signal is delivered on
 * the way out of the restore, the handler runs and the call is made again afterwards: the
 * program never learns of the resize until a key arrives (vim, less do not redraw). So pod
 * init waits (at most wait_ms: a thread that computes never waits) until every thread of the
 * foreground job is out of the restore zone and waiting in a call. 1 if they all are.
 */
static int await_blocking_calls(const struct restore_ctx *c, int wait_ms)
{
	int64_t deadline = now_monotonic_us() + wait_ms * 1000LL;
	while (any_fg_thread(c, still_on_its_way)) {
		if (now_monotonic_us() > deadline)
			return 0;
		usleep(1000);
	}
	return 1;
}

/* Whether signal sig is set in the mask `name` of a /proc status text. */
static int signal_in(const char *status, const char *name, int sig)
{
	const char *at = status ? strstr(status, name) : NULL;
	unsigned long long mask = 0;
	return at && sscanf(at + strlen(name), " %llx", &mask) == 1 && (mask >> (sig - 1)) & 1;
}

/* Whether SIGWINCH waits to be delivered to the thread or to its process (a thread's status
 * shows both: SigPnd its own, ShdPnd its process's). */
static int winch_pending(const struct restore_ctx *c, pid_t pid, pid_t tid)
{
	(void)c;
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
	char *status = read_text_file(path, NULL);
	int pending = signal_in(status, "SigPnd:", SIGWINCH) || signal_in(status, "ShdPnd:", SIGWINCH);
	free(status);
	return pending;
}

/*
 * The restore's SIGWINCH, before the restore is said to be done when the foreground job is back
 * waiting in its calls within QUICK_REISSUE_MS (an interactive program: a shell, an editor, a
 * pager), and then until the signal has been taken (at most WINCH_TAKEN_MS): input sent the
 * moment the restore is done (the app's, a script's) must not meet the signal halfway. A program
 * whose read just returned a key and is then interrupted by the resize can drop that key: less
 * lost the "/" of a search typed at once, and ran the rest of the line as commands. 1 if sent.
 */
#define QUICK_REISSUE_MS 50
#define WINCH_TAKEN_MS 200
static int redraw_before_done(const struct restore_ctx *c)
{
	if (!await_blocking_calls(c, QUICK_REISSUE_MS))
		return 0; /* it computes: after the restore is done, as below */
	kill(-c->img.fg_pgrp, SIGWINCH);
	int64_t deadline = now_monotonic_us() + WINCH_TAKEN_MS * 1000LL;
	while (any_fg_thread(c, winch_pending) && now_monotonic_us() < deadline)
		usleep(500);
	return 1;
}

static void release_restorer(struct restore_ctx *c)
{
	struct image *img = &c->img;
	for (int i = 0; i < img->nobjects; i++)
		if (c->object_fd && c->object_fd[i] >= 0)
			close(c->object_fd[i]);
	for (int i = 0; i < img->nshms; i++)
		if (c->shm_fd && c->shm_fd[i] >= 0)
			close(c->shm_fd[i]);
	for (int i = 0; i < img->nfiles; i++)
		if (c->file_fd && c->file_fd[i] >= 0)
			close(c->file_fd[i]);
	close(img->fd);
	for (int k = 0; k < c->nparents; k++) {
		close(c->parents[k].fd);
		image_free(&c->parents[k]);
	}
	/* The sync page stays until the processes are gone from the barrier: they unmap their own
	 * copy; ours is one page. */
}

/* After a failure in pod init: say why on the terminal (for the user) and to the agent (its
 * status channel; without one, its control socket's restore-status), then end. */
static void report_failure(struct pod *pod, const struct err *e) __attribute__((noreturn));
static void report_failure(struct pod *pod, const struct err *e)
{
	fprintf(stderr, "vos: restore failed: %s\n", e->msg);
	status_error_reply(pod->restore_status, sizeof pod->restore_status, "restore_failed", e);
	int asked = status_sock >= 0;
	send_failure(e);
	if (!asked && pod->listen_fd >= 0) {
		struct pollfd p = {pod->listen_fd, POLLIN, 0};
		if (poll(&p, 1, 10000) > 0)
			pod_handle_control(pod);
		unlink(pod->control_path);
	}
	uint32_t status = 1 << 8; /* exit status 1 */
	if (pod->status_fd >= 0)
		write_full(pod->status_fd, &status, sizeof status);
	_exit(1);
}

/* Before there is a pod: the reason goes to the agent's status channel and, for the user, to
 * the terminal. */
static void refuse(const struct err *e) __attribute__((noreturn));
static void refuse(const struct err *e)
{
	fprintf(stderr, "vos: restore failed: %s\n", e->msg);
	send_failure(e);
	exit(1);
}

/* refuse() for a reason known only by its words. */
static void refuse_why(const char *why) __attribute__((noreturn));
static void refuse_why(const char *why)
{
	struct err e;
	fail(&e, "%s", why);
	refuse(&e);
}

/* Each process's working directory must be here. Checked before anything is made, naming the
 * directory, rather than by each process as it restores itself (restore/process.c), where only
 * the words of its failure reach pod init. */
static int check_working_dirs(const struct image *img, struct err *e)
{
	for (int i = 0; i < img->nprocs; i++) {
		const struct img_process *p = &img->procs[i];
		struct stat st;
		int missing = stat(p->cwd, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
		if (missing) {
			fail(e, "process %d (%s): its working directory %s is missing here: %s", (int)p->pid, p->comm, p->cwd,
			     strerror(missing));
			return err_path(e, p->cwd);
		}
	}
	return 0;
}

/* The current time namespace's offsets (0 in the host's): "monotonic S N" / "boottime S N". */
static void current_time_offsets(int64_t *monotonic, int64_t *boottime)
{
	*monotonic = *boottime = 0;
	char *text = read_text_file("/proc/self/timens_offsets", NULL);
	for (char *line = text; line && *line;) {
		char name[32];
		long long s, n;
		if (sscanf(line, "%31s %lld %lld", name, &s, &n) == 3) {
			if (strcmp(name, "monotonic") == 0)
				*monotonic = s * 1000000000 + n;
			else if (strcmp(name, "boottime") == 0)
				*boottime = s * 1000000000 + n;
		}
		char *next = strchr(line, '\n');
		line = next ? next + 1 : NULL;
	}
	free(text);
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts = {0, 0};
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Monotonic clocks differ between machines (each counts from its own boot). Restored where
 * they differ by more than a second from what the image's programs saw, the pod gets a time
 * namespace whose CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from the image's values plus the
 * wall-clock time since the freeze: no jump back (or ahead) by the difference of the boots. On
 * the same machine nothing changes. Where the kernel has no time namespaces the clocks jump
 * (c->clocks says so in the restore status).
 */
static void keep_clocks(struct restore_ctx *c)
{
	const struct image *img = &c->img;
	c->clocks = "same";
	if (!img->have_clocks)
		return;
	int64_t since = clock_ns(CLOCK_REALTIME) - img->clock_realtime;
	if (since < 0)
		since = 0; /* the wall clocks disagree: at least no time went backwards */
	int64_t mono_off, boot_off;
	current_time_offsets(&mono_off, &boot_off);
	int64_t mono_delta = img->clock_monotonic + since - clock_ns(CLOCK_MONOTONIC);
	int64_t boot_delta = img->clock_boottime + since - clock_ns(CLOCK_BOOTTIME);
	if (llabs(mono_delta) < 1000000000 && llabs(boot_delta) < 1000000000)
		return;
	char why[256];
	c->clocks = pod_enter_time_namespace(mono_off + mono_delta, boot_off + boot_delta, why, sizeof why) == 0 ? "kept" : "jumped";
}

/* Whether a JVM of the image maps a file of the machine's /tmp/hsperfdata_<user>: an image taken
 * before each pod had its own (init/pod.c), whose restore must find those files where they were. */
static int maps_machine_perf_files(const struct image *img)
{
	for (int i = 0; i < img->nprocs; i++)
		for (uint32_t k = 0; k < img->procs[i].nvmas; k++)
			if (img->procs[i].vmas[k].kind == VOS_VMA_SHARED_FILE &&
			    strncmp(img->procs[i].vmas[k].path, "/tmp/hsperfdata_", 16) == 0)
				return 1;
	return 0;
}


int restore_main(int argc, char **argv)
{
	const char *control = NULL, *image = NULL, *cache = NULL, *image_socket = NULL, *status = NULL;
	const char *parents[VOS_MAX_CHAIN];
	int nparents = 0;
	int hold = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--hold") == 0) {
			hold = 1;
			continue;
		}
		if (i + 1 >= argc)
			die("%s needs a value", argv[i]);
		if (strcmp(argv[i], "--control") == 0)
			control = argv[++i];
		else if (strcmp(argv[i], "--image") == 0)
			image = argv[++i];
		else if (strcmp(argv[i], "--image-socket") == 0)
			image_socket = argv[++i];
		else if (strcmp(argv[i], "--parent") == 0 && nparents < VOS_MAX_CHAIN)
			parents[nparents++] = argv[++i];
		else if (strcmp(argv[i], "--cache") == 0)
			cache = argv[++i];
		else if (strcmp(argv[i], "--status") == 0)
			status = argv[++i];
		else if (strcmp(argv[i], "--runtime") == 0)
			++i; /* the restored processes carry their own environment */
		else
			die("unknown option %s", argv[i]);
	}
	if (!image && !image_socket)
		die("restore needs --image FILE or --image-socket PATH");
	/* First thing: every way this ends is told there. A restore the agent cannot hear about is
	 * not started (the agent sees it end without a status line). */
	if (status && (status_sock = status_connect(status)) < 0)
		die("cannot reach the agent's status socket %s: %s", status, strerror(errno));

	struct restore_ctx *c = xcalloc(1, sizeof *c);
	c->cache_dir = cache;
	c->hold_listen_fd = -1;
	relay_target_from_env(&c->relay);
	c->tty_fd = isatty(STDIN_FILENO) ? STDIN_FILENO : -1;
	char why[256];
	if (pod_terminal_can_pass(c->tty_fd, why, sizeof why) < 0)
		refuse_why(why); /* before anything is received: the sender still has the session */
	int fd;
	struct image_reader checked; /* how far a received image was checked while it arrived */
	memset(&checked, 0, sizeof checked);
	staging_init(&c->staging);
	if (image_socket) {
		struct err re;
		fd = receive_image(image_socket, &c->staging, &checked, &re);
		if (fd < 0)
			refuse(&re);
		image = "the received image";
	} else {
		fd = open(image, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			struct err oe;
			fail(&oe, "cannot open %s: %s", image, strerror(errno));
			err_path(&oe, image);
			refuse(&oe);
		}
	}
	struct err e;
	if (image_verify_from(fd, image, checked.offset ? &checked : NULL, &e) < 0 || image_load(&c->img, fd, image, &e) < 0 ||
	    chain_load(&c->img, parents, nparents, c->parents, &c->nparents, &e) < 0)
		refuse(&e);
	if (c->staging.records != (uint64_t)c->img.nprecopy)
		staging_free(&c->staging); /* pages sent ahead came outside the rounds: read them instead */
	uint64_t page_records = 0; /* the processes' PAGES records */
	for (int i = 0; i < c->img.nprocs; i++)
		page_records += (uint64_t)c->img.procs[i].npages;
	if (!staging_final_complete(&c->staging, page_records))
		c->staging.final_off = 1; /* the final image's pages are read from it */
	if (c->img.page_size != PAGE) {
		fail(&e, "%s was taken with %u-byte pages; this machine has %llu", image, c->img.page_size, PAGE);
		refuse(&e);
	}
	uint64_t have = xcr0();
	if ((c->img.xfeatures & ~have) != 0) {
		fail(&e, "%s needs CPU features this machine lacks (XSAVE components %#" PRIx64 ", this CPU %#" PRIx64 ")",
		     image, c->img.xfeatures, have);
		refuse(&e);
	}
	if (plan_vdso(c, &e) < 0 || check_working_dirs(&c->img, &e) < 0)
		refuse(&e);

	struct pod pod;
	memset(&pod, 0, sizeof pod);
	pod.control_path = control;
	pod.tty_fd = c->tty_fd;
	pod.status_fd = -1;
	pod.in_namespaces = 1;
	pod.shared_perf_dir = maps_machine_perf_files(&c->img);
	pod.outer_lets_go = outer_drops_staging;
	pod.outer_lets_go_arg = &c->staging;
	/* As root it forks a helper that maps the ids: it needs none of the staged pages. */
	staging_skip_forks(&c->staging, 1);
	int entered = pod_enter_namespaces(why, sizeof why);
	staging_skip_forks(&c->staging, 0);
	if (entered < 0)
		refuse_why(why);
	keep_clocks(c);
	pod_fork_init(&pod);
	if (pod_init_become_leader(&pod, why, sizeof why) < 0) {
		fail(&e, "%s", why);
		report_failure(&pod, &e);
	}
	pod_init_prepare(&pod);
	if (hold)
		c->hold_listen_fd = pod.listen_fd;
	set_terminal(c);
	if (restore_pod(c, &e) < 0)
		report_failure(&pod, &e);
	release_restorer(c);
	pod.main_pid = c->img.main_pid;
	snprintf(pod.restore_status, sizeof pod.restore_status, "ok restored=%d clocks=%s", c->img.nprocs, c->clocks);
	/* Full-screen programs redraw: they are sent SIGWINCH. */
	int redraw = c->img.have_terminal && c->img.fg_pgrp > 0;
	if (redraw && redraw_before_done(c))
		redraw = 0;
	send_success(c, 0);
	if (redraw) {
		await_blocking_calls(c, REISSUE_WAIT_MS);
		kill(-c->img.fg_pgrp, SIGWINCH);
	}
	pod_init_serve(&pod);
}
