/* The pod: a session's user + pid + mount namespaces, and vos-init's two roles in it. */
#ifndef VOS_POD_H
#define VOS_POD_H

#include <signal.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/types.h>

#define POD_DEFERRED_MAX 256

struct dirty_tracker;
struct file_memos;

struct pod {
	const char *control_path;
	const char *runtime;    /* libvos.so, injected into the program */
	int in_namespaces;      /* 0: namespaces unavailable; the program runs without a pod */
	char unavailable[256];  /* why checkpoints cannot work, when they cannot */
	int listen_fd;
	int sig_fd;
	int tty_fd;             /* the session terminal, or -1 */
	int status_fd;          /* pipe to the outer vos-init: the program's raw wait status */
	pid_t main_pid;         /* the session's program, in the pod's pid numbering */
	/* A terminal session adopted from another terminal (init/adopt.c): its processes are the
	 * pod's, outside namespaces (in_namespaces 0, checkpoints all the same); 0: none. Its
	 * leader is main_pid, and the pod ends when it does (leader_fd, a pidfd of it). */
	pid_t adopted_sid;
	int leader_fd;
	uint32_t round;         /* checkpoint rounds so far */
	/* Incremental checkpoints (init/checkpoint.c): the write tracking kept from the latest image
	 * that asked for it (NULL: none), that image's CHAIN id and depth; or why there is none. */
	struct dirty_tracker *inc;
	/* The write tracking of a checkpoint that ended the pod (a move's commit, or stop=1), stopped
	 * once the reply is out (pod_handle_control): closing its userfaultfds waits for the killed
	 * processes' memory to be torn down (tens of milliseconds for a gigabyte), which the
	 * requester (a move's target, waiting to run) need not wait for. */
	struct dirty_tracker *stop_after_reply;
	uint8_t inc_id[16];
	uint32_t inc_depth;
	struct file_memos *inc_files; /* the mapped files that image described (its chain holds them) */
	char inc_lost[512];
	char restore_status[2048]; /* "ok ...", or "error {status}" when this pod's restore failed */
	/* A restore of an image whose JVMs mapped the machine's own /tmp/hsperfdata_<user> (taken
	 * before pods had one of their own): the pod keeps using the machine's, so they find it. */
	int shared_perf_dir;
	/* Called in the outer process just after pod init is forked (NULL: nothing): a restore's
	 * outer process lets go of the pages it staged for pod init, which would otherwise stay
	 * shared with it, so that every write of the restored program copied its page. */
	void (*outer_lets_go)(void *arg);
	void *outer_lets_go_arg;
	/* Signals read from the signalfd while a checkpoint was waiting for something else. */
	struct signalfd_siginfo deferred[POD_DEFERRED_MAX];
	int ndeferred;
};

struct launch_options {
	const char *control_path;
	const char *runtime;
	int no_pod;
	char **argv; /* the program and its arguments */
};

/* `vos-init launch`: creates the pod, starts the program in it, serves the control socket,
 * and ends like the program (same exit status, or killed by the same signal). */
int launch_main(const struct launch_options *o);

/* The signals pod init handles through its signalfd. */
void pod_signal_set(sigset_t *set);

/* Sets up signal handling, the control socket and the terminal for a pod init. */
void pod_init_prepare(struct pod *pod);
/* Answers one request on the control socket. */
void pod_handle_control(struct pod *pod);
/* Serves until the main program ends; never returns. */
void pod_init_serve(struct pod *pod) __attribute__((noreturn));

/* Reads the next signal for pod init, keeping anything that is not `want` for later.
 * want = 0 takes any signal. Returns 1, 0 on timeout, -1 on error. */
int pod_next_signal(struct pod *pod, int want, struct signalfd_siginfo *out, int timeout_ms);

/* The outer process: waits for pod init (host pid `child`), forwards deliberate signals to it,
 * and ends the way the program ended (the raw status arrives on status_fd). */
void outer_supervise(pid_t child, int status_fd) __attribute__((noreturn));

/* Whether pod init will be able to take the terminal on tty_fd (-1: no terminal, fine): the
 * caller must lead the session the terminal belongs to, since only a session leader can give
 * its terminal up for another session to take. 0, or -1 with what to do in `why`. */
int pod_terminal_can_pass(int tty_fd, char *why, size_t size);
/* Creates the user + pid + mount namespaces (the caller then forks pod init). 0, or -1 with
 * the reason in `why`. */
int pod_enter_namespaces(char *why, size_t size);
/* After pod_enter_namespaces, before forking pod init: a time namespace for the children whose
 * CLOCK_MONOTONIC and CLOCK_BOOTTIME are the host's plus these offsets. */
int pod_enter_time_namespace(int64_t monotonic_ns, int64_t boottime_ns, char *why, size_t size);
/* After pod_enter_namespaces: hands the terminal over and forks pod init, the first process of
 * the new pid namespace. The caller becomes the outer process (outer_supervise, never
 * returns); the function returns in pod init, with pod->status_fd set and the pod's signals
 * blocked. */
void pod_fork_init(struct pod *pod);
/* In the new pod init (pid 1): private /proc, the pod's own JVM perf-data directory (unless
 * pod->shared_perf_dir), session leader with the terminal. */
int pod_init_become_leader(struct pod *pod, char *why, size_t size);

#endif
