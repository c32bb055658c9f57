/*
 * Live migration's pages sent ahead (PRECOPY records): where a page's latest content is in the
 * image, for the final image's KEPT runs that staging did not take (a stack's, a file's data).
 *
 * A process's runs are read from the image once (one read per run header: a few thousand for a
 * gigabyte) into a list; the few pages looked up are found in it from its end (the latest
 * round's run of a page counts). Past PRECOPY_LOOKUPS_WITHOUT_INDEX lookups, an index of every
 * page is built from the list.
 *
 * Where a page is: the offset of its bytes in the image, or 0 for a zero page (offset 0 is the
 * image header, never page data).
 */

#include <stdlib.h>
#include <string.h>

#include "restore.h"

#define PRECOPY_LOOKUPS_WITHOUT_INDEX 1024

int precopy_runs_load(const struct image *img, pid_t pid, struct precopy_runs *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	size_t cap = 0;
	for (int k = 0; k < img->nprecopy; k++) {
		if (img->precopy[k].pid != pid)
			continue;
		struct run_cursor cur;
		run_cursor_init(&cur, img->fd, &img->precopy[k].rec);
		struct page_run h;
		int rc;
		while ((rc = run_next(&cur, &h, e)) == 1) {
			if ((h.kind != VOS_RUN_DATA && h.kind != VOS_RUN_ZERO) || h.addr % PAGE) {
				precopy_runs_free(out);
				return fail(e, "the image is damaged: a run of pages sent ahead is of kind %u", h.kind);
			}
			if (out->n == cap) {
				cap = cap ? cap * 2 : 256;
				out->v = xrealloc(out->v, cap * sizeof *out->v);
			}
			out->v[out->n++] = h;
		}
		if (rc < 0) {
			precopy_runs_free(out);
			return -1;
		}
	}
	out->loaded = 1;
	return 0;
}

static int find_in_list(const struct precopy_runs *l, uint64_t addr, uint64_t *offset)
{
	for (size_t k = l->n; k-- > 0;) {
		const struct page_run *h = &l->v[k];
		if (addr >= h->addr && (addr - h->addr) / PAGE < h->npages) {
			*offset = h->kind == VOS_RUN_DATA ? h->data + (addr - h->addr) : 0;
			return 1;
		}
	}
	return 0;
}

int precopy_runs_find(struct precopy_runs *l, uint64_t addr, uint64_t *offset)
{
	if (!l->ix.cap && ++l->lookups <= PRECOPY_LOOKUPS_WITHOUT_INDEX)
		return find_in_list(l, addr, offset);
	if (!l->ix.cap) {
		for (size_t k = 0; k < l->n; k++) /* in the order sent: a later round's page overwrites */
			for (uint32_t i = 0; i < l->v[k].npages; i++)
				u64map_put(&l->ix, l->v[k].addr + i * PAGE, l->v[k].kind == VOS_RUN_DATA ? l->v[k].data + i * PAGE : 0);
		u64map_put(&l->ix, ~0ull, 0); /* built, if empty (no page has that address) */
	}
	return u64map_get(&l->ix, addr, offset);
}

void precopy_runs_free(struct precopy_runs *l)
{
	free(l->v);
	u64map_free(&l->ix);
	memset(l, 0, sizeof *l);
}
