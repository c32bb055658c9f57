/*
 * `vos-init checkpoint`: the requester's side of a checkpoint, and the one writer of the image's
 * frame (checkpoint-request.h). Its stdin is the agent's: once the pod is frozen, "cut" (the
 * agent has marked the point of its screen to save: the pod may run again) and the SESSION
 * content later, or that content at once; then (held) the verdict. Its stdout is the protocol
 * the agent reads (main.c).
 */
#include "checkpoint-request.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/utsname.h>

#include "../common/buf.h"
#include "../common/image-io.h"
#include "../common/status.h"
#include "../common/util.h"
#include "anchor.h"
#include "control.h"

#define IMAGE_FD 3
#define ANCHOR_FD 4 /* with --relay: the agent's end of the relayed connections (anchor.c) */

/* Asks the held pod for the connections the image keeps at the source ("sockets"): one
 * "socket ID" line with its fd each, then "sockets-end". -1 with errno on a failure. */
static int take_relayed(int sock, struct anchored_set *kept)
{
	if (control_send(sock, "sockets", -1) < 0)
		return -1;
	for (;;) {
		char line[CONTROL_LINE_MAX];
		int fd = -1;
		if (control_recv(sock, line, sizeof line, &fd, 10000) < 0)
			return -1;
		if (strcmp(line, "sockets-end") == 0) {
			if (fd >= 0)
				close(fd);
			return 0;
		}
		unsigned id;
		char end;
		if (sscanf(line, "socket %u%c", &id, &end) != 1 || fd < 0) {
			if (fd >= 0)
				close(fd);
			errno = EPROTO;
			return -1;
		}
		anchored_set_add(kept, id, fd);
	}
}

/* How long the agent has, from "frozen", to say "cut" or give the SESSION content (and from
 * the pod's last record, to give the content after a "cut"). Past it the checkpoint is called
 * off: without SESSION the agent could not restore the image, and the pod must not stay frozen
 * waiting (the pod's own bound, in checkpoint.c, is longer: ours decides). */
#define SESSION_WAIT_MS 2000

/* Buffered reading of the agent's stdin: a line, then exact bytes, each before a deadline. */
struct input {
	int fd;
	size_t len;
	char buf[4096];
};

/* Waits (until deadline_us on the monotonic clock; none if < 0) and reads what came.
 * 1: more input, 0: its end, -1: time is up, an error, or no room. */
static int input_fill(struct input *in, int64_t deadline_us)
{
	if (in->len == sizeof in->buf)
		return -1;
	for (;;) {
		int timeout = -1;
		if (deadline_us >= 0) {
			int64_t left = deadline_us - now_monotonic_us();
			if (left <= 0)
				return -1;
			timeout = (int)((left + 999) / 1000);
		}
		struct pollfd p = {in->fd, POLLIN, 0};
		int ready = poll(&p, 1, timeout);
		if (ready < 0 && errno != EINTR)
			return -1;
		if (ready <= 0)
			continue; /* interrupted, or the deadline: checked above */
		ssize_t n = read(in->fd, in->buf + in->len, sizeof in->buf - in->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : -1;
		in->len += (size_t)n;
		return 1;
	}
}

static void input_consume(struct input *in, size_t n)
{
	memmove(in->buf, in->buf + n, in->len - n);
	in->len -= n;
}

/* The next line, without its '\n'. -1: none in time, or longer than `size`. */
static int input_line(struct input *in, char *line, size_t size, int64_t deadline_us)
{
	for (;;) {
		char *nl = memchr(in->buf, '\n', in->len);
		if (nl) {
			size_t n = (size_t)(nl - in->buf);
			if (n >= size)
				return -1;
			memcpy(line, in->buf, n);
			line[n] = 0;
			input_consume(in, n + 1);
			return 0;
		}
		if (input_fill(in, deadline_us) <= 0)
			return -1;
	}
}

static int input_bytes(struct input *in, char *out, size_t n, int64_t deadline_us)
{
	for (size_t got = 0; got < n;) {
		if (in->len == 0 && input_fill(in, deadline_us) <= 0)
			return -1;
		size_t take = in->len < n - got ? in->len : n - got;
		memcpy(out + got, in->buf, take);
		input_consume(in, take);
		got += take;
	}
	return 0;
}

struct session_content {
	char *data;
	size_t len;
};

/* The SESSION content after its first line `line`: "session N" then N bytes of JSON, or
 * "no-session <why>". -1 with the reason in `why`. */
static int session_from(const char *line, struct input *in, struct session_content *s, int64_t deadline, char *why,
			size_t size)
{
	if (strncmp(line, "no-session ", 11) == 0) {
		snprintf(why, size, "%s", line + 11);
		return -1;
	}
	unsigned long long n;
	char extra;
	if (sscanf(line, "session %llu%c", &n, &extra) != 1 || n > VOS_MAX_RECORD) {
		snprintf(why, size, "the agent's session record is not valid (\"%.100s\")", line);
		return -1;
	}
	s->data = xmalloc(n ? (size_t)n : 1);
	s->len = (size_t)n;
	if (input_bytes(in, s->data, s->len, deadline) < 0) {
		snprintf(why, size, "the agent's session record ended early");
		return -1;
	}
	return 0;
}

/* The agent's next line within SESSION_WAIT_MS; -1 with the reason in `why`. */
static int agent_line(struct input *in, char *line, size_t len, int64_t *deadline, char *why, size_t size)
{
	*deadline = now_monotonic_us() + (int64_t)SESSION_WAIT_MS * 1000;
	if (input_line(in, line, len, *deadline) < 0) {
		snprintf(why, size, "the agent did not give the session record within %d s", SESSION_WAIT_MS / 1000);
		return -1;
	}
	return 0;
}

/* The agent's answer to "frozen": "cut" (then *later = 1: the content comes after the pod ran
 * again, take_session), or the content at once. -1 with the reason in `why`. */
static int take_cut(struct input *in, struct session_content *s, int *later, char *why, size_t size)
{
	char line[512];
	int64_t deadline;
	if (agent_line(in, line, sizeof line, &deadline, why, size) < 0)
		return -1;
	if (strcmp(line, "cut") == 0) {
		*later = 1;
		return 0;
	}
	return session_from(line, in, s, deadline, why, size);
}

/* The SESSION content the agent promised with "cut". */
static int take_session(struct input *in, struct session_content *s, char *why, size_t size)
{
	char line[512];
	int64_t deadline;
	if (agent_line(in, line, sizeof line, &deadline, why, size) < 0)
		return -1;
	return session_from(line, in, s, deadline, why, size);
}

/* HEADER, the image's first record. */
static int write_header(const char *producer, struct image_writer *w, struct err *e)
{
	struct utsname u;
	if (uname(&u) < 0)
		return fail(e, "uname: %s", strerror(errno));
	struct buf b;
	buf_init(&b);
	char magic[16] = VOS_IMAGE_MAGIC;
	buf_put(&b, magic, sizeof magic);
	buf_u32(&b, VOS_IMAGE_VERSION);
	buf_u32(&b, (uint32_t)sysconf(_SC_PAGESIZE));
	buf_u64(&b, (uint64_t)now_ms());
	buf_str(&b, producer);
	buf_str(&b, u.release);
	buf_str(&b, u.machine);
	iw_init(w, IMAGE_FD, 0, 0, 0);
	int rc = iw_record1(w, VOS_REC_HEADER, b.data, b.len, e);
	buf_free(&b);
	return rc;
}

/* SESSION (if the agent gave one) and TRAILER after the pod's records: the pod's reply says
 * where the image stands (records, bytes, chain: HEADER's and its own). *total: the image's size. */
static int finish_image(const char *reply, const struct session_content *s, uint64_t *total, struct err *e)
{
	char records[32], bytes[32], chain[32];
	if (!control_arg(reply, "records", records, sizeof records) || !control_arg(reply, "bytes", bytes, sizeof bytes) ||
	    !control_arg(reply, "chain", chain, sizeof chain))
		return fail(e, "the pod did not say where the image stands");
	struct image_writer w;
	iw_init(&w, IMAGE_FD, (uint32_t)strtoul(records, NULL, 10), strtoull(bytes, NULL, 10),
		(uint32_t)strtoul(chain, NULL, 10));
	if (s->data && iw_record1(&w, VOS_REC_SESSION, s->data, s->len, e) < 0)
		return -1;
	if (iw_trailer(&w, e) < 0)
		return -1;
	*total = w.bytes;
	return 0;
}

/* The pod's "held ..." or "ok ..." for the agent: its counts were for us, the agent is told the
 * size of the whole image instead (bytes=). */
static void print_outcome(const char *reply, uint64_t total, const char *extra)
{
	char line[CONTROL_LINE_MAX];
	snprintf(line, sizeof line, "%s", reply);
	size_t at = 0;
	for (char *save = NULL, *word = strtok_r(line, " ", &save); word; word = strtok_r(NULL, " ", &save)) {
		if (strncmp(word, "records=", 8) == 0 || strncmp(word, "bytes=", 6) == 0 || strncmp(word, "chain=", 6) == 0)
			continue;
		printf("%s%s", at++ ? " " : "", word);
	}
	printf(" bytes=%llu%s\n", (unsigned long long)total, extra);
	fflush(stdout);
}

/* The helper's failure line: "error {status}" (common/status.h), as pod init's replies. */
static void print_error(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void print_error(const char *code, const char *fmt, ...)
{
	char words[ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(words, sizeof words, fmt, ap);
	va_end(ap);
	char line[CONTROL_LINE_MAX];
	status_reply_printf(line, sizeof line, code, "%s", words);
	printf("%s\n", line);
	fflush(stdout);
}

/* The code for a pod that cannot be reached: gone (the session ended) or something else. */
static const char *unreachable_code(int err)
{
	return err == ENOENT || err == ECONNREFUSED ? "session_exited" : "checkpoint_failed";
}

int checkpoint_request(const struct checkpoint_request *o)
{
	signal(SIGPIPE, SIG_IGN); /* a vanished reader of the image is an error, not a death */
	if (fcntl(IMAGE_FD, F_GETFD) < 0) {
		print_error("checkpoint_failed", "the image stream (fd 3) is not open");
		return 1;
	}
	struct image_writer w;
	struct err e;
	if (write_header(o->producer, &w, &e) < 0) {
		print_error("checkpoint_failed", "cannot write the image header: %s", e.msg);
		return 1;
	}
	char request[CONTROL_LINE_MAX];
	char chain_words[80] = "";
	if (o->incremental)
		snprintf(chain_words, sizeof chain_words, " incremental=1%s%.40s", o->parent ? " parent=" : "", o->parent ? o->parent : "");
	/* Relaying needs the agent's end of fd 4; without it the connections come back closed. */
	int relay = o->hold && o->relay && fcntl(ANCHOR_FD, F_GETFD) >= 0;
	snprintf(request, sizeof request, "checkpoint%s%s%s%s%s%s records=%u bytes=%llu chain=%u", o->stop ? " stop=1" : "",
		 o->hold ? " hold=1" : "", relay ? " relay=1" : "", o->hold && o->files_there ? " files_there=1" : "",
		 o->precopy ? " precopy=1" : "", chain_words, w.records, (unsigned long long)w.bytes, w.chain);
	int sock = control_connect(o->control);
	if (sock < 0) {
		int saved = errno;
		print_error(unreachable_code(saved), "cannot reach the session's pod at %s: %s", o->control, strerror(saved));
		return 1;
	}
	/* The pod gets its own copy of fd 3; ours stays open for SESSION and TRAILER. */
	if (control_send(sock, request, IMAGE_FD) < 0) {
		print_error("checkpoint_failed", "cannot talk to the session's pod: %s", strerror(errno));
		close(sock);
		return 1;
	}

	struct input in = {.fd = STDIN_FILENO, .len = 0};
	struct session_content session = {NULL, 0};
	char failed[CONTROL_LINE_MAX] = ""; /* why the image cannot be finished, once known */
	int finished = 0;
	int session_later = 0; /* "cut" came: the SESSION content is still to come */
	uint64_t total = 0;
	int status = 1;
	struct anchored_set kept = {NULL, 0}; /* the connections the pod handed over (relay) */
	int committed = 0;
	char reply[CONTROL_LINE_MAX];
	for (;;) {
		int fd;
		/* A checkpoint of a large process takes a while; the pod answers when it is done. */
		if (control_recv(sock, reply, sizeof reply, &fd, 3600 * 1000) < 0) {
			print_error(errno == ETIMEDOUT ? "timeout" : "checkpoint_failed", "the session's pod did not answer: %s",
				    strerror(errno));
			break;
		}
		if (fd >= 0)
			close(fd);
		if (strncmp(reply, "precopy", 7) == 0 || strncmp(reply, "full ", 5) == 0 || strncmp(reply, "warn ", 5) == 0 ||
		    strncmp(reply, "prewarn ", 8) == 0 || strncmp(reply, "relay ", 6) == 0 || strncmp(reply, "outside ", 8) == 0) {
			/* live migration's progress: a round of pages sent ahead; why an incremental
			 * image is whole; what a restore will not carry
			 * (prewarn: said before the freeze, warn: while frozen); what a move keeps at the
			 * source (relay ID LOCALPORT WHO: WHAT); a process stopped from outside
			 * (outside WHO: WHY) */
			printf("%s\n", reply);
			fflush(stdout);
			continue;
		}
		if (strcmp(reply, "frozen") == 0) {
			printf("frozen\n");
			fflush(stdout);
			/* The pod waits until the agent has marked its screen's cut (nothing can print
			 * to it meanwhile) or given the SESSION content. Without either the pod is told to
			 * give up and run again. */
			if (o->session && take_cut(&in, &session, &session_later, failed, sizeof failed) < 0) {
				char line[CONTROL_LINE_MAX];
				/* The reason, cut to fit the control line (as long as failed[] itself). */
				snprintf(line, sizeof line, "abort %.*s", (int)(sizeof line - sizeof "abort "), failed);
				control_send(sock, line, -1);
			} else {
				control_send(sock, "screen-saved", -1);
			}
			continue;
		}
		/* The pod's records are all in the stream: the content promised with "cut" now. */
		if (session_later && (strncmp(reply, "held", 4) == 0 || strncmp(reply, "ok", 2) == 0)) {
			session_later = 0;
			if (!failed[0])
				(void)take_session(&in, &session, failed, sizeof failed); /* a failure is in failed[] */
		}
		if (strncmp(reply, "held", 4) == 0) {
			/* The pod's records are all in the stream: close the image, then the reader sees its end. */
			if (!failed[0] && finish_image(reply, &session, &total, &e) < 0)
				snprintf(failed, sizeof failed, "%s", e.msg);
			finished = 1;
			if (close(IMAGE_FD) < 0 && !failed[0])
				snprintf(failed, sizeof failed, "cannot close the image stream: %s", strerror(errno));
			if (failed[0]) {
				control_send(sock, "abort", -1); /* the pod runs again; its "ok" follows */
				continue;
			}
			if (relay && take_relayed(sock, &kept) < 0) {
				print_error("checkpoint_failed", "the pod did not hand over its connections to outside it: %s",
					    strerror(errno));
				control_send(sock, "abort", -1);
				failed[0] = '-'; /* the error is said: the pod's "ok" that follows is not */
				continue;
			}
			char relays[32] = "";
			if (relay)
				snprintf(relays, sizeof relays, " relays=%d", kept.n);
			print_outcome(reply, total, relays);
			/* The agent gives the verdict on our stdin; if it goes away, the pod runs again. */
			char verdict[64];
			if (input_line(&in, verdict, sizeof verdict, -1) < 0)
				snprintf(verdict, sizeof verdict, "abort");
			committed = strcmp(verdict, "commit") == 0;
			control_send(sock, committed ? "commit" : "abort", -1);
			continue;
		}
		if (strncmp(reply, "ok", 2) == 0) {
			if (!failed[0] && !finished && finish_image(reply, &session, &total, &e) < 0)
				snprintf(failed, sizeof failed, "%s", e.msg);
			if (strcmp(failed, "-") == 0) {
				/* said already */
			} else if (failed[0]) {
				print_error("checkpoint_failed", "%s", failed);
			} else {
				print_outcome(reply, total, "");
				status = 0;
			}
			break;
		}
		printf("%s\n", reply); /* the pod's "error {status}" */
		break;
	}
	fflush(stdout);
	close(sock);
	free(session.data);
	/* The pod has ended (the verdict was "commit" and it said so): its connections to outside
	 * live on here, relayed to the program on the target until they end. Otherwise the program
	 * has them again (or the move failed before): our copies just go. */
	char stopped[8];
	if (status == 0 && committed && kept.n > 0 && control_arg(reply, "stopped", stopped, sizeof stopped) &&
	    strcmp(stopped, "1") == 0)
		anchor_run(ANCHOR_FD, &kept); /* frees kept */
	else
		anchored_set_free(&kept);
	return status;
}
