/*
 * An incremental image's parents (docs/image-format.md, CHAIN): each one checked whole (every
 * checksum, the trailer, the full reading a restore does) and checked to be the very image the
 * one above it names (its CHAIN id), down to a whole image. A missing, damaged or other image
 * refuses the restore, naming it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "image.h"

/* The parent `img` needs, as text, for messages. */
static void wanted(const struct image *img, char out[2 * VOS_CHAIN_ID + 1])
{
	chain_id_text(img->chain.parent, out);
}

int chain_load(const struct image *img, const char *const *paths, int npaths, struct image *parents, int *n, struct err *e)
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
	return 0;
}
