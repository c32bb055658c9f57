#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
}

void buf_put(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
}

/* x86_64 is little-endian, the image's byte order: values are stored as they are in memory. */
void buf_u8(struct buf *b, uint8_t v) { buf_put(b, &v, 1); }
void buf_u16(struct buf *b, uint16_t v) { buf_put(b, &v, 2); }
void buf_u32(struct buf *b, uint32_t v) { buf_put(b, &v, 4); }
void buf_u64(struct buf *b, uint64_t v) { buf_put(b, &v, 8); }
void buf_i32(struct buf *b, int32_t v) { buf_put(b, &v, 4); }
void buf_i64(struct buf *b, int64_t v) { buf_put(b, &v, 8); }

void buf_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	buf_u32(b, (uint32_t)n);
	buf_put(b, s, n);
}

void buf_bytes(struct buf *b, const void *data, uint32_t len)
{
	buf_u32(b, len);
	buf_put(b, data, len);
}

void reader_init(struct reader *r, const void *data, size_t len)
{
	r->p = data;
	r->end = r->p + len;
	r->bad = 0;
}

const void *rd_raw(struct reader *r, size_t len)
{
	if (r->bad || (size_t)(r->end - r->p) < len) {
		r->bad = 1;
		return NULL;
	}
	const void *p = r->p;
	r->p += len;
	return p;
}

#define READ_INT(type, name)                                                                \
	type name(struct reader *r)                                                         \
	{                                                                                   \
		type v = 0;                                                                 \
		const void *p = rd_raw(r, sizeof v);                                        \
		if (p)                                                                      \
			memcpy(&v, p, sizeof v);                                            \
		return v;                                                                   \
	}

READ_INT(uint8_t, rd_u8)
READ_INT(uint16_t, rd_u16)
READ_INT(uint32_t, rd_u32)
READ_INT(uint64_t, rd_u64)
READ_INT(int32_t, rd_i32)
READ_INT(int64_t, rd_i64)

void rd_str(struct reader *r, char *dst, size_t size)
{
	uint32_t n = rd_u32(r);
	const char *p = rd_raw(r, n);
	if (!p || n >= size) {
		r->bad = 1;
		if (size)
			dst[0] = 0;
		return;
	}
	memcpy(dst, p, n);
	dst[n] = 0;
}

const void *rd_bytes(struct reader *r, uint32_t *len)
{
	*len = rd_u32(r);
	const void *p = rd_raw(r, *len);
	if (!p)
		*len = 0;
	return p;
}

size_t reader_left(const struct reader *r)
{
	return r->bad ? 0 : (size_t)(r->end - r->p);
}
