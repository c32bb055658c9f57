/*
 * Status values: how vos-init tells the agent how an operation ended, as one line of JSON that
 * the agent decodes into a VosError (agent/runtime/status-line.ts) instead of reading words off
 * a screen. A failure is
 *
 *     {"code":"bad_image","message":"...","path":"...","record":"PROCESS #5"}
 *
 * (path and record only when known); a restore's success is {"ok":true,...} (restore.c).
 * Strings are escaped for JSON (quotes, backslashes, control characters) and bytes that are not
 * UTF-8 become U+FFFD, so any message is safe to send. A line never exceeds the buffer it is
 * written into: strings are cut (between characters), never the syntax.
 */
#ifndef VOS_STATUS_H
#define VOS_STATUS_H

#include <stddef.h>

#include "util.h"

/* The smallest buffer a status line may be written into. */
#define STATUS_MIN 256
/* What fits in a control-socket line with "error " in front (init/control.h). */
#define STATUS_LINE_MAX 4000

/* A JSON object written into a fixed buffer, field by field. */
struct json_out {
	char *p;
	size_t size; /* of p, at least STATUS_MIN */
	size_t len;
	int fields;
};

void json_begin(struct json_out *j, char *buf, size_t size);
/* "key":"value", the value escaped and cut to at most `cap` bytes of JSON (quotes included).
 * Leaves room for json_end. */
void json_str(struct json_out *j, const char *key, const char *value, size_t cap);
void json_int(struct json_out *j, const char *key, long long value);
void json_bool(struct json_out *j, const char *key, int value);
/* Closes the object; returns its length (the buffer is NUL-terminated). */
size_t json_end(struct json_out *j);

/* A failure as a status line: e's code, or default_code when it has none. */
size_t status_error_json(char *out, size_t size, const char *default_code, const struct err *e);
/* A control-socket reply for a failure: "error " and the status line. */
size_t status_error_reply(char *out, size_t size, const char *default_code, const struct err *e);
/* The same for a failure known only by its words and code. */
size_t status_reply_printf(char *out, size_t size, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Connects to the agent's status socket at path (CLOEXEC). -1 + errno. */
int status_connect(const char *path);
/* Sends one status line (a '\n' is added) on fd. 0, or -1 + errno. */
int status_send(int fd, const char *line);

#endif
