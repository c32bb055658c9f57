/* Small helpers shared by vos-init's parts: errors, whole reads and writes, /proc parsing. */
#ifndef VOS_UTIL_H
#define VOS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The page size vos-init and its images count in (x86-64's). vos-init refuses to start on a
 * machine whose pages are another size (util.c). */
#define PAGE 4096ull

/*
 * Errors travel as a message in a caller's buffer: every function that can fail returns -1 and
 * fills `err` with what went wrong, in words a user can act on.
 */
#define ERR_LEN 512
struct err {
	char msg[ERR_LEN];
};

int fail(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds context in front of an existing message: "while X: <old message>". */
int fail_ctx(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "vos-init: <message>" to stderr and exits with status 127. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* write/read the whole buffer, retrying on EINTR and short counts. 0 on success, -1 + errno. */
int write_full(int fd, const void *buf, size_t len);
int read_full(int fd, void *buf, size_t len); /* -1 with errno 0 at a clean end of file */
int pread_full(int fd, void *buf, size_t len, uint64_t off);

/* The whole file into a NUL-terminated malloc'd buffer (for /proc files); NULL + errno. */
char *read_text_file(const char *path, size_t *len);
ssize_t read_link(const char *path, char *buf, size_t size); /* NUL-terminated; -1 + errno */

int64_t now_ms(void);
int64_t now_monotonic_us(void);

#endif
