/*
 * libFuzzer target: the restorer's planning on any bytes. The input becomes an image file (a
 * memfd) whose record CRCs are made right (as fuzz/image-reader.c does, so mutations reach past
 * the checksums); when image_load accepts it, pod init's plan is worked out from it as a restore
 * would, before anything is made (restore/plan.c): the vdso check, then every process's runs
 * (where each page comes from) and the hole for the restorer's zones, with the image's own vdso
 * and, again, with the vdso proxy (its runs keep the vdso's pages). Staging is off (no pages were
 * sent ahead here) and there are no parent images (PARENT runs must fail cleanly).
 *
 * Byte-level mutations almost never leave an image that loads, so a custom mutator works on the
 * records: most of the time it mutates one record's payload (its length may change), or drops,
 * repeats or swaps whole records; now and then it mutates the bytes as they are. The plan is only
 * reached through image_load, whose checks it relies on: what they let through must be safe.
 *
 * Besides "no crash, no out-of-bounds access, no leak", the plan must hold what the restoring
 * processes rely on; a breach aborts (a finding):
 *   - every run is page-aligned, non-empty, inside the areas of its process, and a data run's
 *     bytes lie inside the image file;
 *   - the hole is page-aligned, below the top of user space, and meets no area of any process
 *     (the blob maps the areas over whatever is there: a zone inside one would be overwritten).
 *
 * Built by `make -C src-main/runtime fuzz`; run by scripts/fuzz.sh and, briefly, by
 * test/runtime/fuzz-restore-plan.test.ts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/checksum.h"
#include "../common/image-io.h"
#include "../restore/restore.h"
#include "fuzz-input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

/* restore_zone_size counts the blob's code (the vos_blob section of vos-init): a stand-in of the
 * same order of size, so the linker has the section's bounds. */
__attribute__((section("vos_blob"), used)) const char fuzz_blob_stand_in[3 * 4096] = {1};

/* Where the records of an image are (header and payload; the CRC follows): up to MAX_RECS. */
#define MAX_RECS 256
struct rec_span {
	size_t at, len; /* the record from its header to its CRC, inclusive */
};

static int split_records(const uint8_t *p, size_t size, struct rec_span *out)
{
	int n = 0;
	for (size_t at = 0; n < MAX_RECS && size - at >= VOS_REC_HEADER_SIZE + 4;) {
		struct vos_rec_header h;
		memcpy(&h, p + at, sizeof h);
		if (h.magic != VOS_REC_MAGIC || h.length > size - at - VOS_REC_HEADER_SIZE - 4)
			break;
		out[n++] = (struct rec_span){at, VOS_REC_HEADER_SIZE + (size_t)h.length + 4};
		at += out[n - 1].len;
	}
	return n;
}

/* A record-aware mutation (see the top of this file); the CRCs are made right when it runs. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	struct rec_span r[MAX_RECS];
	int n = split_records(data, size, r);
	if (n < 2 || seed % 8 == 0)
		return LLVMFuzzerMutate(data, size, max_size);
	uint8_t *out = malloc(max_size);
	if (!out)
		abort();
	int pick = (int)((seed >> 3) % (unsigned)n), other = (int)((seed >> 11) % (unsigned)n);
	unsigned op = (seed >> 19) % 8;
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		int from = i;
		if (op == 5 && (i == pick || i == other))
			from = i == pick ? other : pick; /* swap two records */
		if (op == 6 && i == pick)
			continue; /* drop one */
		int copies = op == 7 && i == pick ? 2 : 1; /* repeat one */
		for (int k = 0; k < copies; k++) {
			if (max_size - len < r[from].len)
				goto done;
			memcpy(out + len, data + r[from].at, r[from].len);
			if (op < 5 && i == pick) {
				/* Mutate the payload; the record's length follows it. */
				size_t plen = r[from].len - VOS_REC_HEADER_SIZE - 4;
				size_t room = max_size - len - VOS_REC_HEADER_SIZE - 4;
				if (room > 2 * plen + 64)
					room = 2 * plen + 64;
				size_t nlen = LLVMFuzzerMutate(out + len + VOS_REC_HEADER_SIZE, plen, room);
				struct vos_rec_header h;
				memcpy(&h, out + len, sizeof h);
				h.length = nlen;
				memcpy(out + len, &h, sizeof h);
				len += VOS_REC_HEADER_SIZE + nlen + 4;
				continue;
			}
			len += r[from].len;
		}
	}
done:
	memcpy(data, out, len);
	free(out);
	return len;
}

/* Whether [start, end) lies inside the areas of p, which may be neighbours. */
static int inside_areas(const struct img_process *p, uint64_t start, uint64_t end)
{
	for (uint32_t i = 0; i < p->nvmas && start < end; i++)
		if (start >= p->vmas[i].start && start < p->vmas[i].end)
			start = p->vmas[i].end;
	return start >= end;
}

static void check_plan(const struct restore_ctx *c, uint64_t file_size)
{
	const struct image *img = &c->img;
	for (int i = 0; i < img->nprocs; i++) {
		const struct img_process *p = &img->procs[i];
		const struct run_list *runs = &c->runs[i];
		for (uint64_t k = 0; k < runs->n; k++) {
			const struct blob_run *r = &runs->v[k];
			if (r->len == 0 || r->addr % PAGE || r->len % PAGE || r->addr + r->len < r->addr ||
			    !inside_areas(p, r->addr, r->addr + r->len))
				abort(); /* the blob would write outside the process's memory */
			if (!r->zero && r->pad == 0 && (r->offset > file_size || r->len > file_size - r->offset))
				abort(); /* the blob would read past the image */
		}
		for (uint32_t k = 0; k < p->nvmas; k++) {
			const struct img_vma *v = &p->vmas[k];
			if (v->kind != VOS_VMA_VSYSCALL && v->start < c->hole + c->hole_size && c->hole < v->end)
				abort(); /* the restorer's zone inside an area of the image */
		}
	}
	if (c->hole % PAGE || c->hole + c->hole_size < c->hole || c->hole + c->hole_size > 0x7ff000000000ull)
		abort();
}

static void free_runs(struct restore_ctx *c)
{
	for (int i = 0; c->runs && i < c->img.nprocs; i++)
		free(c->runs[i].v);
	free(c->runs);
	c->runs = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	fuzz_fix_crcs(copy, size);
	int fd = fuzz_image_file("vos-fuzz-plan", copy, size);
	free(copy);
	struct restore_ctx *c = calloc(1, sizeof *c);
	if (!c)
		abort();
	staging_init(&c->staging);
	c->staging.enabled = 0;
	c->tty_fd = -1;
	c->hold_listen_fd = -1;
	struct err e;
	if (image_load(&c->img, fd, "input", &e) == 0 && plan_vdso(c, &e) == 0) {
		int proxy = c->vdso_proxy;
		for (int pass = 0; pass < 2; pass++) {
			c->vdso_proxy = pass ? !proxy : proxy;
			if (plan_memory(c, &e) == 0)
				check_plan(c, size);
			free_runs(c);
		}
	}
	free_runs(c);
	staging_free(&c->staging);
	image_free(&c->img);
	close(fd);
	free(c);
	return 0;
}
