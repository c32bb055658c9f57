/*
 * Live migration's pages sent ahead (PRECOPY records): where a page's latest content is in the
 * image, for the final image's KEPT runs. An index of all of a process's pages, or, for the few
 * pages staging did not take (a stack's), a look through the records' runs.
 */

#include "restore.h"

/* Values: the offset of the page's bytes in the image, or 0 for a zero page (offset 0 is the
 * image header, never page data). */
int precopy_find(const struct image *img, pid_t pid, uint64_t addr, uint64_t *offset, struct err *e)
{
	int found = 0;
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
			if (addr >= h.addr && (addr - h.addr) / PAGE < h.npages) {
				/* A later round's page is the latest: keep looking. */
				*offset = h.kind == VOS_RUN_DATA ? h.data + (addr - h.addr) : 0;
				found = 1;
			}
		}
		if (rc < 0)
			return -1;
	}
	return found;
}

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
