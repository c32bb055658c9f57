/*
 * An incremental image's parents (docs/image-format.md, CHAIN): each one checked whole (every
 * checksum, the trailer, the full reading a restore does) and checked to be the very image the
 * one above it names (its CHAIN id), down to a whole image. A missing, damaged or other image
 * refuses the restore, naming it; so does a parent lacking a mapped file's content that an
 * image above it refers to (FILEREF).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/checksum.h"
#include "../common/u64map.h"
#include "image.h"

/* The parent `img` needs, as text, for messages. */
static void wanted(const struct image *img, char out[2 * VOS_CHAIN_ID + 1])
{
	chain_id_text(img->chain.parent, out);
}

/* What identifies a mapped file's content across images: path, size, hash and ranges, hashed
 * into a map key (never 0 or 1, u64map's reserved keys). Equal keys are compared in full. */
static uint64_t file_key(const struct img_file *f)
{
	struct hash64 h;
	hash64_init(&h, 0x766f7346494c4552ull);
	hash64_update(&h, &f->hash, sizeof f->hash);
	hash64_update(&h, &f->size, sizeof f->size);
	hash64_update(&h, f->path, strlen(f->path));
	hash64_update(&h, f->ranges, (size_t)f->nranges * sizeof *f->ranges);
	uint64_t k = hash64_final(&h);
	return k < 2 ? k + 2 : k;
}

static int same_content(const struct img_file *a, const struct img_file *b)
{
	return b->kind == VOS_FILE_ON_DISK && a->hash == b->hash && a->size == b->size && a->nranges == b->nranges &&
	       strcmp(a->path, b->path) == 0 && memcmp(a->ranges, b->ranges, (size_t)a->nranges * sizeof *a->ranges) == 0;
}

/* Each FILEREF of `above` to the file of `below` (its parent) with the same path, size, hash and
 * ranges, and through it to the image whose FILEDATA hold the content (below's own, or further
 * down if below refers on: linked already, the chain is linked from the bottom). */
static int link_files(struct image *above, const struct image *below, struct err *e)
{
	struct u64map index = {0};
	int refs = 0;
	for (int i = 0; i < above->nfiles; i++)
		refs += above->files[i].in_parent;
	for (int i = 0; i < below->nfiles && refs; i++) {
		uint64_t key = file_key(&below->files[i]);
		if (below->files[i].kind == VOS_FILE_ON_DISK && !u64map_get(&index, key, NULL))
			u64map_put(&index, key, (uint64_t)i);
	}
	int rc = 0;
	for (int i = 0; i < above->nfiles && rc == 0; i++) {
		struct img_file *f = &above->files[i];
		uint64_t at;
		if (!f->in_parent)
			continue;
		if (!u64map_get(&index, file_key(f), &at) || !same_content(f, &below->files[at])) {
			char id[2 * VOS_CHAIN_ID + 1];
			chain_id_text(below->chain.id, id);
			fail_code(e, "bad_image",
				  "the parent image %s (chain id %s) lacks the content of %s, which %s takes from it (its FILEREF #%u)",
				  below->name, id, f->path, above->name, f->rec.index);
			rc = err_path(e, below->name);
			break;
		}
		const struct img_file *g = &below->files[at];
		f->content = g->in_parent ? g->content : g;
		f->content_img = g->in_parent ? g->content_img : below;
	}
	u64map_free(&index);
	return rc;
}

int chain_load(struct image *img, const char *const *paths, int npaths, struct image *parents, int *n, struct err *e)
{
	*n = 0;
	const struct image *below = img;
	char id[2 * VOS_CHAIN_ID + 1];
	for (int k = 0; image_needs_parent(below); k++) {
		wanted(below, id);
		if (k >= npaths) {
			return fail_code(e, "bad_image",
					 "%s is an incremental image: restoring it needs its parent image (chain id %s, %u below it); "
					 "give it with --parent FILE",
					 below->name, id, below->chain.depth);
		}
		int fd = open(paths[k], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fail_code(e, "bad_image", "the parent image %s of %s cannot be opened: %s", paths[k], below->name, strerror(errno));
			return err_path(e, paths[k]);
		}
		struct image *p = &parents[k];
		if (image_verify(fd, paths[k], e) < 0 || image_load(p, fd, paths[k], e) < 0) {
			char why[ERR_LEN];
			snprintf(why, sizeof why, "%s", e->msg);
			close(fd);
			fail_code(e, "bad_image", "the parent image %s of %s cannot be used: %s", paths[k], below->name, why);
			return err_path(e, paths[k]);
		}
		*n = k + 1;
		if (!p->have_chain || memcmp(p->chain.id, below->chain.parent, VOS_CHAIN_ID) != 0 ||
		    p->chain.depth + 1 != below->chain.depth) {
			fail_code(e, "bad_image", "%s is not the parent of %s (that needs the image with chain id %s)", paths[k],
				  below->name, id);
			return err_path(e, paths[k]);
		}
		below = p;
	}
	if (npaths > *n)
		return fail(e, "%s needs %d parent images, %d were given", img->name, *n, npaths);
	/* The bottom image is whole (image_check: it has no FILEREF); link upwards from it. */
	for (int k = *n - 1; k >= 0; k--)
		if (link_files(k == 0 ? img : &parents[k - 1], &parents[k], e) < 0)
			return -1;
	return 0;
}
