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
 * fills `err` with what went wrong, in words a user can act on. Where the cause is known the
 * error also says what kind of failure it is (`code`: one of the API's error codes in
 * src-main/api/errors.ts, e.g. "bad_image"; empty: the failing operation's own code), the file
 * involved (`path`) and the image record involved (`record`: "PROCESS #5", the record's kind
 * and its place in the image). They reach the agent as a status value (status.h).
 */
#define ERR_LEN 512
#define ERR_CODE_LEN 32
#define ERR_PATH_LEN 1024
#define ERR_RECORD_LEN 48
struct err {
	char msg[ERR_LEN];
	char code[ERR_CODE_LEN];
	char path[ERR_PATH_LEN];
	char record[ERR_RECORD_LEN];
};

/* A new failure: the message, and no code, path or record (those of an earlier one are stale). */
int fail(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds context in front of an existing message: "while X: <old message>"; code, path and
 * record stay. */
int fail_ctx(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* fail() with the failure's code (an API error code: "bad_image", "timeout", ...). */
int fail_code(struct err *e, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* After fail(): the file involved. Returns -1 (so `return err_path(e, path);` ends a failure). */
int err_path(struct err *e, const char *path);
/* After fail(): the image record involved, e.g. err_record(e, "PROCESS #%u", n). Returns -1. */
int err_record(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "vos-init: <message>" to stderr and exits with status 127. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* write/read the whole buffer, retrying on EINTR and short counts. 0 on success, -1 + errno. */
int write_full(int fd, const void *buf, size_t len);
/* Writes `text` whole into the existing file `path` (a /proc file: uid_map, timens_offsets...);
 * -1 with errno from open or write. */
int write_text_to(const char *path, const char *text);
int read_full(int fd, void *buf, size_t len); /* -1 with errno 0 at a clean end of file */
int pread_full(int fd, void *buf, size_t len, uint64_t off);

/* The whole file into a NUL-terminated malloc'd buffer (for /proc files); NULL + errno. */
char *read_text_file(const char *path, size_t *len);
ssize_t read_link(const char *path, char *buf, size_t size); /* NUL-terminated; -1 + errno */

int64_t now_ms(void);
int64_t now_monotonic_us(void);

#endif
