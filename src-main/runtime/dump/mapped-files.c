/*
 * The files mapped by the pod, after it runs again: FILE and FILEDATA records. A file's mapped
 * ranges go into the image once, however many processes map it; a restore maps the file itself
 * where it is unchanged (same size and hash) and otherwise a copy rebuilt from FILEDATA.
 *
 * An incremental image writes a file's content only if its parent's chain lacks it: a file the
 * parent described (same path, device, inode, size and mtime, ranges within those described
 * there) whose content hashes the same now gets a FILEREF record and no FILEDATA. The hash is
 * computed again by reading the file (never trusted from size and mtime alone: a file rewritten
 * in place keeping them would restore with the old content); reading from the page cache costs
 * far less than writing the content into every image.
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

/* Reads the ranges of fd (path: for messages), hashing them as FILE records carry (u64 offset +
 * bytes of each range in order); with w, writes each piece as FILEDATA of file id too. */
static int read_ranges(int fd, const char *path, const uint64_t (*ranges)[2], int nranges, uint32_t id,
		       struct image_writer *w, uint64_t *hash, uint64_t *written, struct err *e)
{
	struct hash64 h;
	hash64_init(&h, 0);
	size_t chunk = VOS_PAGES_CHUNK;
	uint8_t *buf = xmalloc(chunk);
	int rc = 0;
	for (int i = 0; i < nranges && rc == 0; i++) {
		/* The range's offset, then its bytes: the same hash however the reading is cut up. */
		hash64_update(&h, &ranges[i][0], sizeof ranges[i][0]);
		for (uint64_t off = ranges[i][0]; off < ranges[i][0] + ranges[i][1] && rc == 0;) {
			uint64_t left = ranges[i][0] + ranges[i][1] - off;
			size_t n = left < chunk ? (size_t)left : chunk;
			errno = 0;
			if (pread_full(fd, buf, n, off) < 0) {
				rc = fail(e, "cannot read %s: %s", path, errno ? strerror(errno) : "it got shorter");
				break;
			}
			hash64_update(&h, buf, n);
			if (w) {
				rc = write_filedata(w, id, off, buf, n, e);
				*written += n;
			}
			off += n;
		}
	}
	free(buf);
	*hash = hash64_final(&h);
	return rc;
}

/* The parent's description of f, if it described the same file unchanged on disk (the content
 * still to be compared by hash): same path, device, inode, size, mtime, and f's ranges (merged)
 * each within one of the parent's. */
static const struct file_memo *parent_file(const struct file_memos *parent, const struct mapped_file *f, uint64_t size,
					   int64_t mtime)
{
	for (int i = 0; parent && i < parent->n; i++) {
		const struct file_memo *m = &parent->v[i];
		if (m->dev != f->dev || m->ino != f->ino || m->size != size || m->mtime != mtime || strcmp(m->path, f->path) != 0)
			continue;
		for (int k = 0; k < f->nranges; k++) {
			int within = 0;
			for (int j = 0; j < m->nranges && !within; j++)
				within = f->ranges[k][0] >= m->ranges[j][0] &&
					 f->ranges[k][0] + f->ranges[k][1] <= m->ranges[j][0] + m->ranges[j][1];
			if (!within)
				return NULL;
		}
		return m;
	}
	return NULL;
}

static int write_file_record(struct image_writer *w, uint32_t type, uint32_t id, const struct mapped_file *f, uint32_t kind,
			     uint64_t size, int64_t mtime, uint64_t hash, const uint64_t (*ranges)[2], int nranges, struct err *e)
{
	struct buf b;
	buf_init(&b);
	buf_u32(&b, id);
	buf_u32(&b, kind);
	buf_u64(&b, size);
	buf_i64(&b, mtime);
	buf_u64(&b, hash);
	buf_str(&b, f->path);
	buf_u32(&b, (uint32_t)nranges);
	for (int k = 0; k < nranges; k++) {
		buf_u64(&b, ranges[k][0]);
		buf_u64(&b, ranges[k][1]);
	}
	int rc = iw_record1(w, type, b.data, b.len, e);
	buf_free(&b);
	return rc;
}

static void memo_add(struct file_memos *out, const struct mapped_file *f, uint64_t size, int64_t mtime, uint64_t hash,
		     const uint64_t (*ranges)[2], int nranges)
{
	out->v = xrealloc(out->v, (size_t)(out->n + 1) * sizeof *out->v);
	struct file_memo *m = &out->v[out->n++];
	*m = (struct file_memo){.path = xstrdup(f->path), .dev = f->dev, .ino = f->ino, .size = size, .mtime = mtime, .hash = hash,
				.nranges = nranges};
	m->ranges = xmalloc((size_t)(nranges + 1) * sizeof *m->ranges);
	memcpy(m->ranges, ranges, (size_t)nranges * sizeof *m->ranges);
}

void file_memos_free(struct file_memos *m)
{
	for (int i = 0; i < m->n; i++) {
		free(m->v[i].path);
		free(m->v[i].ranges);
	}
	free(m->v);
	memset(m, 0, sizeof *m);
}

int path_list_load(struct path_list *l, const char *path, struct err *e)
{
	memset(l, 0, sizeof *l);
	size_t len = 0;
	char *text = read_text_file(path, &len);
	if (!text)
		return errno == ENOENT ? 0 : fail(e, "cannot read %s: %s", path, strerror(errno));
	if (len > (1u << 20)) {
		free(text);
		return fail(e, "%s is too long for a list of files", path);
	}
	for (char *line = text; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		if (line[0] == '/') {
			l->v = xrealloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
			l->v[l->n++] = xstrdup(line);
		}
		line = end ? end + 1 : NULL;
	}
	free(text);
	return 0;
}

void path_list_free(struct path_list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

static int path_listed(const struct path_list *l, const char *path)
{
	for (int i = 0; l && i < l->n; i++)
		if (strcmp(l->v[i], path) == 0)
			return 1;
	return 0;
}

/* A regular file: FILEDATA of its mapped ranges read from the file itself and its FILE record;
 * or, where the parent's chain holds the same content, a FILEREF record alone; or, where the
 * move's target has it (there), a FILE record of kind VOS_FILE_THERE alone. */
static int dump_file(struct mem_dump *md, struct mapped_file *f, uint32_t id, struct image_writer *w,
		     const struct file_memos *parent, const struct path_list *there, struct file_memos *out, struct err *e)
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
	uint64_t size = (uint64_t)st.st_size, hash = 0;
	int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	merge_ranges(f, size);
	const struct file_memo *m = parent_file(parent, f, size, mtime);
	int rc = 0;
	if (m && (rc = read_ranges(fd, path, (const uint64_t(*)[2])m->ranges, m->nranges, id, NULL, &hash, NULL, e)) == 0 &&
	    hash == m->hash) {
		close(fd);
		md->parent_files++;
		if (out)
			memo_add(out, f, size, mtime, hash, (const uint64_t(*)[2])m->ranges, m->nranges);
		return write_file_record(w, VOS_REC_FILEREF, id, f, VOS_FILE_ON_DISK, size, mtime, hash, (const uint64_t(*)[2])m->ranges,
					 m->nranges, e);
	}
	int is_there = path_listed(there, path);
	if (rc == 0)
		rc = read_ranges(fd, path, (const uint64_t(*)[2])f->ranges, f->nranges, id, is_there ? NULL : w, &hash,
				 &md->file_bytes, e);
	close(fd);
	if (rc == 0 && out)
		memo_add(out, f, size, mtime, hash, (const uint64_t(*)[2])f->ranges, f->nranges);
	md->there_files += rc == 0 && is_there;
	return rc < 0 ? -1
		      : write_file_record(w, VOS_REC_FILE, id, f, is_there ? VOS_FILE_THERE : VOS_FILE_ON_DISK, size, mtime, hash,
					  (const uint64_t(*)[2])f->ranges, f->nranges, e);
}

int dump_mapped_files(struct mem_dump *md, struct image_writer *w, const struct file_memos *parent, const struct path_list *there,
		      struct file_memos *out, struct err *e)
{
	for (int i = 0; i < md->nfiles; i++) {
		struct mapped_file *f = &md->files[i];
		if (!f->deleted) {
			if (dump_file(md, f, (uint32_t)i, w, parent, there, out, e) < 0)
				return -1;
			continue;
		}
		/* Deleted: the content captured while frozen, always written (no path leads to it). */
		uint64_t size = 0;
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
			md->file_bytes += len;
		}
		if (write_file_record(w, VOS_REC_FILE, (uint32_t)i, f, VOS_FILE_DELETED, size, 0, 0, (const uint64_t(*)[2])f->ranges,
				      f->nranges, e) < 0)
			return -1;
	}
	return 0;
}
