/*
 * Live migration's pages sent ahead (PRECOPY records): an index from a process's page address to
 * where its latest content is in the image, for the final image's KEPT runs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "restore.h"

#define PAGE 4096ull

/* Open addressing; key 0 is empty (page addresses are never 0). Value: offset of the page's
 * bytes in the image, or 0 for a zero page (offset 0 is the image header, never page data). */
static size_t slot_of(uint64_t addr, size_t cap)
{
	return (size_t)(((addr >> 12) * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

static void put(struct precopy_index *ix, uint64_t addr, uint64_t offset)
{
	if ((ix->n + 1) * 4 > ix->cap * 3) {
		struct precopy_index old = *ix;
		ix->cap = old.cap ? old.cap * 2 : 4096;
		ix->key = xcalloc(ix->cap, sizeof *ix->key);
		ix->offset = xcalloc(ix->cap, sizeof *ix->offset);
		ix->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.key[i])
				put(ix, old.key[i], old.offset[i]);
		free(old.key);
		free(old.offset);
	}
	size_t i = slot_of(addr, ix->cap);
	while (ix->key[i] && ix->key[i] != addr)
		i = (i + 1) & (ix->cap - 1);
	if (!ix->key[i]) {
		ix->key[i] = addr;
		ix->n++;
	}
	ix->offset[i] = offset;
}

int precopy_lookup(const struct precopy_index *ix, uint64_t addr, uint64_t *offset)
{
	if (!ix->cap)
		return -1;
	for (size_t i = slot_of(addr, ix->cap);; i = (i + 1) & (ix->cap - 1)) {
		if (ix->key[i] == addr) {
			*offset = ix->offset[i];
			return 0;
		}
		if (!ix->key[i])
			return -1;
	}
}

int precopy_index_build(const struct image *img, pid_t pid, struct precopy_index *ix, struct err *e)
{
	memset(ix, 0, sizeof *ix);
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
				put(ix, h.addr + i * PAGE, h.kind == VOS_RUN_DATA ? pos + i * PAGE : 0);
			if (h.kind == VOS_RUN_DATA)
				pos += (uint64_t)h.npages * PAGE;
		}
	}
	return 0;
}

void precopy_index_free(struct precopy_index *ix)
{
	free(ix->key);
	free(ix->offset);
	memset(ix, 0, sizeof *ix);
}
