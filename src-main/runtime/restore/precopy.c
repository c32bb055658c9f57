/*
 * Live migration's pages sent ahead (PRECOPY records): an index from a process's page address to
 * where its latest content is in the image, for the final image's KEPT runs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "restore.h"

#define PAGE 4096ull

/* Values: the offset of the page's bytes in the image, or 0 for a zero page (offset 0 is the
 * image header, never page data). */
int precopy_index_build(const struct image *img, pid_t pid, struct u64map *ix, struct err *e)
{
	for (int k = 0; k < img->nprecopy; k++) {
		if (img->precopy[k].pid != pid)
			continue;
		const struct record *rec = &img->precopy[k].rec;
		uint64_t pos = rec->offset + 8, end = rec->offset + rec->length;
		while (pos < end) {
			struct {
				uint64_t addr;
				uint32_t npages, kind;
			} h;
			if (pos + sizeof h > end || pread_full(img->fd, &h, sizeof h, pos) < 0)
				return fail(e, "cannot read the pages sent ahead: %s", errno ? strerror(errno) : "a run is cut short");
			pos += sizeof h;
			if ((h.kind != VOS_RUN_DATA && h.kind != VOS_RUN_ZERO) || h.addr % PAGE)
				return fail(e, "the image is damaged: a run of pages sent ahead is of kind %u", h.kind);
			for (uint32_t i = 0; i < h.npages; i++)
				u64map_put(ix, h.addr + i * PAGE, h.kind == VOS_RUN_DATA ? pos + i * PAGE : 0);
			if (h.kind == VOS_RUN_DATA)
				pos += (uint64_t)h.npages * PAGE;
		}
	}
	return 0;
}
