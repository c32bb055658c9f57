#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A Unix stream socket and the address of path for it; -1 + errno. */
static int unix_socket(const char *path, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof *addr);
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof addr->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr->sun_path, path);
	return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Closes s after a failure, keeping the failure's errno; returns -1. */
static int give_up(int s)
{
	int e = errno;
	close(s);
	errno = e;
	return -1;
}

int control_listen(const char *path)
{
	struct sockaddr_un addr;
	int s = unix_socket(path, &addr);
	if (s < 0)
		return -1;
	unlink(path);
	mode_t old = umask(0177);
	int rc = bind(s, (struct sockaddr *)&addr, sizeof addr);
	umask(old);
	if (rc < 0 || listen(s, 8) < 0)
		return give_up(s);
	return s;
}

int control_connect(const char *path)
{
	struct sockaddr_un addr;
	int s = unix_socket(path, &addr);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0)
		return give_up(s);
	return s;
}

int control_send(int sock, const char *line, int fd)
{
	char buf[CONTROL_LINE_MAX + 1];
	size_t len = strlen(line);
	if (len >= CONTROL_LINE_MAX)
		len = CONTROL_LINE_MAX - 1;
	memcpy(buf, line, len);
	buf[len++] = '\n';
	struct iovec iov = {buf, len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	union {
		char bytes[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	if (fd >= 0) {
		memset(&control, 0, sizeof control);
		msg.msg_control = control.bytes;
		msg.msg_controllen = sizeof control.bytes;
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if ((size_t)n < len) {
			/* The rest without the descriptor. */
			const char *rest = buf + n;
			size_t left = len - (size_t)n;
			while (left > 0) {
				ssize_t m = send(sock, rest, left, MSG_NOSIGNAL);
				if (m < 0 && errno == EINTR)
					continue;
				if (m < 0)
					return -1;
				rest += m;
				left -= (size_t)m;
			}
		}
		return 0;
	}
}

int control_recv(int sock, char *buf, size_t size, int *fd, int timeout_ms)
{
	size_t len = 0;
	*fd = -1;
	while (len + 1 < size) {
		struct pollfd p = {sock, POLLIN, 0};
		int pr = poll(&p, 1, timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			errno = pr == 0 ? ETIMEDOUT : errno;
			return -1;
		}
		struct iovec iov = {buf + len, 1};
		union {
			char bytes[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} control;
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
				     .msg_controllen = sizeof control.bytes};
		ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && *fd < 0)
				memcpy(fd, CMSG_DATA(c), sizeof *fd);
		}
		if (buf[len] == '\n') {
			buf[len] = 0;
			return 0;
		}
		len++;
	}
	errno = EMSGSIZE;
	return -1;
}

int control_accept_request(int listen_fd, char *line, size_t size, int *fd, int timeout_ms)
{
	struct pollfd p = {listen_fd, POLLIN, 0};
	int pr = poll(&p, 1, timeout_ms);
	if (pr <= 0) {
		errno = pr == 0 ? ETIMEDOUT : errno;
		return -1;
	}
	int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		return -1;
	if (control_recv(conn, line, size, fd, 5000) < 0)
		return give_up(conn);
	return conn;
}

const char *control_arg(const char *line, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	for (const char *p = line; (p = strstr(p, key)) != NULL; p += klen) {
		if ((p != line && p[-1] != ' ') || p[klen] != '=')
			continue;
		const char *v = p + klen + 1;
		size_t n = strcspn(v, " ");
		if (n >= size)
			n = size - 1;
		memcpy(out, v, n);
		out[n] = 0;
		return out;
	}
	return NULL;
}
