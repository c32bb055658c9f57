#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void clear_details(struct err *e)
{
	e->code[0] = 0;
	e->path[0] = 0;
	e->record[0] = 0;
}

int fail(struct err *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	clear_details(e);
	return -1;
}

int fail_code(struct err *e, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	clear_details(e);
	snprintf(e->code, sizeof e->code, "%s", code);
	return -1;
}

int err_path(struct err *e, const char *path)
{
	snprintf(e->path, sizeof e->path, "%s", path);
	return -1;
}

int err_record(struct err *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->record, sizeof e->record, fmt, ap);
	va_end(ap);
	return -1;
}

int fail_ctx(struct err *e, const char *fmt, ...)
{
	char ctx[ERR_LEN], old[ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof ctx, fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof old);
	/* Both parts fit only together, if at all: cut the old message, not the context. */
	size_t n = strlen(ctx);
	if (n > sizeof e->msg - 3)
		n = sizeof e->msg - 3;
	memcpy(e->msg, ctx, n);
	memcpy(e->msg + n, ": ", 2);
	size_t room = sizeof e->msg - n - 3;
	size_t m = strnlen(old, room);
	memcpy(e->msg + n + 2, old, m);
	e->msg[n + 2 + m] = 0;
	return -1;
}

void die(const char *fmt, ...)
{
	va_list ap;
	fputs("vos-init: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(127);
}

/*
 * Every part of vos-init counts memory in PAGE-sized pages, and its images record them so: on a
 * machine with pages of another size nothing it did would be right. It stops before any
 * subcommand runs (a constructor: this concerns them all, and needs nothing of main's).
 */
__attribute__((constructor)) static void check_page_size(void)
{
	long size = sysconf(_SC_PAGESIZE);
	if (size != (long)PAGE)
		die("this machine's memory pages are %ld bytes; vOS works with %llu-byte pages only", size, PAGE);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		die("out of memory");
	return p;
}

int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* read() (off < 0) or pread() until len bytes came; -1 with errno 0 at an early end of file. */
static int read_all(int fd, void *buf, size_t len, int64_t off)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = off < 0 ? read(fd, p, len) : pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = 0;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
	return 0;
}

int read_full(int fd, void *buf, size_t len)
{
	return read_all(fd, buf, len, -1);
}

int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	return read_all(fd, buf, len, (int64_t)off);
}

char *read_text_file(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	if (len_out)
		*len_out = len;
	return buf;
}

ssize_t read_link(const char *path, char *buf, size_t size)
{
	ssize_t n = readlink(path, buf, size - 1);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return n;
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_monotonic_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int write_text_to(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = write_full(fd, text, strlen(text));
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}
