#include "image-io.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checksum.h"

void iw_init(struct image_writer *w, int fd, uint32_t records, uint64_t bytes, uint32_t chain)
{
	w->fd = fd;
	w->records = records;
	w->bytes = bytes;
	w->chain = chain;
}

static int write_iov_full(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t done = writev(fd, iov, n > IOV_MAX ? IOV_MAX : n);
		if (done < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)done >= iov->iov_len) {
			done -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + done;
			iov->iov_len -= (size_t)done;
		}
	}
	return 0;
}

int iw_record(struct image_writer *w, uint32_t type, const struct iovec *parts, int n, struct err *e)
{
	uint64_t len = 0;
	uint32_t crc = 0;
	for (int i = 0; i < n; i++) {
		len += parts[i].iov_len;
		crc = crc32c(crc, parts[i].iov_base, parts[i].iov_len);
	}
	struct vos_rec_header h = {.magic = VOS_REC_MAGIC, .type = type, .length = len, .flags = 0};
	h.crc = crc32c(0, &h, 20);
	struct iovec stack_iov[18];
	struct iovec *iov = n + 2 <= (int)ARRAY_LEN(stack_iov) ? stack_iov : xcalloc((size_t)n + 2, sizeof *iov);
	iov[0] = (struct iovec){&h, sizeof h};
	memcpy(iov + 1, parts, (size_t)n * sizeof *iov);
	iov[n + 1] = (struct iovec){&crc, sizeof crc};
	int rc = write_iov_full(w->fd, iov, n + 2);
	int saved = errno;
	if (iov != stack_iov)
		free(iov);
	if (rc < 0) {
		if (saved == ENOSPC)
			return fail(e, "the disk is full (writing the image)");
		if (saved == EPIPE)
			return fail(e, "the image's reader went away");
		return fail(e, "cannot write the image: %s", strerror(saved));
	}
	w->bytes += sizeof h + len + sizeof crc;
	w->records++;
	w->chain = crc32c(w->chain, &crc, sizeof crc);
	return 0;
}

int iw_record1(struct image_writer *w, uint32_t type, const void *payload, size_t len, struct err *e)
{
	struct iovec part = {(void *)payload, len};
	return iw_record(w, type, &part, 1, e);
}

int iw_trailer(struct image_writer *w, struct err *e)
{
	struct {
		uint32_t records;
		uint32_t chain;
		uint64_t bytes;
	} t = {w->records, w->chain, w->bytes};
	return iw_record1(w, VOS_REC_TRAILER, &t, sizeof t, e);
}

void ir_init(struct image_reader *r, int fd, const char *name)
{
	r->fd = fd;
	r->offset = 0;
	r->records = 0;
	r->chain = 0;
	r->name = name;
}

const char *record_type_name(uint32_t type)
{
	switch (type) {
	case VOS_REC_HEADER: return "header";
	case VOS_REC_SESSION: return "session";
	case VOS_REC_POD: return "pod";
	case VOS_REC_OBJECTS: return "objects";
	case VOS_REC_PROCESS: return "process";
	case VOS_REC_PAGES: return "pages";
	case VOS_REC_OBJDATA: return "object data";
	case VOS_REC_FILE: return "file";
	case VOS_REC_FILEDATA: return "file data";
	case VOS_REC_FILEREF: return "file in the parent";
	case VOS_REC_LOCKS: return "locks";
	case VOS_REC_SYSV_IPC: return "SysV IPC";
	case VOS_REC_PRECOPY: return "pages sent ahead";
	case VOS_REC_CHAIN: return "chain";
	case VOS_REC_TRAILER: return "trailer";
	default: return "unknown";
	}
}

/* A record kind as docs/image-format.md names it. */
static const char *record_kind(uint32_t type)
{
	switch (type) {
	case VOS_REC_HEADER: return "HEADER";
	case VOS_REC_SESSION: return "SESSION";
	case VOS_REC_POD: return "POD";
	case VOS_REC_OBJECTS: return "OBJECTS";
	case VOS_REC_PROCESS: return "PROCESS";
	case VOS_REC_PAGES: return "PAGES";
	case VOS_REC_OBJDATA: return "OBJDATA";
	case VOS_REC_FILE: return "FILE";
	case VOS_REC_FILEDATA: return "FILEDATA";
	case VOS_REC_FILEREF: return "FILEREF";
	case VOS_REC_LOCKS: return "LOCKS";
	case VOS_REC_SYSV_IPC: return "SYSV_IPC";
	case VOS_REC_PRECOPY: return "PRECOPY";
	case VOS_REC_CHAIN: return "CHAIN";
	case VOS_REC_TRAILER: return "TRAILER";
	default: return "record";
	}
}

int err_bad_record(struct err *e, const struct record *rec)
{
	snprintf(e->code, sizeof e->code, "bad_image");
	if (rec && rec->index)
		err_record(e, "%s #%u", record_kind(rec->type), rec->index);
	return -1;
}

/* A damaged image whose failing record is known only by its place. */
static int bad_at(struct err *e, uint32_t index)
{
	struct record rec = {.type = 0, .index = index};
	return err_bad_record(e, &rec);
}

int ir_next(struct image_reader *r, struct record *rec, struct err *e)
{
	struct vos_rec_header h;
	ssize_t got = 0;
	while (got < (ssize_t)sizeof h) {
		ssize_t n = pread(r->fd, (char *)&h + got, sizeof h - (size_t)got, (off_t)(r->offset + (uint64_t)got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(e, "%s: cannot read: %s", r->name, strerror(errno));
		}
		if (n == 0)
			break;
		got += n;
	}
	if (got == 0)
		return 0;
	if (r->offset == 0 && (got < (ssize_t)sizeof h || h.magic != VOS_REC_MAGIC)) {
		fail(e, "%s is not a vOS image", r->name);
		return err_bad_record(e, NULL);
	}
	if (got < (ssize_t)sizeof h) {
		fail(e, "%s is truncated: it ends inside a record header at byte %llu", r->name, (unsigned long long)r->offset);
		return bad_at(e, r->records + 1);
	}
	if (h.magic != VOS_REC_MAGIC || crc32c(0, &h, 20) != h.crc) {
		fail(e, "%s is damaged: the record header at byte %llu is not valid", r->name, (unsigned long long)r->offset);
		return bad_at(e, r->records + 1);
	}
	if (h.length > VOS_MAX_RECORD) {
		fail(e, "%s is damaged: a %s record at byte %llu claims %llu bytes", r->name, record_type_name(h.type),
		     (unsigned long long)r->offset, (unsigned long long)h.length);
		struct record bad = {.type = h.type, .index = r->records + 1};
		return err_bad_record(e, &bad);
	}
	rec->type = h.type;
	rec->offset = r->offset + sizeof h;
	rec->length = h.length;
	r->offset = rec->offset + h.length + 4;
	r->records++;
	rec->index = r->records;
	return 1;
}

static int load_checked(int fd, const struct record *rec, void **out, uint32_t *crc_out, const char *name, struct err *e)
{
	size_t len = (size_t)rec->length;
	char *p = xmalloc(len + 4);
	if (pread_full(fd, p, len + 4, rec->offset) < 0) {
		free(p);
		if (errno == 0) {
			fail(e, "%s is truncated: it ends inside the %s record that starts at byte %llu", name,
			     record_type_name(rec->type), (unsigned long long)(rec->offset - VOS_REC_HEADER_SIZE));
			return err_bad_record(e, rec);
		}
		return fail(e, "%s: cannot read: %s", name, strerror(errno));
	}
	uint32_t stored;
	memcpy(&stored, p + len, 4);
	uint32_t crc = crc32c(0, p, len);
	if (crc != stored) {
		free(p);
		fail(e, "%s is damaged: the %s record at byte %llu fails its checksum", name, record_type_name(rec->type),
		     (unsigned long long)(rec->offset - VOS_REC_HEADER_SIZE));
		return err_bad_record(e, rec);
	}
	*out = p;
	if (crc_out)
		*crc_out = crc;
	return 0;
}

int ir_payload(struct image_reader *r, const struct record *rec, void **out, struct err *e)
{
	uint32_t crc;
	if (load_checked(r->fd, rec, out, &crc, r->name, e) < 0)
		return -1;
	r->chain = crc32c(r->chain, &crc, sizeof crc);
	return 0;
}

int ir_load(int fd, const struct record *rec, void **out, struct err *e)
{
	return load_checked(fd, rec, out, NULL, "the image", e);
}

/* The CRC of a record's payload, read in pieces through one reusable buffer (no allocation
 * per record: a large image would otherwise cost as many page faults as its size). */
static int stream_crc(int fd, const struct record *rec, uint8_t *buf, size_t size, uint32_t *crc_out, const char *name,
		      struct err *e)
{
	uint32_t crc = 0;
	for (uint64_t done = 0; done < rec->length;) {
		size_t n = rec->length - done < size ? (size_t)(rec->length - done) : size;
		if (pread_full(fd, buf, n, rec->offset + done) < 0)
			goto short_read;
		crc = crc32c(crc, buf, n);
		done += n;
	}
	uint32_t stored;
	if (pread_full(fd, &stored, 4, rec->offset + rec->length) < 0)
		goto short_read;
	if (crc != stored) {
		fail(e, "%s is damaged: the %s record at byte %llu fails its checksum", name, record_type_name(rec->type),
		     (unsigned long long)(rec->offset - VOS_REC_HEADER_SIZE));
		return err_bad_record(e, rec);
	}
	*crc_out = crc;
	return 0;
short_read:
	if (errno == 0) {
		fail(e, "%s is truncated: it ends inside the %s record that starts at byte %llu", name,
		     record_type_name(rec->type), (unsigned long long)(rec->offset - VOS_REC_HEADER_SIZE));
		return err_bad_record(e, rec);
	}
	return fail(e, "%s: cannot read: %s", name, strerror(errno));
}

int image_check_header(const void *payload, uint64_t len, const char *name, struct err *e)
{
	if (len < 20 || memcmp(payload, VOS_IMAGE_MAGIC, sizeof VOS_IMAGE_MAGIC) != 0) {
		fail(e, "%s is not a vOS image", name);
		return err_bad_record(e, NULL);
	}
	uint32_t version;
	memcpy(&version, (const char *)payload + 16, 4);
	if (version < VOS_IMAGE_VERSION_OLDEST || version > VOS_IMAGE_VERSION) {
		fail(e, "%s has image format %u; this vOS reads formats %u to %u", name, version, VOS_IMAGE_VERSION_OLDEST,
		     VOS_IMAGE_VERSION);
		return err_bad_record(e, NULL);
	}
	return 0;
}

int image_verify(int fd, const char *name, struct err *e)
{
	return image_verify_from(fd, name, NULL, e);
}

int image_verify_from(int fd, const char *name, const struct image_reader *from, struct err *e)
{
	struct image_reader r;
	ir_init(&r, fd, name);
	if (from) {
		r.offset = from->offset;
		r.records = from->records;
		r.chain = from->chain;
	}
	struct record rec;
	int first = from == NULL;
	for (;;) {
		uint64_t at = r.offset;
		uint32_t records_before = r.records;
		uint32_t chain_before = r.chain;
		int rc = ir_next(&r, &rec, e);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			fail(e, "%s is truncated: it ends after %llu bytes without its trailer", name, (unsigned long long)at);
			return err_bad_record(e, NULL);
		}
		if (first && rec.type != VOS_REC_HEADER) {
			fail(e, "%s is not a vOS image (it does not start with an image header)", name);
			return err_bad_record(e, NULL);
		}
		first = 0;
		if (rec.type != VOS_REC_HEADER && rec.type != VOS_REC_TRAILER) {
			static uint8_t buf[1 << 20]; /* verify runs once per process: a fixed scratch buffer */
			uint32_t crc;
			if (stream_crc(fd, &rec, buf, sizeof buf, &crc, name, e) < 0)
				return -1;
			r.chain = crc32c(r.chain, &crc, sizeof crc);
			continue;
		}
		void *payload;
		if (ir_payload(&r, &rec, &payload, e) < 0)
			return -1;
		if (rec.type == VOS_REC_HEADER && image_check_header(payload, rec.length, name, e) < 0) {
			free(payload);
			return -1;
		}
		if (rec.type == VOS_REC_TRAILER) {
			struct {
				uint32_t records;
				uint32_t chain;
				uint64_t bytes;
			} t;
			int ok = rec.length == sizeof t;
			if (ok)
				memcpy(&t, payload, sizeof t);
			free(payload);
			if (!ok || t.records != records_before || t.bytes != at || t.chain != chain_before) {
				fail(e, "%s is damaged: its trailer does not match its records", name);
				return err_bad_record(e, &rec);
			}
			char extra;
			if (pread(fd, &extra, 1, (off_t)r.offset) > 0) {
				fail(e, "%s has data after its trailer", name);
				return err_bad_record(e, NULL);
			}
			return 0;
		}
		free(payload);
	}
}
