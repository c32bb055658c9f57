/*
 * Live migration's pages sent ahead (PRECOPY records): an index from a process's page address to
 * where its latest content is in the image, for the final image's KEPT runs.
 */

#include "restore.h"

/* Values: the offset of the page's bytes in the image, or 0 for a zero page (offset 0 is the
 * image header, never page data). */
int precopy_index_build(const struct image *img, pid_t pid, struct u64map *ix, struct err *e)
{
	for (int k = 0; k < img->nprecopy; k++) {
		if (img->precopy[k].pid != pid)
			continue;
		struct run_cursor cur;
		run_cursor_init(&cur, img->fd, &img->precopy[k].rec);
		struct page_run h;
		int rc;
		while ((rc = run_next(&cur, &h, e)) == 1) {
			if ((h.kind != VOS_RUN_DATA && h.kind != VOS_RUN_ZERO) || h.addr % PAGE)
				return fail(e, "the image is damaged: a run of pages sent ahead is of kind %u", h.kind);
			for (uint32_t i = 0; i < h.npages; i++)
				u64map_put(ix, h.addr + i * PAGE, h.kind == VOS_RUN_DATA ? h.data + i * PAGE : 0);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}
