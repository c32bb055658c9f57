/*
 * A move's connections to outside the pod, kept open at the source (VOS_OBJ_RELAYED): here the
 * program gets a socket of the same family and type whose other end is this machine's agent,
 * which relays its bytes over the link to the source's agent and the real socket there. The
 * agent tells which connection it is by the hello the restorer sends first (VOS_RELAY_MAGIC,
 * the restore's key, the object id): the key comes in the restorer's environment, which only
 * the user can read, so no one else on this machine can claim the connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "restore.h"

static int hex_value(char ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

void relay_target_from_env(struct relay_target *t)
{
	memset(t, 0, sizeof *t);
	const char *port = getenv("VOS_RELAY_PORT");
	const char *path = getenv("VOS_RELAY_UNIX");
	const char *key = getenv("VOS_RELAY_KEY");
	if (!port || !path || !key || strlen(key) != 2 * VOS_RELAY_KEY_BYTES || strlen(path) >= sizeof t->unix_path)
		return;
	char *end;
	unsigned long p = strtoul(port, &end, 10);
	if (*end || p == 0 || p > 65535)
		return;
	for (int i = 0; i < VOS_RELAY_KEY_BYTES; i++) {
		int hi = hex_value(key[2 * i]), lo = hex_value(key[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return;
		t->key[i] = (uint8_t)(hi << 4 | lo);
	}
	t->port = (uint16_t)p;
	snprintf(t->unix_path, sizeof t->unix_path, "%s", path);
	/* Optional: without a well-formed tag the Unix sockets go unnamed (relayed all the same). */
	const char *tag = getenv("VOS_RELAY_TAG");
	int tag_ok = tag && strlen(tag) == VOS_RELAY_TAG_CHARS;
	for (int i = 0; tag_ok && i < VOS_RELAY_TAG_CHARS; i++)
		tag_ok = hex_value(tag[i]) >= 0;
	if (tag_ok)
		snprintf(t->tag, sizeof t->tag, "%s", tag);
	t->on = 1;
	/* The processes restored from here carry their own environment; this is gone with us. */
	unsetenv("VOS_RELAY_KEY");
}

/* Names Unix socket fd VOS_RELAY_NAME "TAG-ID" in the abstract namespace. Not fatal when it
 * cannot (the name is taken): the connection is relayed all the same, only a later move of the
 * session keeps this machine in its chain. */
static void name_unix_relay(int fd, const struct relay_target *t, uint32_t id)
{
	if (!t->tag[0])
		return;
	struct sockaddr_un a;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, VOS_RELAY_NAME "%s-%u", t->tag, id);
	if (n <= 0 || (size_t)n >= sizeof a.sun_path - 1)
		return;
	if (bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0)
		return; /* see above: deliberately not an error */
}

/* A socket of o's family connected to the agent's relay (blocking: it listens on this machine). */
static int connect_relay(const struct relay_target *t, int domain, uint32_t id, struct err *e)
{
	int fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(e, "socket: %s", strerror(errno));
	int rc;
	if (domain == AF_UNIX) {
		name_unix_relay(fd, t, id);
		struct sockaddr_un a;
		memset(&a, 0, sizeof a);
		a.sun_family = AF_UNIX;
		memcpy(a.sun_path, t->unix_path, strlen(t->unix_path));
		rc = connect(fd, (struct sockaddr *)&a, sizeof a);
	} else if (domain == AF_INET) {
		struct sockaddr_in a;
		memset(&a, 0, sizeof a);
		a.sin_family = AF_INET;
		a.sin_port = htons(t->port);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		rc = connect(fd, (struct sockaddr *)&a, sizeof a);
	} else {
		/* The agent listens on 127.0.0.1; an IPv6 socket reaches it by its IPv4-mapped address. */
		struct sockaddr_in6 a;
		memset(&a, 0, sizeof a);
		a.sin6_family = AF_INET6;
		a.sin6_port = htons(t->port);
		a.sin6_addr.s6_addr[10] = 0xff;
		a.sin6_addr.s6_addr[11] = 0xff;
		a.sin6_addr.s6_addr[12] = 127;
		a.sin6_addr.s6_addr[15] = 1;
		rc = connect(fd, (struct sockaddr *)&a, sizeof a);
	}
	if (rc < 0) {
		int err = errno;
		close(fd);
		return fail(e, "cannot reach this machine's agent to relay a connection kept at the source: %s", strerror(err));
	}
	return fd;
}

/* The agent's answer to the hello: it has taken the connection (anything else, an end or
 * silence, is a refusal). Exactly one byte is read: what follows is the program's. */
static int await_ack(int fd, struct err *e)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int rc;
	do
		rc = poll(&p, 1, VOS_RELAY_ACK_WAIT_MS);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return fail(e, "poll: %s", strerror(errno));
	if (rc == 0)
		return fail(e, "this machine's agent did not take a relayed connection within %d s", VOS_RELAY_ACK_WAIT_MS / 1000);
	uint8_t ack = 0;
	ssize_t n;
	do
		n = read(fd, &ack, 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return fail(e, "reading the agent's answer to a relayed connection: %s", strerror(errno));
	if (n == 0 || ack != VOS_RELAY_ACK)
		return fail(e, "this machine's agent refused a relayed connection (it does not expect this restore)");
	return 0;
}

int relayed_socket(struct restore_ctx *c, const struct img_object *o, struct err *e)
{
	if (!c->relay.on) {
		/* An image of a move restored from a file: nothing relays it. */
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return fail(e, "socketpair: %s", strerror(errno));
		close(sv[1]);
		set_status_flags(sv[0], o->flags);
		restore_note(c, "%.400s came back disconnected (it was kept open by the machine it moved from, which is not "
				"relaying it here)", o->path[0] ? o->path : "a connection to outside the session");
		return sv[0];
	}
	int fd = connect_relay(&c->relay, (int)o->p[1], o->id, e);
	if (fd < 0)
		return -1;
	uint8_t hello[VOS_RELAY_HELLO_BYTES];
	memcpy(hello, VOS_RELAY_MAGIC, 8);
	memcpy(hello + 8, c->relay.key, VOS_RELAY_KEY_BYTES);
	uint32_t id = o->id;
	hello[8 + VOS_RELAY_KEY_BYTES] = (uint8_t)(id >> 24);
	hello[9 + VOS_RELAY_KEY_BYTES] = (uint8_t)(id >> 16);
	hello[10 + VOS_RELAY_KEY_BYTES] = (uint8_t)(id >> 8);
	hello[11 + VOS_RELAY_KEY_BYTES] = (uint8_t)id;
	if (write_full(fd, hello, sizeof hello) < 0) {
		int err = errno;
		close(fd);
		return fail(e, "cannot hand a relayed connection to this machine's agent: %s", strerror(err));
	}
	if (await_ack(fd, e) < 0) {
		close(fd);
		return -1;
	}
	int on = 1;
	if ((o->p[3] & VOS_TCP_NODELAY) && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0) {
		int err = errno;
		close(fd);
		return fail(e, "TCP_NODELAY on a relayed connection: %s", strerror(err));
	}
	if ((o->p[3] & VOS_TCP_KEEPALIVE) && setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0) {
		int err = errno;
		close(fd);
		return fail(e, "SO_KEEPALIVE on a relayed connection: %s", strerror(err));
	}
	set_status_flags(fd, o->flags);
	return fd;
}
