/*
 * Files the image maps (programs, libraries): used from this machine when they are the same
 * files (same path, size and content hash over the mapped ranges), otherwise recreated from the
 * content the image carries (or, for a FILEREF of an incremental image, a parent image carries),
 * in a cache directory (content-addressed, so a second restore of the same program reuses them).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/checksum.h"
#include "restore.h"

/* Reading a file to hash it: one buffer for every file of a restore (a fresh one per file cost
 * its page faults each time, a few milliseconds a library in a virtual machine). */
#define HASH_CHUNK (256u << 10)

/* This machine's copy, open, if it is the file the image mapped: the same size and the same hash
 * as dump_mapped_files computes (over this very descriptor, which is then the one mapped); -1 if
 * not. */
static int open_if_matches(const struct img_file *f, uint8_t *buf)
{
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != f->size) {
		close(fd);
		return -1;
	}
	struct hash64 h;
	hash64_init(&h, 0);
	int ok = 1;
	for (uint32_t i = 0; i < f->nranges && ok; i++) {
		hash64_update(&h, &f->ranges[i][0], sizeof f->ranges[i][0]);
		for (uint64_t off = f->ranges[i][0]; off < f->ranges[i][0] + f->ranges[i][1];) {
			uint64_t left = f->ranges[i][0] + f->ranges[i][1] - off;
			size_t n = left < HASH_CHUNK ? (size_t)left : HASH_CHUNK;
			if (pread_full(fd, buf, n, off) < 0) {
				ok = 0;
				break;
			}
			hash64_update(&h, buf, n);
			off += n;
		}
	}
	if (ok && hash64_final(&h) == f->hash)
		return fd;
	close(fd);
	return -1;
}

/* The content from FILEDATA records: the file's own, or (FILEREF) those of the parent image
 * chain_load linked it to. */
static int write_content(struct restore_ctx *c, const struct img_file *f, int fd, struct err *e)
{
	if (ftruncate(fd, (off_t)f->size) < 0) {
		fail(e, "cannot size the copy of %s: %s", f->path, strerror(errno));
		return err_path(e, f->path);
	}
	const struct img_file *src = f->content ? f->content : f;
	int image_fd = f->content_img ? f->content_img->fd : c->img.fd;
	if (f->in_parent && !f->content)
		return fail_code(e, "bad_image", "%s takes the content of %s from a parent image that was not given", c->img.name, f->path);
	for (int i = 0; i < src->ndata; i++) {
		void *payload;
		if (ir_load(image_fd, &src->data[i], &payload, e) < 0)
			return -1;
		uint64_t off;
		memcpy(&off, (char *)payload + 8, 8);
		size_t len = (size_t)src->data[i].length - 16;
		int rc = (pwrite(fd, (char *)payload + 16, len, (off_t)off) == (ssize_t)len) ? 0 : -1;
		free(payload);
		if (rc < 0) {
			fail(e, "cannot write the copy of %s: %s", f->path, strerror(errno));
			return err_path(e, f->path);
		}
	}
	return 0;
}

static int from_cache(struct restore_ctx *c, const struct img_file *f, struct err *e)
{
	const char *base = strrchr(f->path, '/');
	base = base ? base + 1 : f->path;
	char name[4200], tmp[4300];
	snprintf(name, sizeof name, "%s/%016" PRIx64 "-%.64s", c->cache_dir, f->hash, base);
	int fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	mkdir(c->cache_dir, 0700);
	snprintf(tmp, sizeof tmp, "%s.%d.tmp", name, (int)getpid());
	int w = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0500);
	if (w < 0) {
		fail(e, "cannot create %s: %s", tmp, strerror(errno));
		return err_path(e, tmp);
	}
	if (write_content(c, f, w, e) < 0 || fsync(w) < 0) {
		close(w);
		unlink(tmp);
		return -1;
	}
	close(w);
	if (rename(tmp, name) < 0) {
		unlink(tmp);
		fail(e, "cannot store %s: %s", name, strerror(errno));
		return err_path(e, name);
	}
	fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail(e, "cannot open %s: %s", name, strerror(errno));
		return err_path(e, name);
	}
	return fd;
}

static int unnamed_copy(struct restore_ctx *c, const struct img_file *f, struct err *e)
{
	int fd = open(c->cache_dir ? c->cache_dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0500);
	if (fd < 0)
		fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0500);
	if (fd < 0) {
		fail(e, "cannot create a copy of %s: %s", f->path, strerror(errno));
		return err_path(e, f->path);
	}
	if (write_content(c, f, fd, e) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int open_mapped_files(struct restore_ctx *c, struct err *e)
{
	struct image *img = &c->img;
	c->file_fd = xmalloc((size_t)(img->nfiles + 1) * sizeof *c->file_fd);
	uint8_t *buf = xmalloc(HASH_CHUNK);
	int rc = 0;
	for (int i = 0; i < img->nfiles && rc == 0; i++) {
		struct img_file *f = &img->files[i];
		c->file_fd[i] = -1;
		if (!f->present) {
			rc = fail(e, "%s is damaged: mapped file %d has no description", img->name, i);
			break;
		}
		if (f->kind != VOS_FILE_DELETED && (c->file_fd[i] = open_if_matches(f, buf)) >= 0)
			continue;
		if (f->kind == VOS_FILE_THERE) {
			fail_code(e, "restore_failed",
				  "%s is not here as it was there (the move found its size and time the same, but its content differs), "
				  "and the image does not carry it", f->path);
			rc = err_path(e, f->path);
		} else if (f->kind == VOS_FILE_ON_DISK && c->cache_dir)
			c->file_fd[i] = from_cache(c, f, e);
		else
			c->file_fd[i] = unnamed_copy(c, f, e);
		if (rc == 0 && c->file_fd[i] < 0)
			rc = -1;
	}
	free(buf);
	return rc;
}
