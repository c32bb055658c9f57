/*
 * The anchor (anchor.h): once a moved pod has ended, the checkpoint helper keeps its
 * connections to outside the pod. The kernel's connection, its address and what sat in its
 * queues at the freeze never move: the bytes the program on the target sends arrive here from
 * the agent and are written into the real socket, and what the socket receives goes to the
 * agent, which relays it over the link. One poll loop; reads and writes never block (the
 * sockets' shared flags are left as they are: MSG_DONTWAIT per call).
 *
 * Back-pressure is per connection (anchor.h's FULL/ROOM and PAUSE/RESUME), so a server that
 * does not read, or a program on the target that does not, holds up only its own connection:
 * - a socket that cannot take what the agent sent keeps it (pending) and, past
 *   ANCHOR_CONN_FULL, tells the agent, which then sends no more for it until ROOM;
 * - a socket whose bytes cannot go on (the agent's channel holds its limit) is not read while
 *   the agent has it paused.
 * Two bounds for the whole anchor, against an agent that would not keep to that: while the agent
 * has not taken 1 MiB of what we read, no socket is read; while the sockets hold ALL_HIGH of
 * what it sent, its end is not read.
 */
#include "anchor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include "../common/buf.h"
#include "../common/util.h"

#define HEAD 9			 /* u8 type, u32 connection, u32 length */
#define OUT_HIGH (1024 * 1024)	 /* what the agent has not taken before we stop reading sockets */
#define IN_CAP (4 * (HEAD + ANCHOR_MAX_DATA))
#define ALL_HIGH (64 * 1024 * 1024) /* what the sockets hold from the agent before we stop reading it */

void anchored_set_add(struct anchored_set *s, uint32_t id, int fd)
{
	s->v = xrealloc(s->v, (size_t)(s->n + 1) * sizeof *s->v);
	s->v[s->n++] = (struct anchored_socket){id, fd};
}

void anchored_set_free(struct anchored_set *s)
{
	for (int i = 0; i < s->n; i++)
		close(s->v[i].fd);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

struct conn {
	uint32_t id;
	int fd;		 /* -1 once closed */
	int read_done;	 /* the socket said its end (EOF): nothing more to read */
	int shut_asked;	 /* the agent said EOF: shut down writing once pending is written */
	int write_done;	 /* shut down for writing */
	int paused;	 /* the agent asked us not to read it (PAUSE) */
	int full_said;	 /* we told the agent it holds ANCHOR_CONN_FULL (FULL), and not ROOM since */
	struct buf pending; /* from the agent, not yet taken by the socket */
	size_t pending_off;
};

struct anchor {
	int agent;
	struct conn *c;
	int n;
	struct buf out; /* frames for the agent */
	size_t out_off;
	uint8_t in[IN_CAP]; /* frames from the agent */
	size_t in_len;
	uint8_t scratch[ANCHOR_MAX_DATA]; /* what one read of a socket takes */
	int agent_gone;
};

static void put_frame(struct anchor *a, uint8_t type, uint32_t id, const void *data, uint32_t len)
{
	uint8_t head[HEAD] = {type,
			      (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id,
			      (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
	buf_put(&a->out, head, HEAD);
	if (len)
		buf_put(&a->out, data, len);
}

static struct conn *find(struct anchor *a, uint32_t id)
{
	for (int i = 0; i < a->n; i++)
		if (a->c[i].id == id && a->c[i].fd >= 0)
			return &a->c[i];
	return NULL;
}

/* Ends a connection with a reset (SO_LINGER 0: the other end sees RST, not an orderly close). */
static void reset_conn(struct conn *c)
{
	struct linger l = {1, 0};
	(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l); /* a socket it fails on closes plainly */
	close(c->fd);
	c->fd = -1;
	buf_free(&c->pending);
}

/* The socket failed: the agent hears why, and it is gone here. */
static void failed(struct anchor *a, struct conn *c, int err)
{
	const char *why = strerror(err);
	put_frame(a, ANCHOR_RESET, c->id, why, (uint32_t)strlen(why));
	reset_conn(c);
}

/* Both ways ended: closed, and the agent hears it. */
static void maybe_closed(struct anchor *a, struct conn *c)
{
	if (c->fd < 0 || !c->read_done || !c->write_done)
		return;
	close(c->fd);
	c->fd = -1;
	buf_free(&c->pending);
	put_frame(a, ANCHOR_CLOSED, c->id, NULL, 0);
}

static size_t unwritten(const struct conn *c)
{
	return c->pending.len - c->pending_off;
}

/* The agent hears when this connection holds too much of what it sent, and when it has room. */
static void say_fill(struct anchor *a, struct conn *c)
{
	if (c->fd < 0)
		return;
	if (!c->full_said && unwritten(c) >= ANCHOR_CONN_FULL) {
		c->full_said = 1;
		put_frame(a, ANCHOR_FULL, c->id, NULL, 0);
	} else if (c->full_said && unwritten(c) <= ANCHOR_CONN_ROOM) {
		c->full_said = 0;
		put_frame(a, ANCHOR_ROOM, c->id, NULL, 0);
	}
}

/* The written part of a pending buffer goes once it is the bigger half (appending stays cheap). */
static void compact_pending(struct conn *c)
{
	if (c->pending_off < ANCHOR_MAX_DATA || c->pending_off < unwritten(c))
		return;
	memmove(c->pending.data, c->pending.data + c->pending_off, unwritten(c));
	c->pending.len -= c->pending_off;
	c->pending_off = 0;
}

/* Writes what the agent sent and the socket has not taken; then the asked shutdown. */
static void flush_pending(struct anchor *a, struct conn *c)
{
	while (c->fd >= 0 && c->pending_off < c->pending.len) {
		ssize_t w = send(c->fd, c->pending.data + c->pending_off, c->pending.len - c->pending_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			compact_pending(c);
			say_fill(a, c);
			return;
		}
		if (w < 0) {
			failed(a, c, errno);
			return;
		}
		c->pending_off += (size_t)w;
	}
	if (c->fd < 0)
		return;
	buf_reset(&c->pending);
	c->pending_off = 0;
	say_fill(a, c);
	if (c->shut_asked && !c->write_done) {
		if (shutdown(c->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
			failed(a, c, errno);
			return;
		}
		c->write_done = 1;
		maybe_closed(a, c);
	}
}

/* The sockets hold ALL_HIGH of what the agent sent: its end is not read until they take some. */
static int overfull(const struct anchor *a)
{
	size_t held = 0;
	for (int i = 0; i < a->n; i++)
		if (a->c[i].fd >= 0)
			held += unwritten(&a->c[i]);
	return held >= ALL_HIGH;
}

/* The agent's frames, while the sockets are not overfull. -1: a frame we do not know (the agent
 * is ours: this is a bug, and ends the anchor). */
static int take_frames(struct anchor *a)
{
	size_t at = 0;
	while (!overfull(a) && a->in_len - at >= HEAD) {
		const uint8_t *h = a->in + at;
		uint32_t id = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
		uint32_t len = (uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8];
		if (len > ANCHOR_MAX_DATA)
			return -1;
		if (a->in_len - at < HEAD + len)
			break;
		struct conn *c = find(a, id);
		if (h[0] == ANCHOR_DATA) {
			if (c && !c->shut_asked) {
				buf_put(&c->pending, h + HEAD, len);
				flush_pending(a, c);
			}
		} else if (h[0] == ANCHOR_EOF) {
			if (c) {
				c->shut_asked = 1;
				flush_pending(a, c);
			}
		} else if (h[0] == ANCHOR_RESET) {
			if (c)
				reset_conn(c);
		} else if (h[0] == ANCHOR_PAUSE || h[0] == ANCHOR_RESUME) {
			if (c)
				c->paused = h[0] == ANCHOR_PAUSE;
		} else {
			return -1;
		}
		at += HEAD + len;
	}
	memmove(a->in, a->in + at, a->in_len - at);
	a->in_len -= at;
	return 0;
}

static void read_socket(struct anchor *a, struct conn *c)
{
	uint8_t *data = a->scratch;
	ssize_t n = recv(c->fd, data, sizeof a->scratch, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n < 0) {
		failed(a, c, errno);
	} else if (n == 0) {
		c->read_done = 1;
		put_frame(a, ANCHOR_EOF, c->id, NULL, 0);
		maybe_closed(a, c);
	} else {
		put_frame(a, ANCHOR_DATA, c->id, data, (uint32_t)n);
	}
}

static void write_agent(struct anchor *a)
{
	while (a->out_off < a->out.len) {
		ssize_t w = write(a->agent, a->out.data + a->out_off, a->out.len - a->out_off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w < 0) {
			a->agent_gone = 1;
			return;
		}
		a->out_off += (size_t)w;
	}
	buf_reset(&a->out);
	a->out_off = 0;
}

static void read_agent(struct anchor *a)
{
	ssize_t n = read(a->agent, a->in + a->in_len, sizeof a->in - a->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		a->agent_gone = 1;
		return;
	}
	a->in_len += (size_t)n;
	if (take_frames(a) < 0)
		a->agent_gone = 1;
}

static int open_conns(const struct anchor *a)
{
	int n = 0;
	for (int i = 0; i < a->n; i++)
		n += a->c[i].fd >= 0;
	return n;
}

void anchor_run(int agent_fd, struct anchored_set *s)
{
	signal(SIGPIPE, SIG_IGN);
	struct anchor *a = xcalloc(1, sizeof *a);
	a->agent = agent_fd;
	int flags = fcntl(agent_fd, F_GETFL);
	if (flags < 0 || fcntl(agent_fd, F_SETFL, flags | O_NONBLOCK) < 0)
		a->agent_gone = 1;
	a->n = s->n;
	a->c = xcalloc((size_t)s->n, sizeof *a->c);
	for (int i = 0; i < s->n; i++) {
		a->c[i].id = s->v[i].id;
		a->c[i].fd = s->v[i].fd;
		buf_init(&a->c[i].pending);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
	buf_init(&a->out);
	struct pollfd *p = xcalloc((size_t)a->n + 1, sizeof *p);
	while (!a->agent_gone && (open_conns(a) > 0 || a->out_off < a->out.len)) {
		int out_full = a->out.len - a->out_off >= OUT_HIGH;
		p[0] = (struct pollfd){a->agent, (short)((!overfull(a) && a->in_len < IN_CAP ? POLLIN : 0) |
							  (a->out_off < a->out.len ? POLLOUT : 0)), 0};
		for (int i = 0; i < a->n; i++) {
			const struct conn *c = &a->c[i];
			short ev = 0;
			if (c->fd >= 0 && !c->read_done && !c->paused && !out_full)
				ev |= POLLIN;
			if (c->fd >= 0 && c->pending_off < c->pending.len)
				ev |= POLLOUT;
			p[i + 1] = (struct pollfd){ev ? c->fd : -1, ev, 0};
		}
		if (poll(p, (nfds_t)a->n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < a->n; i++) {
			struct conn *c = &a->c[i];
			short re = p[i + 1].revents;
			if (c->fd < 0 || !re)
				continue;
			if (re & POLLOUT)
				flush_pending(a, c);
			if (c->fd >= 0 && (re & (POLLIN | POLLHUP | POLLERR)) && !c->read_done && !c->paused && !out_full)
				read_socket(a, c);
		}
		if (p[0].revents & POLLOUT)
			write_agent(a);
		if (p[0].revents & POLLIN)
			read_agent(a);
		else if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
			a->agent_gone = 1;
		else if (!overfull(a) && a->in_len >= HEAD && take_frames(a) < 0)
			a->agent_gone = 1; /* frames left while the sockets were overfull */
		if (a->out_off < a->out.len)
			write_agent(a);
	}
	/* The agent is gone (or every connection has ended): what is still open ends as a network
	 * failure would, and the program on the target sees its connection reset. */
	for (int i = 0; i < a->n; i++)
		if (a->c[i].fd >= 0)
			reset_conn(&a->c[i]);
	free(p);
	free(a->c);
	buf_free(&a->out);
	free(a);
}
