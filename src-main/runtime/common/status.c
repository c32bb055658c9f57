#include "status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Room json_end needs: "}" and the NUL. */
#define CLOSING 2

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is not one:
 * overlong forms, surrogates and code points past U+10FFFF are not. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * The JSON form of the next character of s (n bytes left) in unit[] (at most 7 bytes); returns
 * its length and how many bytes of s it stands for in *used.
 */
static size_t escape_unit(const unsigned char *s, size_t n, char unit[8], size_t *used)
{
	unsigned char b = s[0];
	*used = 1;
	if (b == '"' || b == '\\') {
		unit[0] = '\\';
		unit[1] = (char)b;
		return 2;
	}
	if (b == '\n' || b == '\t' || b == '\r') {
		unit[0] = '\\';
		unit[1] = b == '\n' ? 'n' : b == '\t' ? 't' : 'r';
		return 2;
	}
	if (b < 0x20 || b == 0x7f)
		return (size_t)snprintf(unit, 8, "\\u%04x", b);
	if (b < 0x80) {
		unit[0] = (char)b;
		return 1;
	}
	size_t len = utf8_sequence(s, n);
	if (len == 0) {
		memcpy(unit, "\\ufffd", 6); /* not UTF-8: the replacement character */
		return 6;
	}
	memcpy(unit, s, len);
	*used = len;
	return len;
}

/* s as a JSON string ("..." included) into out when out is not NULL, at most cap bytes; cut
 * between characters. Returns its length. */
static size_t put_string(char *out, size_t cap, const char *s)
{
	if (cap < 2)
		return 0;
	size_t len = 0, n = strlen(s);
	const unsigned char *u = (const unsigned char *)s;
	if (out)
		out[len] = '"';
	len++;
	while (n > 0) {
		char unit[8];
		size_t used, k = escape_unit(u, n, unit, &used);
		if (len + k + 1 > cap)
			break;
		if (out)
			memcpy(out + len, unit, k);
		len += k;
		u += used;
		n -= used;
	}
	if (out)
		out[len] = '"';
	return len + 1;
}

void json_begin(struct json_out *j, char *buf, size_t size)
{
	j->p = buf;
	j->size = size;
	j->len = 0;
	j->fields = 0;
	if (size >= CLOSING + 1)
		j->p[j->len++] = '{';
}

/* Room for more: what is left before the closing bytes. */
static size_t room(const struct json_out *j)
{
	return j->len + CLOSING < j->size ? j->size - j->len - CLOSING : 0;
}

/* ,"key": -- or nothing (0) when it and at least an empty value (want bytes) do not fit. */
static int put_key(struct json_out *j, const char *key, size_t want)
{
	size_t k = (j->fields ? 1 : 0) + put_string(NULL, (size_t)-1, key) + 1;
	if (k + want > room(j))
		return 0;
	if (j->fields)
		j->p[j->len++] = ',';
	j->len += put_string(j->p + j->len, (size_t)-1, key);
	j->p[j->len++] = ':';
	j->fields++;
	return 1;
}

void json_str(struct json_out *j, const char *key, const char *value, size_t cap)
{
	if (!put_key(j, key, 2))
		return;
	size_t r = room(j);
	j->len += put_string(j->p + j->len, cap < r ? cap : r, value);
}

void json_int(struct json_out *j, const char *key, long long value)
{
	char num[24];
	int n = snprintf(num, sizeof num, "%lld", value);
	if (!put_key(j, key, (size_t)n))
		return;
	memcpy(j->p + j->len, num, (size_t)n);
	j->len += (size_t)n;
}

void json_bool(struct json_out *j, const char *key, int value)
{
	const char *v = value ? "true" : "false";
	if (!put_key(j, key, strlen(v)))
		return;
	memcpy(j->p + j->len, v, strlen(v));
	j->len += strlen(v);
}

size_t json_end(struct json_out *j)
{
	if (j->size < CLOSING + 1) {
		if (j->size > 0)
			j->p[0] = 0;
		return 0;
	}
	j->p[j->len++] = '}';
	j->p[j->len] = 0;
	return j->len;
}

/* How much of a JSON line a detail may take: the code and record are short by nature; the
 * path may take a third of what is left; the message has the rest. */
#define CODE_CAP 64
#define RECORD_CAP 128

size_t status_error_json(char *out, size_t size, const char *default_code, const struct err *e)
{
	const char *code = e->code[0] ? e->code : default_code;
	/* NUL-terminated within their arrays, whatever the caller's struct held. */
	char msg[ERR_LEN], path[ERR_PATH_LEN], record[ERR_RECORD_LEN];
	snprintf(msg, sizeof msg, "%.*s", (int)sizeof msg - 1, e->msg);
	snprintf(path, sizeof path, "%.*s", (int)sizeof path - 1, e->path);
	snprintf(record, sizeof record, "%.*s", (int)sizeof record - 1, e->record);
	size_t overhead = 64; /* the keys, separators and braces */
	size_t code_cap = put_string(NULL, CODE_CAP, code);
	size_t record_cap = record[0] ? put_string(NULL, RECORD_CAP, record) : 0;
	size_t left = size > overhead + code_cap + record_cap ? size - overhead - code_cap - record_cap : 0;
	size_t path_cap = path[0] ? put_string(NULL, left / 3, path) : 0;
	size_t message_cap = left > path_cap ? left - path_cap : 0;
	struct json_out j;
	json_begin(&j, out, size);
	json_str(&j, "code", code, code_cap);
	json_str(&j, "message", msg, message_cap);
	if (path[0])
		json_str(&j, "path", path, path_cap);
	if (record[0])
		json_str(&j, "record", record, record_cap);
	return json_end(&j);
}

size_t status_error_reply(char *out, size_t size, const char *default_code, const struct err *e)
{
	if (size < 7) {
		if (size)
			out[0] = 0;
		return 0;
	}
	memcpy(out, "error ", 6);
	return 6 + status_error_json(out + 6, size - 6, default_code, e);
}

size_t status_reply_printf(char *out, size_t size, const char *code, const char *fmt, ...)
{
	struct err e;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof e.msg, fmt, ap);
	va_end(ap);
	e.code[0] = e.path[0] = e.record[0] = 0;
	return status_error_reply(out, size, code, &e);
}

int status_connect(const char *path)
{
	struct sockaddr_un addr;
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof addr.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	/* CLOEXEC: the programs a restore brings back must not inherit the agent's channel (they
	 * do not exec, so the restorer closes it itself: place_fds closes what is not theirs). */
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
		int saved = errno;
		close(s);
		errno = saved;
		return -1;
	}
	return s;
}

int status_send(int fd, const char *line)
{
	size_t n = strlen(line);
	char buf[STATUS_LINE_MAX + 2];
	if (n > STATUS_LINE_MAX)
		n = STATUS_LINE_MAX;
	memcpy(buf, line, n);
	buf[n++] = '\n';
	for (size_t done = 0; done < n;) {
		ssize_t w = send(fd, buf + done, n - done, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}
