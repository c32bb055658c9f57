/*
 * TCP connections with both ends in the pod (VOS_OBJ_TCP_PAIR): e.g. jshell's front end and its
 * remote JVM agent over loopback, or a local web server and its client in the same session.
 * The runtime is unprivileged (no TCP_REPAIR), so a pair is carried by what can be read from the
 * outside without changing it: the two ends are matched by their addresses (each end's local
 * address is the other's peer address; the 4-tuple is unique in the shared network namespace),
 * each end's receive queue is read with MSG_PEEK (the pod keeps its data), and the send queues are
 * checked to hold nothing that has not reached the other end: on loopback sent data is in the
 * peer's receive queue at once, unless the peer's window is full or it dropped it. Such bytes
 * cannot be read without TCP_REPAIR: the checkpoint is refused, saying so, never carried short.
 * Field layout: docs/image-format.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "dump.h"
#include "objects.h"
#include "vos-image.h"

/* The TCP states (the kernel's numbering, as TCP_INFO reports them; linux/tcp.h has no names). */
enum { ST_ESTABLISHED = 1, ST_FIN_WAIT1 = 4, ST_FIN_WAIT2 = 5, ST_CLOSE_WAIT = 8 };

/* At most this much unread data per end (an OBJDATA record holds at most 64 MiB). */
#define MAX_TCP_QUEUE (32u << 20)

/* What the dump learns of one TCP end. */
struct tcp_end {
	int obj;		     /* index in fd->objects */
	struct sockaddr_storage local, peer;
	uint8_t lkey[18], pkey[18]; /* address (IPv4 as v4-mapped IPv6) + port: compared across families */
	struct tcp_info ti;
	socklen_t tilen;
};

static void addr_key(const struct sockaddr_storage *a, uint8_t key[18])
{
	memset(key, 0, 18);
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)a;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &in->sin_addr, 4);
		memcpy(key + 16, &in->sin_port, 2);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
		memcpy(key, &in6->sin6_addr, 16);
		memcpy(key + 16, &in6->sin6_port, 2);
	}
}

static void addr_text(const struct sockaddr_storage *a, char *out, size_t size, uint16_t *port)
{
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)a;
		inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)size);
		*port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
		inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)size);
		*port = ntohs(in6->sin6_port);
	}
}

/* The end's addresses and TCP state; 0, or -1 when it is not a connected TCP socket we can carry. */
static int learn_end(const struct object *o, struct tcp_end *t)
{
	int protocol = 0;
	socklen_t l = sizeof protocol;
	if (getsockopt(o->dup, SOL_SOCKET, SO_PROTOCOL, &protocol, &l) < 0 || protocol != IPPROTO_TCP)
		return -1;
	l = sizeof t->local;
	memset(&t->local, 0, sizeof t->local);
	memset(&t->peer, 0, sizeof t->peer);
	if (getsockname(o->dup, (struct sockaddr *)&t->local, &l) < 0 || t->local.ss_family != o->p[1])
		return -1;
	l = sizeof t->peer;
	if (getpeername(o->dup, (struct sockaddr *)&t->peer, &l) < 0 || t->peer.ss_family != o->p[1])
		return -1;
	if (t->local.ss_family == AF_INET6 && (((struct sockaddr_in6 *)&t->local)->sin6_scope_id != 0 ||
					       ((struct sockaddr_in6 *)&t->peer)->sin6_scope_id != 0))
		return -1; /* link-local: bound to an interface of this machine */
	addr_key(&t->local, t->lkey);
	addr_key(&t->peer, t->pkey);
	memset(&t->ti, 0, sizeof t->ti);
	t->tilen = sizeof t->ti;
	if (getsockopt(o->dup, IPPROTO_TCP, TCP_INFO, &t->ti, &t->tilen) < 0)
		return -1;
	return 0;
}

static int fin_sent(const struct tcp_end *t)
{
	return t->ti.tcpi_state == ST_FIN_WAIT1 || t->ti.tcpi_state == ST_FIN_WAIT2;
}

static int opt_on(int fd, int level, int name)
{
	int v = 0;
	socklen_t l = sizeof v;
	return getsockopt(fd, level, name, &v, &l) == 0 && v != 0;
}

/* Bytes x wrote that have not reached y's receive queue (0: everything did); -1 when it cannot
 * be known. TCP_INFO's counters: what x sent for the first time (sent less retransmitted) against
 * what y received in order (less the FIN, which counts one). */
static long long undelivered(const struct tcp_end *x, const struct tcp_end *y, int xfd)
{
	int unsent = 0, outq = 0;
	if (ioctl(xfd, SIOCOUTQNSD, &unsent) < 0 || ioctl(xfd, SIOCOUTQ, &outq) < 0)
		return -1;
	if (unsent > 0)
		return unsent;
	size_t need = offsetof(struct tcp_info, tcpi_bytes_retrans) + sizeof x->ti.tcpi_bytes_retrans;
	if (x->tilen < need || y->tilen < need) {
		/* An older kernel: only an empty send queue (the FIN aside) says it for sure. */
		int left = outq - (x->ti.tcpi_state == ST_FIN_WAIT1 ? 1 : 0);
		return left > 0 ? left : 0;
	}
	uint64_t sent = x->ti.tcpi_bytes_sent - x->ti.tcpi_bytes_retrans;
	uint64_t got = y->ti.tcpi_bytes_received - (fin_sent(x) && y->ti.tcpi_state == ST_CLOSE_WAIT ? 1 : 0);
	return sent > got ? (long long)(sent - got) : 0;
}

/* Reads the end's receive queue without taking it (the pod keeps its data). */
static int peek_queue(struct object *o, pid_t pid, const char *words, struct err *e)
{
	int inq = 0;
	if (ioctl(o->dup, SIOCINQ, &inq) < 0)
		return fail(e, "cannot inspect %s: %s", words, strerror(errno));
	if (inq <= 0)
		return 0;
	if ((unsigned)inq > MAX_TCP_QUEUE)
		return fail_code(e, "unsupported", "process %d has %d bytes unread on %s, more than vOS carries (%u)", (int)pid, inq,
				 words, MAX_TCP_QUEUE);
	/* A peek offset the program set (SO_PEEK_OFF) would both move and offset our peek: off meanwhile. */
	int peek_off = -1;
	socklen_t l = sizeof peek_off;
	if (getsockopt(o->dup, SOL_SOCKET, SO_PEEK_OFF, &peek_off, &l) < 0)
		peek_off = -1;
	int none = -1;
	if (peek_off >= 0 && setsockopt(o->dup, SOL_SOCKET, SO_PEEK_OFF, &none, sizeof none) < 0)
		return fail(e, "cannot read the unread data of %s: %s", words, strerror(errno));
	uint8_t *tmp = xmalloc((size_t)inq);
	ssize_t n;
	do
		n = recv(o->dup, tmp, (size_t)inq, MSG_PEEK | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	int why = errno;
	if (peek_off >= 0)
		setsockopt(o->dup, SOL_SOCKET, SO_PEEK_OFF, &peek_off, sizeof peek_off);
	if (n != inq) {
		free(tmp);
		return fail(e, "cannot read the %d unread bytes of %s (got %zd: %s)", inq, words, n, n < 0 ? strerror(why) : "short");
	}
	buf_put(&o->data, tmp, (size_t)n);
	o->has_data = 1;
	o->messages = 0;
	free(tmp);
	return 0;
}

static const char *state_name(uint8_t s)
{
	static const char *const names[] = {"?",	  "established", "syn-sent",   "syn-received", "fin-wait-1", "fin-wait-2",
					    "time-wait", "closed",	   "close-wait", "last-ack",	   "listen",	 "closing"};
	return s < sizeof names / sizeof names[0] ? names[s] : "?";
}

static int state_ok(uint8_t s)
{
	return s == ST_ESTABLISHED || s == ST_FIN_WAIT1 || s == ST_FIN_WAIT2 || s == ST_CLOSE_WAIT;
}

/* The two matched ends a (object ia) and b: checked, and made VOS_OBJ_TCP_PAIR; -1 refused. */
static int make_pair(struct files_dump *fd, struct tcp_end *a, struct tcp_end *b, struct err *e)
{
	struct object *oa = &fd->objects[a->obj];
	char la[INET6_ADDRSTRLEN], lb[INET6_ADDRSTRLEN], words[200];
	uint16_t pa, pb;
	addr_text(&a->local, la, sizeof la, &pa);
	addr_text(&b->local, lb, sizeof lb, &pb);
	snprintf(words, sizeof words, "the TCP connection between %s port %u and %s port %u inside the session", la, pa, lb, pb);
	char who[128];
	describe_pid(oa->owner, who, sizeof who);
	if (!state_ok(a->ti.tcpi_state) || !state_ok(b->ti.tcpi_state) ||
	    fin_sent(a) != (b->ti.tcpi_state == ST_CLOSE_WAIT) || fin_sent(b) != (a->ti.tcpi_state == ST_CLOSE_WAIT))
		return fail_code(e, "unsupported", "%s: %s is closing (%s / %s), which vOS cannot checkpoint; try again in a moment", who,
				 words, state_name(a->ti.tcpi_state), state_name(b->ti.tcpi_state));
	struct tcp_end *ends[2] = {a, b};
	for (int k = 0; k < 2; k++) {
		struct tcp_end *x = ends[k], *y = ends[1 - k];
		long long left = undelivered(x, y, fd->objects[x->obj].dup);
		if (left < 0)
			return fail(e, "%s: cannot read the send queue of %s: %s", who, words, strerror(errno));
		if (left > 0)
			return fail_code(e, "unsupported",
					 "%s: %lld bytes sent on %s have not reached the other end yet (its receive buffer is full), and vOS "
					 "cannot carry them; try again once the program has read its data",
					 who, left, words);
	}
	for (int k = 0; k < 2; k++) {
		struct tcp_end *x = ends[k], *y = ends[1 - k];
		struct object *o = &fd->objects[x->obj];
		if (peek_queue(o, o->owner, words, e) < 0)
			return -1;
		char lt[INET6_ADDRSTRLEN], pt[INET6_ADDRSTRLEN];
		uint16_t lp, pp;
		addr_text(&x->local, lt, sizeof lt, &lp);
		addr_text(&x->peer, pt, sizeof pt, &pp);
		o->kind = VOS_OBJ_TCP_PAIR;
		o->p[0] = fd->objects[y->obj].id;
		o->p[2] = (uint64_t)lp | (uint64_t)pp << 16;
		o->p[3] = 0;
		if (fin_sent(x))
			o->p[3] |= VOS_TCP_SHUT_WR;
		if (opt_on(o->dup, IPPROTO_TCP, TCP_NODELAY))
			o->p[3] |= VOS_TCP_NODELAY;
		if (opt_on(o->dup, SOL_SOCKET, SO_KEEPALIVE))
			o->p[3] |= VOS_TCP_KEEPALIVE;
		if (opt_on(o->dup, SOL_SOCKET, SO_REUSEADDR))
			o->p[3] |= VOS_TCP_REUSEADDR;
		snprintf(o->path, sizeof o->path, "%s %s", lt, pt);
	}
	return 0;
}

int pair_tcp_sockets(struct files_dump *fd, struct err *e)
{
	struct tcp_end *ends = NULL;
	int n = 0;
	for (int i = 0; i < fd->nobjects; i++) {
		const struct object *o = &fd->objects[i];
		if (o->kind != VOS_OBJ_CLOSED_SOCKET || (o->p[1] != AF_INET && o->p[1] != AF_INET6) || o->p[2] != SOCK_STREAM)
			continue;
		ends = xrealloc(ends, (size_t)(n + 1) * sizeof *ends);
		ends[n].obj = i;
		if (learn_end(o, &ends[n]) == 0)
			n++;
	}
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		if (fd->objects[ends[i].obj].kind == VOS_OBJ_TCP_PAIR)
			continue;
		for (int k = i + 1; k < n; k++) {
			if (fd->objects[ends[k].obj].kind == VOS_OBJ_TCP_PAIR || memcmp(ends[i].lkey, ends[k].pkey, 18) != 0 ||
			    memcmp(ends[i].pkey, ends[k].lkey, 18) != 0)
				continue;
			rc = make_pair(fd, &ends[i], &ends[k], e);
			break;
		}
	}
	free(ends);
	return rc;
}
