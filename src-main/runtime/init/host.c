/*
 * The terminal host: one per session, so that a session's program outlives the agent.
 *
 *   vos-init host --socket PATH [--cols N] [--rows N] -- PROGRAM [ARGS...]
 *
 * It detaches itself (fork, setsid, stdio on /dev/null; the process the agent started prints
 * "ok HOSTPID CHILDPID" or "error WHY" and exits), opens a pty, starts PROGRAM on its slave as
 * session leader with the slave as controlling terminal, keeps the master and serves one agent
 * at a time on a Unix socket (0600) at PATH. ARCHITECTURE.md ("The terminal host") describes
 * the protocol; in short, frames of u8 type + u32 length (big-endian) + payload:
 *
 *   host -> agent  HELLO, JOURNAL (what is kept, on connect), OUTPUT, EXIT (after the last output)
 *   agent -> host  INPUT, RESIZE, SIGNAL, END (the agent is done: close the master, exit),
 *                  SYNC (answered with SYNCED once what the master holds now is sent ahead)
 *
 * The master is always read while no agent is connected: output goes into a ring of the last
 * JOURNAL_SIZE bytes, so the program never blocks and nothing it printed lately is lost. While
 * an agent is connected and does not keep up, the master is not read (the program blocks in
 * write, as on any terminal). A program that ended: its status and journal wait for an agent
 * to collect them (END), without a time limit (nothing else knows the status), unless its
 * socket is gone from PATH (the state directory was removed: no agent can ever collect them, and
 * nothing is lost by going). SIGTERM ends
 * the session (hangup, then kill after a grace period) and the host with it; SIGHUP and SIGINT
 * are ignored (they are not for us: we have no terminal).
 */
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../common/util.h"
#include "control.h"

#define HOST_PROTOCOL 1
#define JOURNAL_SIZE (4u << 20)
#define READ_CHUNK (64u << 10)
/* While more than this waits for the agent, the master is not read (flow control). */
#define OUT_HIGH_WATER (256u << 10)
#define OUT_CAPACITY (JOURNAL_SIZE + (1u << 20))
/* The largest frame an agent may send (it splits bigger input). */
#define IN_FRAME_MAX (64u << 10)
#define TO_MASTER_CAPACITY (256u << 10)
/* After the program exited, what is still in flight to the master arrives within this. */
#define EXIT_DRAIN_MS 250
#define TERM_GRACE_MS 1000
#define EOF_RETRY_MS 20

enum { F_HELLO = 1, F_JOURNAL = 2, F_OUTPUT = 3, F_EXIT = 4, F_SYNCED = 5, F_INPUT = 16, F_RESIZE = 17, F_SIGNAL = 18, F_END = 19, F_SYNC = 20 };
/* What one SYNC reads at most (the pty's buffers hold far less; a program still printing could
 * go on for ever). */
#define SYNC_MAX (1u << 20)

struct host {
	int master, listen_fd, client, sig_fd;
	pid_t child;
	int64_t started_ms;
	/* The program's end: reaped (status known), then finished (its output read to the end). */
	int reaped, finished, status;
	int64_t reaped_at_us;
	/* The master said EIO (no slave open) before the program was reaped: it may not have opened
	 * the slave yet, or closed it for good; looked at again every EOF_RETRY_MS. */
	int master_eof;
	int terminating;
	int64_t kill_at_us;
	/* The journal: a ring of the last JOURNAL_SIZE bytes; `total` counts all bytes ever read. */
	unsigned char *ring;
	uint64_t total;
	/* Bytes for the connected agent: out[head..tail). */
	unsigned char *out;
	size_t head, tail;
	/* A partly received frame from the agent. */
	unsigned char in[5 + IN_FRAME_MAX];
	size_t in_len;
	/* Input for the program not yet taken by the master. */
	unsigned char *to_master;
	size_t to_master_len;
	/* Our socket as the file system had it when we listened: once it is no longer there, no agent
	 * can reach us. */
	const char *socket_path;
	dev_t socket_dev;
	ino_t socket_ino;
};

static void put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_u64(unsigned char *p, uint64_t v)
{
	put_u32(p, (uint32_t)(v >> 32));
	put_u32(p + 4, (uint32_t)v);
}

/* Queues a frame for the agent; the payload is `a` followed by `b` (either may be empty). Frames
 * never exceed OUT_CAPACITY by construction (see OUT_HIGH_WATER); one that would is dropped. */
static void queue_frame(struct host *h, int type, const void *a, size_t alen, const void *b, size_t blen)
{
	if (h->client < 0)
		return;
	size_t need = 5 + alen + blen;
	if (h->tail + need > OUT_CAPACITY && h->head > 0) {
		memmove(h->out, h->out + h->head, h->tail - h->head);
		h->tail -= h->head;
		h->head = 0;
	}
	if (h->tail + need > OUT_CAPACITY)
		return;
	unsigned char *p = h->out + h->tail;
	p[0] = (unsigned char)type;
	put_u32(p + 1, (uint32_t)(alen + blen));
	if (alen)
		memcpy(p + 5, a, alen);
	if (blen)
		memcpy(p + 5 + alen, b, blen);
	h->tail += need;
}

/* Appends more payload to the frame queued last (at `header`), fixing its length. */
static void queue_frame_append(struct host *h, size_t header, const void *data, size_t len)
{
	if (h->client < 0 || len == 0 || h->tail + len > OUT_CAPACITY)
		return;
	memcpy(h->out + h->tail, data, len);
	h->tail += len;
	put_u32(h->out + header + 1, (uint32_t)(h->tail - header - 5));
}

static void exit_fields(const struct host *h, unsigned char p[8])
{
	put_u32(p, WIFEXITED(h->status) ? (uint32_t)WEXITSTATUS(h->status) : 0);
	put_u32(p + 4, WIFSIGNALED(h->status) ? (uint32_t)WTERMSIG(h->status) : 0);
}

/* A new agent: HELLO, then the journal, then (if the program is over) EXIT. */
static void greet(struct host *h)
{
	unsigned char hello[41];
	put_u32(hello, HOST_PROTOCOL);
	put_u32(hello + 4, (uint32_t)getpid());
	put_u32(hello + 8, (uint32_t)h->child);
	put_u64(hello + 12, (uint64_t)h->started_ms);
	put_u64(hello + 20, h->total);
	hello[28] = (unsigned char)(h->finished ? 1 : 0);
	exit_fields(h, hello + 29);
	put_u32(hello + 37, JOURNAL_SIZE);
	queue_frame(h, F_HELLO, hello, sizeof hello, NULL, 0);

	/* The journal frame: u8 wrapped, then the kept bytes, oldest first (the ring's two pieces). */
	unsigned char wrapped = h->total > JOURNAL_SIZE;
	size_t at = wrapped ? (size_t)(h->total % JOURNAL_SIZE) : 0;
	size_t older = wrapped ? JOURNAL_SIZE - at : (size_t)h->total;
	size_t newer = wrapped ? at : 0;
	queue_frame(h, F_JOURNAL, &wrapped, 1, NULL, 0);
	size_t header = h->tail - 6;
	queue_frame_append(h, header, h->ring + at, older);
	queue_frame_append(h, header, h->ring, newer);
	if (h->finished) {
		unsigned char e[8];
		exit_fields(h, e);
		queue_frame(h, F_EXIT, e, sizeof e, NULL, 0);
	}
}

static void drop_client(struct host *h)
{
	if (h->client >= 0 && close(h->client) < 0 && errno != EINTR) {
		/* nothing to do: the descriptor is gone either way */
	}
	h->client = -1;
	h->head = h->tail = 0;
	h->in_len = 0;
}

static void accept_client(struct host *h)
{
	int c = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c < 0)
		return; /* EAGAIN, ECONNABORTED...: the next one may work */
	/* One agent at a time: the newest wins (an old one is a dead agent's or a stale one). */
	drop_client(h);
	h->client = c;
	greet(h);
}

static void journal_add(struct host *h, const unsigned char *data, size_t n)
{
	size_t at = (size_t)(h->total % JOURNAL_SIZE);
	size_t first = n < JOURNAL_SIZE - at ? n : JOURNAL_SIZE - at;
	memcpy(h->ring + at, data, first);
	memcpy(h->ring, data + first, n - first);
	h->total += n;
}

static void close_master(struct host *h)
{
	if (h->master >= 0)
		close(h->master);
	h->master = -1;
}

/* The program's output is read to the end: tell the agent (after everything it printed). */
static void finish(struct host *h)
{
	h->finished = 1;
	close_master(h);
	unsigned char e[8];
	exit_fields(h, e);
	queue_frame(h, F_EXIT, e, sizeof e, NULL, 0);
}

static void read_master(struct host *h)
{
	unsigned char buf[READ_CHUNK];
	ssize_t n = read(h->master, buf, sizeof buf);
	if (n > 0) {
		journal_add(h, buf, (size_t)n);
		queue_frame(h, F_OUTPUT, buf, (size_t)n, NULL, 0);
		return;
	}
	if (n < 0 && (errno == EINTR))
		return;
	int again = n < 0 && errno == EAGAIN;
	if (!again) {
		/* EIO (every slave closed, the buffer empty) or a real error: nothing more will come. */
		if (h->reaped)
			finish(h);
		else
			h->master_eof = 1;
		return;
	}
	/* EAGAIN: nothing now; after the program's end, what was in flight has arrived by now. */
	if (h->reaped && now_monotonic_us() - h->reaped_at_us >= EXIT_DRAIN_MS * 1000)
		finish(h);
}

/* SYNC: everything the master holds now goes out before SYNCED, flow control or not (a
 * checkpoint froze the program and wants its last output on the saved screen). */
static void sync_output(struct host *h)
{
	uint64_t start = h->total;
	while (h->master >= 0 && !h->master_eof && h->total - start < SYNC_MAX) {
		uint64_t before = h->total;
		read_master(h);
		if (h->total == before)
			break; /* EAGAIN, EIO or the end */
	}
	queue_frame(h, F_SYNCED, NULL, 0, NULL, 0);
}

static void write_master(struct host *h)
{
	ssize_t n = write(h->master, h->to_master, h->to_master_len);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		h->to_master_len = 0; /* the terminal is gone: input has nowhere to go */
		return;
	}
	memmove(h->to_master, h->to_master + n, h->to_master_len - (size_t)n);
	h->to_master_len -= (size_t)n;
}

static void send_signal(struct host *h, int sig)
{
	if (h->reaped || h->child <= 0)
		return; /* never a pid that may have been reused */
	if (kill(h->child, sig) < 0 && errno != ESRCH) {
		/* EPERM cannot happen for our own child; nothing else to do */
	}
}

/* Acts on one whole frame from the agent; returns -1 for a frame that makes no sense. */
static int handle_frame(struct host *h, int type, const unsigned char *p, uint32_t len, int *end)
{
	switch (type) {
	case F_INPUT:
		if (h->master < 0)
			return 0; /* the program is over: its input goes nowhere */
		memcpy(h->to_master + h->to_master_len, p, len);
		h->to_master_len += len;
		return 0;
	case F_RESIZE: {
		if (len != 4)
			return -1;
		struct winsize ws = {.ws_col = (unsigned short)(p[0] << 8 | p[1]), .ws_row = (unsigned short)(p[2] << 8 | p[3])};
		if (ws.ws_col == 0 || ws.ws_row == 0)
			return -1;
		if (h->master >= 0 && ioctl(h->master, TIOCSWINSZ, &ws) < 0) {
			/* the terminal is going away: nothing to resize */
		}
		return 0;
	}
	case F_SIGNAL: {
		if (len != 4)
			return -1;
		uint32_t sig = get_u32(p);
		if (sig < 1 || sig > 64)
			return -1;
		send_signal(h, (int)sig);
		return 0;
	}
	case F_END:
		if (len != 0)
			return -1;
		*end = 1;
		return 0;
	case F_SYNC:
		if (len != 0)
			return -1;
		sync_output(h);
		return 0;
	default:
		return -1;
	}
}

/* Reads what the agent sent and acts on every whole frame. Returns 1 when the agent said END. */
static int read_client(struct host *h)
{
	ssize_t n = read(h->client, h->in + h->in_len, sizeof h->in - h->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		drop_client(h);
		return 0;
	}
	h->in_len += (size_t)n;
	size_t at = 0;
	int end = 0;
	while (h->in_len - at >= 5) {
		int type = h->in[at];
		uint32_t len = get_u32(h->in + at + 1);
		if (len > IN_FRAME_MAX) {
			drop_client(h); /* not our protocol: forget this agent, keep the session */
			return 0;
		}
		if (h->in_len - at < 5 + (size_t)len)
			break;
		if (type == F_INPUT && h->to_master_len + len > TO_MASTER_CAPACITY)
			break; /* the program is not reading its input: wait (the agent waits too) */
		if (handle_frame(h, type, h->in + at + 5, len, &end) < 0) {
			drop_client(h);
			return 0;
		}
		at += 5 + (size_t)len;
		if (end)
			return 1;
	}
	memmove(h->in, h->in + at, h->in_len - at);
	h->in_len -= at;
	return 0;
}

static void write_client(struct host *h)
{
	ssize_t n = send(h->client, h->out + h->head, h->tail - h->head, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			drop_client(h);
		return;
	}
	h->head += (size_t)n;
	if (h->head == h->tail)
		h->head = h->tail = 0;
}

static void reap(struct host *h)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid != h->child || h->reaped)
			continue;
		h->reaped = 1;
		h->status = status;
		h->reaped_at_us = now_monotonic_us();
		if (h->master < 0 || h->master_eof)
			finish(h);
	}
}

static void terminate(struct host *h)
{
	if (h->terminating)
		return;
	h->terminating = 1;
	send_signal(h, SIGHUP);
	close_master(h); /* the hangup reaches everyone on the terminal */
	h->kill_at_us = now_monotonic_us() + TERM_GRACE_MS * 1000;
}

static void handle_signals(struct host *h)
{
	struct signalfd_siginfo si;
	while (read(h->sig_fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGCHLD)
			reap(h);
		else if (si.ssi_signo == SIGTERM)
			terminate(h);
	}
}

/* How often a host whose program ended looks whether an agent can still reach it. */
#define ORPHAN_CHECK_MS 5000

/* Our socket was removed or replaced at its path (not: the path cannot be looked at now). */
static int socket_gone(const struct host *h)
{
	struct stat st;
	if (stat(h->socket_path, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR;
	return st.st_dev != h->socket_dev || st.st_ino != h->socket_ino;
}

static void serve(struct host *h)
{
	for (;;) {
		if (h->terminating && h->reaped)
			return;
		if (h->terminating && !h->reaped && now_monotonic_us() >= h->kill_at_us) {
			send_signal(h, SIGKILL);
			h->kill_at_us = INT64_MAX;
		}
		struct pollfd p[4];
		int np = 0, i_sig = np++, i_listen = np++, i_master = -1, i_client = -1;
		p[i_sig] = (struct pollfd){h->sig_fd, POLLIN, 0};
		p[i_listen] = (struct pollfd){h->listen_fd, POLLIN, 0};
		int out_pending = h->client >= 0 ? (int)(h->tail - h->head) : 0;
		if (h->master >= 0 && !h->master_eof) {
			short ev = 0;
			/* Flow control: no reading while the connected agent is behind. */
			if ((size_t)out_pending <= OUT_HIGH_WATER)
				ev |= POLLIN;
			if (h->to_master_len > 0)
				ev |= POLLOUT;
			i_master = np++;
			p[i_master] = (struct pollfd){h->master, ev, 0};
		}
		if (h->client >= 0) {
			i_client = np++;
			p[i_client] = (struct pollfd){h->client, (short)(POLLIN | (out_pending ? POLLOUT : 0)), 0};
		}
		int timeout = -1;
		if (h->reaped && !h->finished)
			timeout = EXIT_DRAIN_MS / 5;
		int retry_eof = h->master_eof && !h->reaped;
		if (retry_eof)
			timeout = EOF_RETRY_MS;
		if (h->terminating)
			timeout = 50;
		/* Ended, its status waiting for an agent: give up only if none can ever come. */
		int waiting_for_agent = h->finished && h->client < 0 && !h->terminating;
		if (waiting_for_agent && timeout < 0)
			timeout = ORPHAN_CHECK_MS;
		int n = poll(p, (nfds_t)np, timeout);
		if (n == 0 && waiting_for_agent && socket_gone(h))
			return;
		if (retry_eof && !h->reaped)
			h->master_eof = 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (p[i_sig].revents & POLLIN)
			handle_signals(h);
		if (i_master >= 0 && h->master >= 0) {
			if (p[i_master].revents & POLLOUT)
				write_master(h);
			if (p[i_master].revents & (POLLIN | POLLHUP | POLLERR)) {
				read_master(h);
				/* Straight on to the agent (both are non-blocking): an echoed key does not
				 * wait for another round of poll. */
				if (h->client >= 0 && h->tail > h->head)
					write_client(h);
			}
			else if (n == 0 && h->reaped && !h->finished)
				read_master(h); /* the drain after the end: EAGAIN now means done */
		} else if (h->reaped && !h->finished && h->master_eof) {
			finish(h);
		}
		if (i_client >= 0 && h->client >= 0) {
			if (p[i_client].revents & POLLOUT)
				write_client(h);
			if (h->client >= 0 && (p[i_client].revents & (POLLIN | POLLHUP | POLLERR))) {
				if (read_client(h)) {
					/* END: the agent has what it needs (or ends the session on purpose). */
					close_master(h);
					return;
				}
				/* Typed input goes to the terminal at once, as output goes to the agent. */
				if (h->master >= 0 && h->to_master_len > 0)
					write_master(h);
			}
		}
		if (p[i_listen].revents & POLLIN)
			accept_client(h);
	}
}

/* In the program's process: a session of its own with the slave as controlling terminal. */
static void exec_child(const char *slave_name, char **argv, const sigset_t *blocked)
{
	if (setsid() < 0)
		die("setsid: %s", strerror(errno));
	int slave = open(slave_name, O_RDWR);
	if (slave < 0)
		die("cannot open the terminal %s: %s", slave_name, strerror(errno));
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		die("cannot take the terminal: %s", strerror(errno));
	for (int fd = 0; fd < 3; fd++)
		if (dup2(slave, fd) < 0)
			_exit(127);
	if (slave > 2)
		close(slave);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, blocked, NULL);
	execvp(argv[0], argv);
	fprintf(stderr, "vos: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

/* Tells the process the agent waits on how the start went (one line), then lets it go. */
static void report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > 0 && write_full(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0) {
		/* the agent's side is gone: nobody to tell */
	}
}

/* Opens the pty (master kept here), returns the slave's name in `slave`. -1 + message. */
static int open_pty(int cols, int rows, char *slave, size_t size, char *why, size_t wsize)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, size) != 0) {
		snprintf(why, wsize, "cannot open a pty: %s", strerror(errno));
		if (m >= 0)
			close(m);
		return -1;
	}
	struct winsize ws = {.ws_col = (unsigned short)cols, .ws_row = (unsigned short)rows};
	if (ioctl(m, TIOCSWINSZ, &ws) < 0) {
		snprintf(why, wsize, "cannot size the pty: %s", strerror(errno));
		close(m);
		return -1;
	}
	return m;
}

static int to_dev_null(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (int i = 0; i < 3; i++)
		if (dup2(fd, i) < 0)
			return -1;
	if (fd > 2)
		close(fd);
	return 0;
}

/* The detached host: sets everything up, reports on `ready`, serves until the session is over. */
static int run_host(const struct host_options *o, int ready)
{
	if (setsid() < 0) {
		report(ready, "error setsid: %s\n", strerror(errno));
		return 1;
	}
	struct host h = {.master = -1, .listen_fd = -1, .client = -1, .sig_fd = -1};
	h.ring = malloc(JOURNAL_SIZE);
	h.out = malloc(OUT_CAPACITY);
	h.to_master = malloc(TO_MASTER_CAPACITY);
	if (!h.ring || !h.out || !h.to_master) {
		report(ready, "error out of memory for the terminal host\n");
		return 1;
	}
	char slave[128], why[256];
	h.master = open_pty(o->cols, o->rows, slave, sizeof slave, why, sizeof why);
	if (h.master < 0) {
		report(ready, "error %s\n", why);
		return 1;
	}
	h.listen_fd = control_listen(o->socket_path);
	if (h.listen_fd < 0) {
		report(ready, "error cannot listen on %s: %s\n", o->socket_path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (stat(o->socket_path, &st) < 0) {
		report(ready, "error cannot look at %s: %s\n", o->socket_path, strerror(errno));
		return 1;
	}
	h.socket_path = o->socket_path;
	h.socket_dev = st.st_dev;
	h.socket_ino = st.st_ino;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 || (h.sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		report(ready, "error signalfd: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	h.started_ms = now_ms();
	h.child = fork();
	if (h.child < 0) {
		report(ready, "error fork: %s\n", strerror(errno));
		return 1;
	}
	if (h.child == 0) {
		close(ready);
		exec_child(slave, o->argv, &set);
	}
	int fl = fcntl(h.master, F_GETFL);
	if (fl < 0 || fcntl(h.master, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(h.listen_fd, F_SETFL, O_NONBLOCK) < 0) {
		report(ready, "error fcntl: %s\n", strerror(errno));
		kill(h.child, SIGKILL);
		return 1;
	}
	report(ready, "ok %d %d\n", (int)getpid(), (int)h.child);
	close(ready);
	/* Nothing of the agent's stays with us: no terminal, no directory it might unmount. */
	if (to_dev_null() < 0 || chdir("/") < 0) {
		/* stdio stays as it was; the host works without it */
	}
	serve(&h);
	if (!socket_gone(&h))
		unlink(o->socket_path);
	return 0;
}

/* A number option's value in [1, 65535], or 0. */
static int dimension(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v >= 1 && v <= 65535 ? (int)v : 0;
}

static int parse_options(int argc, char **argv, struct host_options *o)
{
	o->cols = 80;
	o->rows = 24;
	int i = 0;
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (i + 1 >= argc)
			return -1;
		if (strcmp(argv[i], "--socket") == 0)
			o->socket_path = argv[++i];
		else if (strcmp(argv[i], "--cols") == 0)
			o->cols = dimension(argv[++i]);
		else if (strcmp(argv[i], "--rows") == 0)
			o->rows = dimension(argv[++i]);
		else
			return -1;
	}
	if (!o->socket_path || !o->cols || !o->rows || i >= argc)
		return -1;
	o->argv = argv + i;
	return 0;
}

int host_main(int argc, char **argv)
{
	struct host_options opts = {0}, *o = &opts;
	if (parse_options(argc, argv, o) < 0) {
		fprintf(stderr, "usage: vos-init host --socket PATH [--cols N] [--rows N] -- PROGRAM [ARGS...]\n");
		return 2;
	}
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		printf("error pipe: %s\n", strerror(errno));
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		printf("error fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(pipefd[0]);
		_exit(run_host(o, pipefd[1]));
	}
	/* The process the agent started: pass the host's report on, then leave it to itself (it is
	 * reparented away from the agent; reap it only if it already failed). */
	close(pipefd[1]);
	char line[512];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(pipefd[0], line + len, sizeof line - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof line - 1)
			break;
	}
	line[len] = 0;
	if (strncmp(line, "ok ", 3) != 0) {
		waitpid(pid, NULL, 0);
		printf("%s", len ? line : "error the terminal host died before it started\n");
		return 1;
	}
	printf("%s", line);
	return 0;
}
