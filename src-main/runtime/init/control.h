/*
 * The pod's control socket: the agent (or its `vos-init checkpoint` helper) talks to the pod
 * init over a Unix socket at a path in the agent's private state directory. One request per
 * connection: a line of text ("checkpoint records=1 bytes=... stop=1"), optionally with one
 * file descriptor attached (SCM_RIGHTS: where the image goes); one reply line: "ok key=value
 * ..." or "error {status}" (a status line, common/status.h: code, message, path, record).
 */
#ifndef VOS_CONTROL_SOCKET_H
#define VOS_CONTROL_SOCKET_H

#include <stddef.h>

#define CONTROL_LINE_MAX 4096

/* Binds and listens at path (replacing a stale socket); the socket is 0600. -1 + errno. */
int control_listen(const char *path);
/* Connects to path. -1 + errno. */
int control_connect(const char *path);
/* Sends a line (a '\n' is added) and, when fd >= 0, the descriptor with it. */
int control_send(int sock, const char *line, int fd);
/* Receives one line (without '\n') into buf and the descriptor sent with it (*fd, or -1). */
int control_recv(int sock, char *buf, size_t size, int *fd, int timeout_ms);
/* Waits up to timeout_ms for a requester on listen_fd and reads its request line (and fd).
 * Returns the connection (the caller replies and closes it), or -1 (timeout, or a requester
 * that said nothing in time; errno set). */
int control_accept_request(int listen_fd, char *line, size_t size, int *fd, int timeout_ms);
/* The value of key=VALUE in a request line (copied into out), or NULL. Values have no spaces. */
const char *control_arg(const char *line, const char *key, char *out, size_t size);

#endif
