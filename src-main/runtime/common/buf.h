/*
 * Building and reading the payloads of image records: little-endian integers, length-prefixed
 * strings and byte runs, in the order the format (docs/image-format.md) lists them. A reader
 * never reads past its end: a short payload sets `bad` and yields zeros, and the caller checks
 * `bad` once at the end.
 */
#ifndef VOS_BUF_H
#define VOS_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len, cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_put(struct buf *b, const void *data, size_t len);
void buf_u8(struct buf *b, uint8_t v);
void buf_u16(struct buf *b, uint16_t v);
void buf_u32(struct buf *b, uint32_t v);
void buf_u64(struct buf *b, uint64_t v);
void buf_i32(struct buf *b, int32_t v);
void buf_i64(struct buf *b, int64_t v);
void buf_str(struct buf *b, const char *s); /* u32 length + bytes, no NUL */
void buf_bytes(struct buf *b, const void *data, uint32_t len); /* u32 length + bytes */

struct reader {
	const uint8_t *p, *end;
	int bad;
};

void reader_init(struct reader *r, const void *data, size_t len);
uint8_t rd_u8(struct reader *r);
uint16_t rd_u16(struct reader *r);
uint32_t rd_u32(struct reader *r);
uint64_t rd_u64(struct reader *r);
int32_t rd_i32(struct reader *r);
int64_t rd_i64(struct reader *r);
/* Copies a string into dst (size bytes, NUL-terminated); too long or short input sets bad. */
void rd_str(struct reader *r, char *dst, size_t size);
/* Points at the next len bytes (no copy); NULL and bad when there are fewer. */
const void *rd_raw(struct reader *r, size_t len);
/* A u32-length-prefixed byte run: returns a pointer and stores its length. */
const void *rd_bytes(struct reader *r, uint32_t *len);
size_t reader_left(const struct reader *r);

#endif
