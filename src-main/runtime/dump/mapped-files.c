/*
 * The files mapped by the pod, after it runs again: FILE and FILEDATA records. A file's mapped
 * ranges go into the image once, however many processes map it; a restore maps the file itself
 * where it is unchanged (same size and hash) and otherwise a copy rebuilt from FILEDATA.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/checksum.h"
#include "dump.h"
#include "vos-image.h"

static int cmp_range(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	return (x[0] > y[0]) - (x[0] < y[0]);
}

static void merge_ranges(struct mapped_file *f, uint64_t file_size)
{
	qsort(f->ranges, (size_t)f->nranges, sizeof *f->ranges, cmp_range);
	int n = 0;
	for (int i = 0; i < f->nranges; i++) {
		uint64_t off = f->ranges[i][0], end = off + f->ranges[i][1];
		if (end > file_size)
			end = file_size; /* a mapping may reach past the end of the file */
		if (off >= end)
			continue;
		if (n > 0 && off <= f->ranges[n - 1][0] + f->ranges[n - 1][1]) {
			uint64_t prev_end = f->ranges[n - 1][0] + f->ranges[n - 1][1];
			if (end > prev_end)
				f->ranges[n - 1][1] = end - f->ranges[n - 1][0];
		} else {
			f->ranges[n][0] = off;
			f->ranges[n][1] = end - off;
			n++;
		}
	}
	f->nranges = n;
}

static int write_filedata(struct image_writer *w, uint32_t id, uint64_t off, const void *data, size_t len,
			  struct err *e)
{
	struct {
		uint32_t id, pad;
		uint64_t offset;
	} head = {id, 0, off};
	struct iovec parts[2] = {{&head, sizeof head}, {(void *)data, len}};
	return iw_record(w, VOS_REC_FILEDATA, parts, 2, e);
}

/* A regular file: content of its mapped ranges, read from the file itself. */
static int dump_file_content(struct mapped_file *f, uint32_t id, struct image_writer *w, struct hash64 *h,
			     uint64_t *size, int64_t *mtime, struct err *e)
{
	const char *path = f->path;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return fail(e, "cannot read %s, mapped by the pod: %s", path, strerror(errno));
	}
	if (st.st_dev != f->dev || st.st_ino != f->ino) {
		close(fd);
		return fail(e, "%s changed while the checkpoint was taken (it was replaced on disk)", path);
	}
	*size = (uint64_t)st.st_size;
	*mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	merge_ranges(f, *size);
	size_t chunk = VOS_PAGES_CHUNK;
	uint8_t *buf = xmalloc(chunk);
	int rc = 0;
	for (int i = 0; i < f->nranges && rc == 0; i++) {
		for (uint64_t off = f->ranges[i][0]; off < f->ranges[i][0] + f->ranges[i][1] && rc == 0;) {
			uint64_t left = f->ranges[i][0] + f->ranges[i][1] - off;
			size_t n = left < chunk ? (size_t)left : chunk;
			if (pread_full(fd, buf, n, off) < 0) {
				rc = fail(e, "cannot read %s: %s", path, errno ? strerror(errno) : "it got shorter");
				break;
			}
			hash64_update(h, &off, sizeof off);
			hash64_update(h, buf, n);
			rc = write_filedata(w, id, off, buf, n, e);
			off += n;
		}
	}
	free(buf);
	close(fd);
	return rc;
}

int dump_mapped_files(struct mem_dump *md, struct image_writer *w, struct err *e)
{
	for (int i = 0; i < md->nfiles; i++) {
		struct mapped_file *f = &md->files[i];
		struct hash64 h;
		hash64_init(&h, 0);
		uint64_t size = 0;
		int64_t mtime = 0;
		if (f->deleted) {
			struct reader r;
			reader_init(&r, f->captured.data, f->captured.len);
			while (reader_left(&r) > 0) {
				uint64_t off = rd_u64(&r);
				uint32_t len;
				const void *data = rd_bytes(&r, &len);
				if (r.bad)
					break;
				if (off + len > size)
					size = off + len;
				if (write_filedata(w, (uint32_t)i, off, data, len, e) < 0)
					return -1;
			}
		} else if (dump_file_content(f, (uint32_t)i, w, &h, &size, &mtime, e) < 0) {
			return -1;
		}
		struct buf b;
		buf_init(&b);
		buf_u32(&b, (uint32_t)i);
		buf_u32(&b, (uint32_t)f->deleted);
		buf_u64(&b, size);
		buf_i64(&b, mtime);
		buf_u64(&b, f->deleted ? 0 : hash64_final(&h));
		buf_str(&b, f->path);
		buf_u32(&b, (uint32_t)f->nranges);
		for (int k = 0; k < f->nranges; k++) {
			buf_u64(&b, f->ranges[k][0]);
			buf_u64(&b, f->ranges[k][1]);
		}
		int rc = iw_record1(w, VOS_REC_FILE, b.data, b.len, e);
		buf_free(&b);
		if (rc < 0)
			return -1;
	}
	return 0;
}
