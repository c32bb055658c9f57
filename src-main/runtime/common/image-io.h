/* Writing and reading image records (include/vos-image.h). */
#ifndef VOS_IMAGE_IO_H
#define VOS_IMAGE_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util.h"
#include "vos-image.h"

struct image_writer {
	int fd;
	uint64_t bytes;   /* everything written to the image so far, by anyone */
	uint32_t records; /* records written so far, by anyone */
	uint32_t chain;   /* CRC32C over the payload CRCs of those records, in order */
};

/* Continues an image others began: counts, bytes and chain of what is already there. */
void iw_init(struct image_writer *w, int fd, uint32_t records, uint64_t bytes, uint32_t chain);
/* Writes one record whose payload is the concatenation of `n` parts. */
int iw_record(struct image_writer *w, uint32_t type, const struct iovec *parts, int n, struct err *e);
int iw_record1(struct image_writer *w, uint32_t type, const void *payload, size_t len, struct err *e);
int iw_trailer(struct image_writer *w, struct err *e);

struct image_reader {
	int fd;
	uint64_t offset; /* of the next record header */
	uint32_t records;
	uint32_t chain;
	const char *name; /* for messages */
};

struct record {
	uint32_t type;
	uint64_t offset; /* of the payload in the file */
	uint64_t length;
	uint32_t index;  /* its place in the image, from 1 (HEADER): for messages */
};

void ir_init(struct image_reader *r, int fd, const char *name);
/* Reads the next record's header: 1 = a record, 0 = clean end of file, -1 = error. */
int ir_next(struct image_reader *r, struct record *rec, struct err *e);
/* Reads (and checks) the payload of the record ir_next returned; the caller frees *out. */
int ir_payload(struct image_reader *r, const struct record *rec, void **out, struct err *e);

/* Reads a record's payload again later by its offset (pread; the CRC is checked). */
int ir_load(int fd, const struct record *rec, void **out, struct err *e);

/* Checks the whole image: every CRC, the trailer, the header first. Fills `err` on failure. */
int image_verify(int fd, const char *name, struct err *e);
/* The same from where `from` stands, its records before that checked already (a received image
 * checked while it arrived); NULL: from the start. */
int image_verify_from(int fd, const char *name, const struct image_reader *from, struct err *e);
/* HEADER's payload: the magic and a format version this vOS reads. */
int image_check_header(const void *payload, uint64_t len, const char *name, struct err *e);

const char *record_type_name(uint32_t type);
/* A failure caused by a damaged or unusable image: code bad_image, and the record involved
 * ("PROCESS #5") when rec is not NULL. Call after fail(); returns -1. */
int err_bad_record(struct err *e, const struct record *rec);

#endif
