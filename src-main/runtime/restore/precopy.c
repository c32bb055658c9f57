/*
 * Live migration's pages sent ahead (PRECOPY records): where a page's latest content is in the
 * image, for the final image's KEPT runs. An index of all of a process's pages, or, for the few
 * pages staging did not take (a stack's), a look through the records' runs.
 *
 * Where a page is: the offset of its bytes in the image, or 0 for a zero page (offset 0 is the
 * image header, never page data).
 */

#include "restore.h"

/* Calls fn for each run of pages that process pid's PRECOPY records sent, in the order they were
 * sent (a later round's page is the latest). */
static int each_precopy_run(const struct image *img, pid_t pid, void (*fn)(const struct page_run *h, void *arg), void *arg,
			    struct err *e)
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
			fn(&h, arg);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

struct page_lookup {
	uint64_t addr;
	uint64_t offset;
	int found;
};

static void look_at_run(const struct page_run *h, void *arg)
{
	struct page_lookup *l = arg;
	if (l->addr >= h->addr && (l->addr - h->addr) / PAGE < h->npages) {
		l->offset = h->kind == VOS_RUN_DATA ? h->data + (l->addr - h->addr) : 0;
		l->found = 1; /* a later run may have it again: the latest counts */
	}
}

int precopy_find(const struct image *img, pid_t pid, uint64_t addr, uint64_t *offset, struct err *e)
{
	struct page_lookup l = {addr, 0, 0};
	if (each_precopy_run(img, pid, look_at_run, &l, e) < 0)
		return -1;
	*offset = l.offset;
	return l.found;
}

static void index_run(const struct page_run *h, void *arg)
{
	struct u64map *ix = arg;
	for (uint32_t i = 0; i < h->npages; i++)
		u64map_put(ix, h->addr + i * PAGE, h->kind == VOS_RUN_DATA ? h->data + i * PAGE : 0);
}

int precopy_index_build(const struct image *img, pid_t pid, struct u64map *ix, struct err *e)
{
	return each_precopy_run(img, pid, index_run, ix, e);
}
