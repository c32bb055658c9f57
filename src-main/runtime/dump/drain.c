/*
 * The data buffered in the pod's pipes and Unix socket pairs: drained into the image while
 * everything is stopped (the consistent cut) and, when the pod goes on running, put back before
 * it does. Socket ends are paired here too (the kernel's socket diagnostics name each end's
 * peer), as a pair's data is refilled through its other end.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dump.h"
#include "objects.h"
#include "vos-image.h"

#define MAX_DRAIN (16u << 20)

/* ---- Unix socket peers, from the kernel's socket diagnostics ---- */

int load_unix_peers(struct peer_map *m, struct err *e)
{
	m->pairs = NULL;
	m->n = 0;
	int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s < 0)
		return fail(e, "cannot query Unix sockets (sock_diag): %s", strerror(errno));
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg;
	memset(&msg, 0, sizeof msg);
	msg.nlh.nlmsg_len = sizeof msg;
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	msg.req.sdiag_family = AF_UNIX;
	msg.req.udiag_states = ~0u;
	msg.req.udiag_show = UDIAG_SHOW_PEER;
	if (send(s, &msg, sizeof msg, 0) < 0) {
		close(s);
		return fail(e, "cannot query Unix sockets: %s", strerror(errno));
	}
	char buf[32768];
	for (;;) {
		ssize_t n = recv(s, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				close(s);
				return 0;
			}
			struct unix_diag_msg *d = NLMSG_DATA(h);
			int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *d));
			for (struct rtattr *a = (struct rtattr *)(d + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
				if (a->rta_type != UNIX_DIAG_PEER)
					continue;
				uint32_t peer;
				memcpy(&peer, RTA_DATA(a), sizeof peer);
				m->pairs = xrealloc(m->pairs, (size_t)(m->n + 1) * sizeof *m->pairs);
				m->pairs[m->n][0] = d->udiag_ino;
				m->pairs[m->n][1] = peer;
				m->n++;
			}
		}
	}
	close(s);
	return 0;
}

uint64_t peer_of(const struct peer_map *m, uint64_t ino)
{
	for (int i = 0; i < m->n; i++)
		if (m->pairs[i][0] == ino)
			return m->pairs[i][1];
	return 0;
}

/* Reads what is queued in a pipe without blocking (FIONREAD says how much). */
static int drain_pipe(struct object *o, struct err *e)
{
	int avail = 0;
	if (ioctl(o->dup, FIONREAD, &avail) < 0)
		return fail(e, "cannot inspect a pipe: %s", strerror(errno));
	if (avail <= 0)
		return 0;
	uint8_t *tmp = xmalloc((size_t)avail);
	ssize_t n = read(o->dup, tmp, (size_t)avail);
	if (n > 0) {
		buf_put(&o->data, tmp, (size_t)n);
		o->has_data = 1;
	}
	free(tmp);
	return 0;
}

/* Reads what is queued for a socket pair end without blocking; datagrams keep their bounds. */
static void drain_socket(struct object *o)
{
	uint8_t *tmp = xmalloc(1 << 20);
	for (size_t total = 0; total < MAX_DRAIN;) {
		ssize_t n = recv(o->dup, tmp, 1 << 20, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (o->messages)
			buf_u32(&o->data, (uint32_t)n);
		buf_put(&o->data, tmp, (size_t)n);
		o->has_data = 1;
		total += (size_t)n;
	}
	free(tmp);
}

/* Pairs socket ends, drains pipes and sockets, and prepares the refill. */
int finish_objects(struct files_dump *fd, struct err *e)
{
	/* Before anything is drained: a refusal there leaves nothing to put back. */
	if (pair_tcp_sockets(fd, e) < 0)
		return -1;
	struct peer_map peers = {NULL, 0};
	int need_peers = 0;
	for (int i = 0; i < fd->nobjects; i++)
		need_peers |= fd->objects[i].kind == VOS_OBJ_SOCKETPAIR;
	if (need_peers && load_unix_peers(&peers, e) < 0)
		return -1;
	for (int i = 0; i < fd->nobjects; i++) {
		struct object *o = &fd->objects[i];
		if (o->kind == VOS_OBJ_SOCKETPAIR) {
			uint64_t peer_ino = peer_of(&peers, o->ino);
			int peer = -1;
			for (int k = 0; k < fd->nobjects; k++)
				if (k != i && fd->objects[k].kind == VOS_OBJ_SOCKETPAIR && fd->objects[k].ino == peer_ino)
					peer = k;
			if (peer < 0 && peer_ino == 0 && queued_client(fd, o))
				continue; /* connected to a listener of the pod, not accepted yet */
			if (peer < 0 && peer_ino != 0) {
				/* The other end is outside the pod (e.g. a connection to a local server). */
				o->kind = VOS_OBJ_CLOSED_SOCKET;
				continue;
			}
			/* The pair's id is the lower object id; p[3] is this end's peer (or ~0: none). */
			o->p[0] = peer >= 0 && (uint32_t)peer < o->id ? (uint64_t)peer : o->id;
			o->p[3] = peer >= 0 ? (uint64_t)peer : ~0ull;
			drain_socket(o);
			if (peer >= 0)
				o->refill_fd = fd->objects[peer].dup;
		} else if (o->kind == VOS_OBJ_PIPE && o->p[1] == 0) {
			/* A read end: drain the pipe once, and keep a write end for the refill. */
			int drained = 0;
			for (int k = 0; k < i; k++)
				if (fd->objects[k].kind == VOS_OBJ_PIPE && fd->objects[k].ino == o->ino && fd->objects[k].p[1] == 0)
					drained = 1;
			if (drained)
				continue;
			if (drain_pipe(o, e) < 0)
				break;
			if (o->has_data) {
				char path[96];
				/* Opening a pipe through /proc gives a new end of that same pipe. */
				snprintf(path, sizeof path, "/proc/self/fd/%d", o->dup);
				o->refill_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
			}
		}
	}
	free(peers.pairs);
	describe_closed_sockets(fd);
	return 0;
}

void put_back_drained(struct files_dump *fd)
{
	for (int i = 0; i < fd->nobjects; i++) {
		struct object *o = &fd->objects[i];
		if (!o->has_data || o->refill_fd < 0)
			continue;
		if (o->kind == VOS_OBJ_PIPE) {
			write_full(o->refill_fd, o->data.data, o->data.len);
		} else if (o->kind == VOS_OBJ_SOCKETPAIR) {
			struct reader r;
			reader_init(&r, o->data.data, o->data.len);
			if (!o->messages) {
				send(o->refill_fd, o->data.data, o->data.len, MSG_DONTWAIT | MSG_NOSIGNAL);
				continue;
			}
			while (reader_left(&r) > 0) {
				uint32_t len = rd_u32(&r);
				const void *m = rd_raw(&r, len);
				if (r.bad)
					break;
				send(o->refill_fd, m, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			}
		}
	}
}
