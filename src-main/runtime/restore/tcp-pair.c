/*
 * TCP connections whose two ends were in the pod (VOS_OBJ_TCP_PAIR), connected again in pod init
 * once every listener of the pod listens: one end is accepted, the other connects. When a
 * listener of the pod listens at one end's address (the end it had accepted), the connection goes
 * through it (a listener of our own could not bind there beside it, and the pod's listener is not
 * disturbed: we take exactly the connection we made). Otherwise a listener of our own, bound at
 * that end's old address (SO_REUSEADDR), accepts it and is closed. Each end is bound at its old
 * address when it is free here, else on another port (the restore's note says so); an address
 * this machine does not have (a move) falls back to its loopback. Then each end's unread bytes
 * are written from the other end, before anything new, and an end that had shut down writing
 * shuts it down again. Every field is checked again here, as coming from outside.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "restore.h"
#include "vos-image.h"

#define WAIT_MS 3000 /* for a loopback connection to be made, or room for the bytes in flight */

/* An address and port as 18 bytes (IPv4 as v4-mapped IPv6): compared across families. */
struct key {
	uint8_t b[18];
};

static struct key key_of(const struct sockaddr_storage *a)
{
	struct key k;
	memset(&k, 0, sizeof k);
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)a;
		k.b[10] = k.b[11] = 0xff;
		memcpy(k.b + 12, &in->sin_addr, 4);
		memcpy(k.b + 16, &in->sin_port, 2);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
		memcpy(k.b, &in6->sin6_addr, 16);
		memcpy(k.b + 16, &in6->sin6_port, 2);
	}
	return k;
}

static int is_v4(const struct key *k)
{
	static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return memcmp(k->b, prefix, 12) == 0;
}

static uint16_t key_port(const struct key *k)
{
	uint16_t p;
	memcpy(&p, k->b + 16, 2);
	return ntohs(p);
}

static struct key with_port(struct key k, uint16_t port)
{
	uint16_t p = htons(port);
	memcpy(k.b + 16, &p, 2);
	return k;
}

/* The loopback address of k's kind (127.0.0.1 for an IPv4 or v4-mapped one, ::1 otherwise). */
static struct key loopback_of(const struct key *k, uint16_t port)
{
	struct key l;
	memset(&l, 0, sizeof l);
	if (is_v4(k)) {
		l.b[10] = l.b[11] = 0xff;
		l.b[12] = 127;
		l.b[15] = 1;
	} else {
		l.b[15] = 1;
	}
	return with_port(l, port);
}

/* k as an address of `domain`; its length, or 0 when that family cannot hold it. */
static socklen_t addr_of(const struct key *k, int domain, struct sockaddr_storage *a)
{
	memset(a, 0, sizeof *a);
	if (domain == AF_INET) {
		if (!is_v4(k))
			return 0;
		struct sockaddr_in *in = (struct sockaddr_in *)a;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, k->b + 12, 4);
		memcpy(&in->sin_port, k->b + 16, 2);
		return sizeof *in;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)a;
	in6->sin6_family = AF_INET6;
	memcpy(&in6->sin6_addr, k->b, 16);
	memcpy(&in6->sin6_port, k->b + 16, 2);
	return sizeof *in6;
}

static void key_words(const struct key *k, char *out, size_t size)
{
	char text[INET6_ADDRSTRLEN] = "?";
	if (is_v4(k))
		inet_ntop(AF_INET, k->b + 12, text, sizeof text);
	else
		inet_ntop(AF_INET6, k->b, text, sizeof text);
	snprintf(out, size, is_v4(k) ? "%s:%u" : "[%s]:%u", text, (unsigned)key_port(k));
}

/* One end, as the image describes it. */
struct end {
	int obj;
	int domain;
	struct key local, peer;
	uint64_t flags;
};

static int load_end(const struct image *img, int i, struct end *x)
{
	const struct img_object *o = &img->objects[i];
	struct sockaddr_storage l, p;
	if (o->kind != VOS_OBJ_TCP_PAIR || tcp_pair_addresses(o, &l, &p) < 0 || (o->p[3] & ~VOS_TCP_FLAGS) != 0)
		return -1;
	x->obj = i;
	x->domain = (int)o->p[1];
	x->local = key_of(&l);
	x->peer = key_of(&p);
	x->flags = o->p[3];
	return 0;
}

static int set_on(int fd, int level, int name, int on)
{
	return setsockopt(fd, level, name, &on, sizeof on);
}

static int wait_for(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	int rc;
	do
		rc = poll(&p, 1, WAIT_MS);
	while (rc < 0 && errno == EINTR);
	return rc > 0 ? 0 : -1;
}

/* A listener of the pod that listens where x's end was (x was accepted from it), or -1. */
static int pod_listener(const struct restore_ctx *c, const struct end *x)
{
	const struct image *img = &c->img;
	for (int i = 0; i < img->nobjects; i++) {
		const struct img_object *l = &img->objects[i];
		if (l->kind != VOS_OBJ_LISTEN_SOCKET || (l->p[1] != AF_INET && l->p[1] != AF_INET6) || c->object_fd[i] < 0 ||
		    (uint16_t)(l->p[3] & 0xffff) != key_port(&x->local))
			continue;
		struct sockaddr_storage a;
		socklen_t len = sizeof a;
		memset(&a, 0, sizeof a);
		if (getsockname(c->object_fd[i], (struct sockaddr *)&a, &len) < 0)
			continue;
		struct key k = key_of(&a);
		if (memcmp(k.b, x->local.b, 18) == 0)
			return i;
		static const uint8_t zero[16] = {0};
		int wildcard = a.ss_family == AF_INET ? is_v4(&k) && memcmp(k.b + 12, zero, 4) == 0 : memcmp(k.b, zero, 16) == 0;
		if (wildcard && key_port(&k) == key_port(&x->local) &&
		    (a.ss_family == AF_INET6 ? !(l->p[3] & VOS_LISTEN_V6ONLY) || !is_v4(&x->local) : is_v4(&x->local)))
			return i;
	}
	return -1;
}

/*
 * Whether every TCP socket here at local port `port` is going away (FIN_WAIT1/2, TIME_WAIT, CLOSE,
 * LAST_ACK, CLOSING in /proc/net/tcp and tcp6): the connection of a program killed a moment ago,
 * which the kernel is still taking down. 0 when one is in use otherwise (or none is listed, or the
 * tables cannot be read): then waiting would not help. Only the port is compared, which errs on the
 * side of not waiting.
 */
static int port_only_closing(uint16_t port)
{
	static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	int closing = 0;
	for (int t = 0; t < 2; t++) {
		FILE *f = fopen(tables[t], "re");
		if (!f)
			continue;
		char line[512];
		while (fgets(line, sizeof line, f)) {
			char local[64];
			unsigned lport, state;
			/* "  sl  local_address rem_address   st ...": "N: ADDR:PORT ADDR:PORT ST" (hex). */
			if (sscanf(line, " %*u: %63[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", local, &lport, &state) != 3 || lport != port)
				continue;
			if (state == 4 || state == 5 || state == 6 || state == 7 || state == 9 || state == 11) {
				closing = 1;
				continue;
			}
			fclose(f);
			return 0;
		}
		fclose(f);
	}
	return closing;
}

#define CLOSING_WAIT_MS 2000 /* for a killed program's connection at the same port to go */

/* A socket of x's domain bound at `at` (SO_REUSEADDR on); -1 with errno. When the address is held
 * only by connections going away (a checkpoint, kill and restore at once), waits for them first. */
static int bound_socket(int domain, const struct key *at)
{
	struct sockaddr_storage a;
	socklen_t len = addr_of(at, domain, &a);
	if (len == 0) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	int64_t deadline = now_monotonic_us() + CLOSING_WAIT_MS * 1000LL;
	for (;;) {
		int fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		if (set_on(fd, SOL_SOCKET, SO_REUSEADDR, 1) == 0 && bind(fd, (struct sockaddr *)&a, len) == 0)
			return fd;
		int why = errno;
		close(fd);
		if (why != EADDRINUSE || key_port(at) == 0 || now_monotonic_us() > deadline || !port_only_closing(key_port(at))) {
			errno = why;
			return -1;
		}
		struct timespec pause = {0, 10 * 1000 * 1000};
		(void)nanosleep(&pause, NULL); /* interrupted: it only tries again sooner */
	}
}

static int set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Connects y's end to `to` (bound at its old address when that is free, else at a port of the
 * kernel's choice) and waits for the connection; the socket, or -1 with errno. *moved: not at its
 * old address. */
static int connect_end(const struct end *y, const struct key *to, int *moved)
{
	struct sockaddr_storage a;
	socklen_t len = addr_of(to, y->domain, &a);
	if (len == 0) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = attempt == 0 ? bound_socket(y->domain, &y->local) : socket(y->domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			if (attempt == 0)
				continue; /* its old address is taken (or not here): any port */
			return -1;
		}
		int rc = set_nonblock(fd, 1);
		if (rc == 0) {
			rc = connect(fd, (struct sockaddr *)&a, len);
			if (rc < 0 && errno == EINPROGRESS) {
				int err = 0;
				socklen_t el = sizeof err;
				if (wait_for(fd, POLLOUT) < 0) {
					errno = ETIMEDOUT;
					rc = -1;
				} else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) {
					rc = -1;
				} else if (err != 0) {
					errno = err;
					rc = -1;
				} else {
					rc = 0;
				}
			}
		}
		if (rc == 0 && set_nonblock(fd, 0) == 0) {
			*moved = attempt != 0;
			return fd;
		}
		int why = errno;
		close(fd);
		errno = why;
		if (attempt == 0 && why != EADDRNOTAVAIL && why != EADDRINUSE)
			return -1; /* not a matter of its port: another one would not do better */
	}
	return -1;
}

/* Accepts from listener lfd the connection whose client is at `client`, waiting for it; others
 * that came meanwhile are dropped (*dropped counts them). The socket, or -1 with errno. */
static int accept_ours(int lfd, const struct key *client, int *dropped)
{
	for (int tries = 0; tries < 64; tries++) {
		struct sockaddr_storage a;
		socklen_t len = sizeof a;
		memset(&a, 0, sizeof a);
		int s = accept4(lfd, (struct sockaddr *)&a, &len, SOCK_CLOEXEC);
		if (s < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			if (wait_for(lfd, POLLIN) < 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			continue;
		}
		struct key k = key_of(&a);
		if (memcmp(k.b, client->b, 18) == 0)
			return s;
		close(s); /* someone else's, come in during the restore */
		(*dropped)++;
	}
	errno = EAGAIN;
	return -1;
}

/* Writes an end's bytes in flight from the other end (nonblocking: nobody reads yet); once the
 * buffers are full, a larger send buffer; -1 when they still do not fit. */
static int push_bytes(int fd, const uint8_t *data, size_t len)
{
	int grown = 0;
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (wait_for(fd, POLLOUT) == 0)
			continue;
		if (grown) {
			errno = ENOBUFS;
			return -1;
		}
		int size = 0;
		socklen_t sl = sizeof size;
		getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &sl);
		size_t want = (size_t)size + (len - off);
		int v = want > (size_t)(INT32_MAX / 2) ? INT32_MAX / 2 : (int)want;
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
		grown = 1;
	}
	return 0;
}

static int set_options(int fd, uint64_t flags)
{
	return set_on(fd, IPPROTO_TCP, TCP_NODELAY, (flags & VOS_TCP_NODELAY) != 0) |
	       set_on(fd, SOL_SOCKET, SO_KEEPALIVE, (flags & VOS_TCP_KEEPALIVE) != 0) |
	       set_on(fd, SOL_SOCKET, SO_REUSEADDR, (flags & VOS_TCP_REUSEADDR) != 0);
}

/* x's unread bytes, written from the other end's socket `from`. */
static int refill(struct restore_ctx *c, const struct end *x, int from, const char *words, struct err *e)
{
	const struct img_object *o = &c->img.objects[x->obj];
	if (!o->has_data)
		return 0;
	size_t len;
	void *data = load_data(c, o, &len, e);
	if (!data)
		return -1;
	int rc = push_bytes(from, data, len);
	int why = errno;
	free(data);
	if (rc < 0)
		return fail(e, "cannot put back the %zu bytes in flight on %s: %s", len, words, strerror(why));
	return 0;
}

/* The connection between x (the end accepted) and y (the end that connects). */
static int make_pair(struct restore_ctx *c, int base, const struct end *x, const struct end *y, struct err *e)
{
	char xw[80], yw[80], words[240];
	key_words(&x->local, xw, sizeof xw);
	key_words(&y->local, yw, sizeof yw);
	snprintf(words, sizeof words, "the TCP connection between %s and %s inside the session", yw, xw);
	int l = pod_listener(c, x);
	int s = -1, cl = -1, moved_x = 0, moved_y = 0, dropped = 0;
	if (l >= 0) {
		/* Through the pod's own listener, which listens there again already. */
		int lfd = c->object_fd[l];
		int defer = 0;
		socklen_t dl = sizeof defer;
		if (getsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, &dl) < 0)
			defer = 0;
		if (defer > 0)
			set_on(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, 0); /* our connection sends nothing first */
		int lflags = fcntl(lfd, F_GETFL);
		set_nonblock(lfd, 1); /* accept_ours waits, bounded */
		struct key to[2] = {x->local, loopback_of(&x->local, key_port(&x->local))};
		for (int k = 0; k < 2 && cl < 0; k++)
			cl = connect_end(y, &to[k], &moved_y);
		int why = errno;
		if (cl >= 0) {
			struct sockaddr_storage a;
			socklen_t len = sizeof a;
			memset(&a, 0, sizeof a);
			struct key mine = getsockname(cl, (struct sockaddr *)&a, &len) == 0 ? key_of(&a) : y->local;
			s = accept_ours(lfd, &mine, &dropped);
			why = errno;
		}
		if (defer > 0)
			set_on(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, defer);
		if (lflags >= 0)
			fcntl(lfd, F_SETFL, lflags);
		if (s < 0) {
			if (cl >= 0)
				close(cl);
			return fail(e, "cannot connect %s again through its server's listener: %s", words, strerror(why));
		}
	} else {
		/* A listener of our own at x's old address (or, taken or missing here, another). */
		struct key at[3] = {x->local, with_port(x->local, 0), loopback_of(&x->local, 0)};
		int lfd = -1;
		for (int k = 0; k < 3 && lfd < 0; k++) {
			lfd = bound_socket(x->domain, &at[k]);
			if (lfd >= 0 && listen(lfd, 1) < 0) {
				close(lfd);
				lfd = -1;
			}
			moved_x = k > 0;
		}
		if (lfd < 0)
			return fail(e, "cannot make %s again: no address to listen on: %s", words, strerror(errno));
		struct sockaddr_storage a;
		socklen_t len = sizeof a;
		memset(&a, 0, sizeof a);
		int rc = getsockname(lfd, (struct sockaddr *)&a, &len);
		struct key lk = key_of(&a);
		cl = rc == 0 ? connect_end(y, &lk, &moved_y) : -1;
		int why = errno;
		if (cl >= 0) {
			struct sockaddr_storage ca;
			socklen_t clen = sizeof ca;
			memset(&ca, 0, sizeof ca);
			struct key mine = getsockname(cl, (struct sockaddr *)&ca, &clen) == 0 ? key_of(&ca) : y->local;
			set_nonblock(lfd, 1);
			s = accept_ours(lfd, &mine, &dropped);
			why = errno;
		}
		close(lfd);
		if (s < 0) {
			if (cl >= 0)
				close(cl);
			return fail(e, "cannot make %s again: %s", words, strerror(why));
		}
	}
	if (set_options(s, x->flags) != 0 || set_options(cl, y->flags) != 0) {
		int why = errno;
		close(s);
		close(cl);
		return fail(e, "cannot set the options of %s: %s", words, strerror(why));
	}
	/* What each end had not read yet, from the other end, before anything new; then the FINs. */
	int rc = refill(c, x, cl, words, e) < 0 || refill(c, y, s, words, e) < 0 ? -1 : 0;
	if (rc == 0 && (((x->flags & VOS_TCP_SHUT_WR) && shutdown(s, SHUT_WR) < 0) ||
			((y->flags & VOS_TCP_SHUT_WR) && shutdown(cl, SHUT_WR) < 0)))
		rc = fail(e, "cannot shut down %s again: %s", words, strerror(errno));
	if (rc < 0) {
		close(s);
		close(cl);
		return -1;
	}
	set_status_flags(s, c->img.objects[x->obj].flags);
	set_status_flags(cl, c->img.objects[y->obj].flags);
	if (moved_x || moved_y) {
		char nx[80] = "?", ny[80] = "?";
		struct sockaddr_storage a;
		socklen_t len = sizeof a;
		if (getsockname(s, (struct sockaddr *)&a, &len) == 0) {
			struct key k = key_of(&a);
			key_words(&k, nx, sizeof nx);
		}
		len = sizeof a;
		if (getsockname(cl, (struct sockaddr *)&a, &len) == 0) {
			struct key k = key_of(&a);
			key_words(&k, ny, sizeof ny);
		}
		restore_note(c, "%s came back between %s and %s (its old addresses are in use or missing here)", words, ny, nx);
	}
	if (dropped)
		restore_note(c, "%d connection(s) that came in during the restore to the listener of %s were dropped", dropped, xw);
	c->object_fd[x->obj] = high_fd(s, base);
	c->object_fd[y->obj] = high_fd(cl, base);
	if (c->object_fd[x->obj] < 0 || c->object_fd[y->obj] < 0)
		return fail(e, "out of file descriptors while restoring: %s", strerror(errno));
	return 0;
}

int tcp_pair_objects(struct restore_ctx *c, int base, struct err *e)
{
	struct image *img = &c->img;
	for (int i = 0; i < img->nobjects; i++) {
		if (img->objects[i].kind != VOS_OBJ_TCP_PAIR || c->object_fd[i] >= 0)
			continue;
		int peer = -1;
		for (int k = 0; k < img->nobjects; k++)
			if (k != i && img->objects[k].id == img->objects[i].p[0])
				peer = k;
		struct end a, b;
		if (peer < 0 || c->object_fd[peer] >= 0 || load_end(img, i, &a) < 0 || load_end(img, peer, &b) < 0 ||
		    img->objects[peer].p[0] != img->objects[i].id)
			return fail_code(e, "bad_image", "TCP connection end %u has no other end in the image", img->objects[i].id);
		/* The end a listener of the pod serves was accepted from it; else the lower port is the
		 * likelier server (the other one's came from the ephemeral range). */
		int a_server = pod_listener(c, &a) >= 0 ? 1
			       : pod_listener(c, &b) >= 0 ? 0
							   : key_port(&a.local) <= key_port(&b.local);
		if (make_pair(c, base, a_server ? &a : &b, a_server ? &b : &a, e) < 0)
			return -1;
	}
	return 0;
}
