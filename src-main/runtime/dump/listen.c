/*
 * Listening sockets (VOS_OBJ_LISTEN_SOCKET): what the restorer needs to listen again at the same
 * place, read from our duplicate of the socket. A Unix socket's address is its path (made
 * absolute against its owner's working directory) or its abstract name (hex-encoded after '@');
 * an Internet socket's is its numeric address, the port in p[3]. The backlog and the count of
 * connections waiting to be accepted come from the kernel: TCP_INFO for TCP (for a listener it
 * reports them as tcpi_sacked and tcpi_unacked), the socket diagnostics (UNIX_DIAG_RQLEN) for
 * Unix sockets, SOMAXCONN when neither answers. Field layout: docs/image-format.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../init/control.h"
#include "dump.h"
#include "objects.h"
#include "vos-image.h"

/* What the socket diagnostics say of one Unix socket (by inode): its queue lengths (a listener:
 * connections waiting, backlog; another socket: bytes to read, bytes sent its peer has not read)
 * and, for a listener, the inodes of the clients waiting in its queue, in queue order. */
struct unix_diag_one {
	uint32_t rqueue, wqueue;
	uint32_t icons[256];
	int nicons; /* -1: more than fit */
};

static int unix_diag_query(uint64_t ino, struct unix_diag_one *out)
{
	memset(out, 0, sizeof *out);
	int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s < 0)
		return -1;
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg;
	memset(&msg, 0, sizeof msg);
	msg.nlh.nlmsg_len = sizeof msg;
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST;
	msg.req.sdiag_family = AF_UNIX;
	msg.req.udiag_ino = (uint32_t)ino;
	msg.req.udiag_show = UDIAG_SHOW_RQLEN | UDIAG_SHOW_ICONS;
	msg.req.udiag_cookie[0] = msg.req.udiag_cookie[1] = ~0u; /* any: found by inode */
	int found = -1;
	if (send(s, &msg, sizeof msg, 0) == (ssize_t)sizeof msg) {
		char buf[16384];
		ssize_t n;
		do
			n = recv(s, buf, sizeof buf, 0);
		while (n < 0 && errno == EINTR);
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; n > 0 && NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
				break;
			struct unix_diag_msg *d = NLMSG_DATA(h);
			int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *d));
			for (struct rtattr *a = (struct rtattr *)(d + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
				if (a->rta_type == UNIX_DIAG_RQLEN && RTA_PAYLOAD(a) >= sizeof(struct unix_diag_rqlen)) {
					struct unix_diag_rqlen q;
					memcpy(&q, RTA_DATA(a), sizeof q);
					out->rqueue = q.udiag_rqueue;
					out->wqueue = q.udiag_wqueue;
					found = 0;
				} else if (a->rta_type == UNIX_DIAG_ICONS) {
					size_t count = RTA_PAYLOAD(a) / sizeof(uint32_t);
					if (count > sizeof out->icons / sizeof out->icons[0]) {
						out->nicons = -1;
						continue;
					}
					memcpy(out->icons, RTA_DATA(a), count * sizeof(uint32_t));
					out->nicons = (int)count;
				}
			}
		}
	}
	close(s);
	return found;
}

/* The backlog and the waiting connections of a Unix listener (inode ino); 0, or -1 unknown. */
static int unix_queue(uint64_t ino, uint32_t *max, uint32_t *waiting)
{
	struct unix_diag_one d;
	if (unix_diag_query(ino, &d) < 0)
		return -1;
	*waiting = d.rqueue; /* a listener: connections not yet accepted */
	*max = d.wqueue;     /* and its backlog */
	return 0;
}

int queued_client(struct files_dump *fd, struct object *o)
{
	for (int i = 0; i < fd->nobjects; i++) {
		struct object *l = &fd->objects[i];
		if (l->kind != VOS_OBJ_LISTEN_SOCKET || l->p[1] != AF_UNIX || l->p[2] != o->p[2])
			continue;
		struct unix_diag_one d;
		if (unix_diag_query(l->ino, &d) < 0 || d.nicons <= 0)
			continue;
		for (int k = 0; k < d.nicons; k++) {
			if (d.icons[k] != (uint32_t)o->ino)
				continue;
			/* What it sent waits in the queued end, which nothing can read without accepting
			 * it (and taking it from the program, which may go on running): such a client is
			 * not carried. */
			struct unix_diag_one mine;
			if (unix_diag_query(o->ino, &mine) < 0 || mine.wqueue != 0 || (l->p[0] >> 32) == 0)
				return 0;
			o->kind = VOS_OBJ_QUEUED_CLIENT;
			o->p[0] = l->id;
			o->p[3] = (uint64_t)k;
			l->p[0] -= 1ull << 32; /* one fewer connection dropped */
			return 1;
		}
	}
	return 0;
}

static int opt_on(int fd, int level, int name)
{
	int v = 0;
	socklen_t l = sizeof v;
	return getsockopt(fd, level, name, &v, &l) == 0 && v != 0;
}

static void hex_name(char *out, size_t size, const unsigned char *name, size_t len)
{
	size_t k = 0;
	out[k++] = '@';
	for (size_t i = 0; i < len && k + 3 <= size; i++)
		k += (size_t)snprintf(out + k, size - k, "%02x", name[i]);
	out[k] = 0;
}

/* A Unix listener's address into o->path: absolute path or "@hex". */
static int unix_address(struct object *o, pid_t pid, int fd, struct err *e)
{
	struct sockaddr_un a;
	socklen_t l = sizeof a;
	memset(&a, 0, sizeof a);
	if (getsockname(o->dup, (struct sockaddr *)&a, &l) < 0)
		return fail(e, "cannot read the address of the socket process %d listens on (fd %d): %s", (int)pid, fd, strerror(errno));
	size_t n = l > offsetof(struct sockaddr_un, sun_path) ? l - offsetof(struct sockaddr_un, sun_path) : 0;
	if (n == 0)
		return fail_code(e, "unsupported", "process %d listens on a Unix socket without an address (fd %d)", (int)pid, fd);
	if (a.sun_path[0] == 0) {
		hex_name(o->path, sizeof o->path, (const unsigned char *)a.sun_path + 1, n - 1);
		return 0;
	}
	char name[sizeof a.sun_path + 1];
	memcpy(name, a.sun_path, n);
	name[n] = 0;
	if (name[0] == '/') {
		snprintf(o->path, sizeof o->path, "%s", name);
	} else {
		/* Bound by a relative path: where its owner works now (the best guess there is). */
		char link[64], cwd[4096];
		snprintf(link, sizeof link, "/proc/%d/cwd", (int)pid);
		ssize_t c = readlink(link, cwd, sizeof cwd - 1);
		if (c <= 0)
			return fail(e, "cannot resolve the socket path %s of process %d (fd %d): %s", name, (int)pid, fd, strerror(errno));
		cwd[c] = 0;
		if (snprintf(o->path, sizeof o->path, "%s/%s", cwd, name) >= (int)sizeof o->path)
			return fail_code(e, "unsupported", "the socket path %s/%s is too long", cwd, name);
	}
	struct stat st;
	if (stat(o->path, &st) == 0 && S_ISSOCK(st.st_mode))
		o->p[3] |= (uint64_t)(st.st_mode & 07777) << VOS_LISTEN_MODE_SHIFT;
	else
		o->p[3] |= (uint64_t)0777 << VOS_LISTEN_MODE_SHIFT; /* gone or not reachable from here: as bind makes it */
	return 0;
}

/* An Internet listener's address into o->path (numeric) and its port into p[3]. */
static int inet_address(struct object *o, pid_t pid, int fd, struct err *e)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof a;
	if (getsockname(o->dup, (struct sockaddr *)&a, &l) < 0)
		return fail(e, "cannot read the address of the socket process %d listens on (fd %d): %s", (int)pid, fd, strerror(errno));
	char text[INET6_ADDRSTRLEN];
	uint16_t port;
	if (a.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a;
		inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
		port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a;
		if (in6->sin6_scope_id != 0)
			return fail_code(e, "unsupported", "process %d listens on a link-local address (fd %d), which vOS cannot checkpoint yet", (int)pid, fd);
		inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
		port = ntohs(in6->sin6_port);
		if (opt_on(o->dup, IPPROTO_IPV6, IPV6_V6ONLY))
			o->p[3] |= VOS_LISTEN_V6ONLY;
	}
	snprintf(o->path, sizeof o->path, "%s", text);
	o->p[3] |= port;
	int defer = 0;
	socklen_t dl = sizeof defer;
	if (getsockopt(o->dup, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, &dl) == 0 && defer > 0)
		o->p[3] |= (uint64_t)(uint32_t)defer << 32;
	return 0;
}

int classify_listener(struct object *o, pid_t pid, int fd, int domain, int type, struct err *e)
{
	int protocol = 0;
	socklen_t l = sizeof protocol;
	getsockopt(o->dup, SOL_SOCKET, SO_PROTOCOL, &protocol, &l);
	int inet = domain == AF_INET || domain == AF_INET6;
	if (!(domain == AF_UNIX && (type == SOCK_STREAM || type == SOCK_SEQPACKET)) &&
	    !(inet && type == SOCK_STREAM && protocol == IPPROTO_TCP))
		return fail_code(e, "unsupported", "process %d listens on a socket of family %d, type %d, protocol %d (fd %d), which vOS cannot checkpoint",
				 (int)pid, domain, type, protocol, fd);
	o->kind = VOS_OBJ_LISTEN_SOCKET;
	o->p[1] = (uint64_t)domain;
	o->p[2] = (uint64_t)type;
	o->p[3] = 0;
	if (opt_on(o->dup, SOL_SOCKET, SO_REUSEADDR))
		o->p[3] |= VOS_LISTEN_REUSEADDR;
	if (opt_on(o->dup, SOL_SOCKET, SO_REUSEPORT))
		o->p[3] |= VOS_LISTEN_REUSEPORT;
	if ((domain == AF_UNIX ? unix_address(o, pid, fd, e) : inet_address(o, pid, fd, e)) < 0)
		return -1;
	uint32_t max = SOMAXCONN, waiting = 0;
	if (domain == AF_UNIX) {
		unix_queue(o->ino, &max, &waiting);
	} else {
		struct tcp_info ti;
		socklen_t tl = sizeof ti;
		memset(&ti, 0, sizeof ti);
		if (getsockopt(o->dup, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && ti.tcpi_state == TCP_LISTEN) {
			max = ti.tcpi_sacked;
			waiting = ti.tcpi_unacked;
		}
	}
	if (max == 0)
		max = 1;
	o->p[0] = (uint64_t)waiting << 32 | max;
	return 0;
}

/* Words for where a listener listens: "/path", "@name", "127.0.0.1:8000", "[::1]:8000". */
void listener_words(const char *path, uint64_t domain, uint64_t p3, char *out, size_t size)
{
	if (domain == AF_INET)
		snprintf(out, size, "%s:%u", path, (unsigned)(p3 & 0xffff));
	else if (domain == AF_INET6)
		snprintf(out, size, "[%s]:%u", path, (unsigned)(p3 & 0xffff));
	else
		snprintf(out, size, "%s", path);
}

/* A socket's peer in words: "127.0.0.1:80", "/run/x.sock", "@6162", or "" when it has none. */
static void peer_words(int sock, int domain, char *out, size_t size)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof a;
	out[0] = 0;
	memset(&a, 0, sizeof a);
	if (getpeername(sock, (struct sockaddr *)&a, &l) < 0)
		return;
	char text[INET6_ADDRSTRLEN];
	if (domain == AF_INET && a.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a;
		inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
		snprintf(out, size, "%s:%u", text, (unsigned)ntohs(in->sin_port));
	} else if (domain == AF_INET6 && a.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a;
		inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
		snprintf(out, size, "[%s]:%u", text, (unsigned)ntohs(in6->sin6_port));
	} else if (domain == AF_UNIX && a.ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&a;
		size_t n = l > offsetof(struct sockaddr_un, sun_path) ? l - offsetof(struct sockaddr_un, sun_path) : 0;
		if (n > 0 && un->sun_path[0] == 0)
			hex_name(out, size, (const unsigned char *)un->sun_path + 1, n - 1);
		else if (n > 0)
			snprintf(out, size, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
	}
}

/* A move keeps a connected stream socket to outside the pod open at the source (VOS_OBJ_RELAYED):
 * TCP over IPv4 or IPv6, or a Unix stream socket. Not one still connecting or never connected
 * (no peer), nor a datagram socket: those come back disconnected as before. */
static void keep_for_relay(struct object *o, int domain, int type)
{
	if (type != SOCK_STREAM || (domain != AF_INET && domain != AF_INET6 && domain != AF_UNIX))
		return;
	struct sockaddr_storage peer;
	socklen_t len = sizeof peer;
	if (getpeername(o->dup, (struct sockaddr *)&peer, &len) < 0)
		return;
	o->kind = VOS_OBJ_RELAYED;
	o->p[3] = 0;
	if (domain != AF_UNIX) {
		int on = 0;
		socklen_t l = sizeof on;
		if (getsockopt(o->dup, IPPROTO_TCP, TCP_NODELAY, &on, &l) == 0 && on)
			o->p[3] |= VOS_TCP_NODELAY;
		l = sizeof on;
		if (getsockopt(o->dup, SOL_SOCKET, SO_KEEPALIVE, &on, &l) == 0 && on)
			o->p[3] |= VOS_TCP_KEEPALIVE;
	}
}

/* A socket the restore cannot carry (VOS_OBJ_CLOSED_SOCKET) gets words in its path, for the
 * checkpoint's warning and the restore's note: what it was connected to. */
void describe_closed_sockets(struct files_dump *fd)
{
	for (int i = 0; i < fd->nobjects; i++) {
		struct object *o = &fd->objects[i];
		if (o->kind != VOS_OBJ_CLOSED_SOCKET)
			continue;
		int domain = (int)o->p[1], type = (int)o->p[2];
		char peer[600];
		peer_words(o->dup, domain, peer, sizeof peer);
		const char *what = domain == AF_UNIX ? "a Unix socket"
				   : type == SOCK_STREAM ? "a TCP connection"
				   : type == SOCK_DGRAM	 ? "a UDP socket"
							 : "a network socket";
		int in_pod = 0;
		for (int k = 0; k < fd->nobjects && domain == AF_UNIX && peer[0]; k++)
			in_pod |= fd->objects[k].kind == VOS_OBJ_LISTEN_SOCKET && fd->objects[k].p[1] == AF_UNIX &&
				  strcmp(fd->objects[k].path, peer) == 0;
		if (in_pod)
			snprintf(o->path, sizeof o->path, "a connection to %s that its server had not accepted yet", peer);
		else if (peer[0])
			snprintf(o->path, sizeof o->path, "%s to %s", what, peer);
		else
			snprintf(o->path, sizeof o->path, "%s", what);
		if (fd->relay && !in_pod)
			keep_for_relay(o, domain, type);
	}
}

/* The local end of a relayed socket, as its "relay" line says it: the port of a TCP one,
 * "@NAME" for a Unix one that a restorer named (VOS_RELAY_NAME and the characters it uses
 * only: anything else a program bound is no name of ours), else "0". */
static void relay_local_words(int sock, char *out, size_t size)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof local;
	snprintf(out, size, "0");
	if (getsockname(sock, (struct sockaddr *)&local, &len) < 0)
		return;
	if (local.ss_family == AF_INET) {
		snprintf(out, size, "%u", ntohs(((struct sockaddr_in *)&local)->sin_port));
		return;
	}
	if (local.ss_family == AF_INET6) {
		snprintf(out, size, "%u", ntohs(((struct sockaddr_in6 *)&local)->sin6_port));
		return;
	}
	const struct sockaddr_un *un = (const struct sockaddr_un *)&local;
	size_t off = offsetof(struct sockaddr_un, sun_path);
	if (local.ss_family != AF_UNIX || len <= off + 1 || un->sun_path[0] != '\0')
		return;
	size_t n = len - off - 1;
	const char *name = un->sun_path + 1;
	size_t prefix = strlen(VOS_RELAY_NAME);
	if (n <= prefix || n + 2 > size || memcmp(name, VOS_RELAY_NAME, prefix) != 0)
		return;
	for (size_t i = prefix; i < n; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f') || name[i] == '-'))
			return;
	snprintf(out, size, "@%.*s", (int)n, name);
}

int warn_lost_sockets(const struct files_dump *fd, int conn)
{
	int n = 0;
	for (int i = 0; i < fd->nobjects; i++) {
		const struct object *o = &fd->objects[i];
		char line[1200], who[128];
		describe_pid(o->owner, who, sizeof who);
		if (o->kind == VOS_OBJ_CLOSED_SOCKET) {
			snprintf(line, sizeof line, "warn %s: %.900s will be restored disconnected", who, o->path);
		} else if (o->kind == VOS_OBJ_RELAYED) {
			/* Not lost: said so that the requester can name it (not counted), with what an
			 * agent knows a connection it relays itself by: its local port, or the name a
			 * restorer gave a Unix one ("@NAME"); 0 for none. */
			char local[80];
			relay_local_words(o->dup, local, sizeof local);
			snprintf(line, sizeof line, "relay %u %s %s: %.900s", o->id, local, who, o->path);
			if (conn >= 0)
				control_send(conn, line, -1);
			continue;
		} else if (o->kind == VOS_OBJ_LISTEN_SOCKET && (o->p[0] >> 32) > 0) {
			char at[700];
			listener_words(o->path, o->p[1], o->p[3], at, sizeof at);
			snprintf(line, sizeof line, "warn %s: %u connection(s) waiting on %s to be accepted will be dropped by a restore", who,
				 (unsigned)(o->p[0] >> 32), at);
		} else {
			continue;
		}
		if (conn >= 0)
			control_send(conn, line, -1);
		n++;
	}
	return n;
}

int send_relayed_sockets(const struct files_dump *fd, int conn)
{
	for (int i = 0; i < fd->nobjects; i++) {
		const struct object *o = &fd->objects[i];
		if (o->kind != VOS_OBJ_RELAYED)
			continue;
		char line[64];
		snprintf(line, sizeof line, "socket %u", o->id);
		if (control_send(conn, line, o->dup) < 0)
			return -1;
	}
	return control_send(conn, "sockets-end", -1);
}
