/*
 * The restore's plan, worked out in pod init from the loaded image before anything is made:
 * whether the image's vdso is connected to this kernel's (plan_vdso), where each page of each
 * process comes from (collect_runs, runs.c), and the hole in the address space the restorer's
 * zones go in (plan_memory). Nothing here changes the process, except dropping staged pages the
 * image does not take: fuzz/restore-plan.c runs it on any image that loads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "restore.h"
#include "vos-image.h"

struct range {
	uint64_t start, end;
};

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return (x->start > y->start) - (x->start < y->start);
}

/* A free stretch of `size` bytes, used by no process of the image and not by us. */
uint64_t find_hole(const struct image *img, uint64_t size)
{
	struct range *r = NULL;
	int n = 0;
	for (int i = 0; i < img->nprocs; i++)
		for (uint32_t k = 0; k < img->procs[i].nvmas; k++) {
			r = xrealloc(r, (size_t)(n + 1) * sizeof *r);
			/* a guard page around each area: stacks grow, mappings have neighbours */
			r[n++] = (struct range){img->procs[i].vmas[k].start - PAGE, img->procs[i].vmas[k].end + PAGE};
		}
	char *text = read_text_file("/proc/self/maps", NULL);
	for (char *line = text; line && *line;) {
		unsigned long long s, e;
		if (sscanf(line, "%llx-%llx", &s, &e) == 2) {
			r = xrealloc(r, (size_t)(n + 1) * sizeof *r);
			r[n++] = (struct range){s - 16 * PAGE, e + 16 * PAGE};
		}
		char *next = strchr(line, '\n');
		line = next ? next + 1 : NULL;
	}
	free(text);
	qsort(r, (size_t)n, sizeof *r, cmp_range);
	uint64_t starts[] = {0x100000000ull, 0x10000ull};
	for (size_t s = 0; s < ARRAY_LEN(starts); s++) {
		uint64_t cand = starts[s];
		for (int i = 0; i < n; i++) {
			if (r[i].end <= cand)
				continue;
			if (r[i].start >= cand + size)
				break;
			cand = (r[i].end + PAGE - 1) & ~(PAGE - 1);
		}
		if (cand + size < 0x7ff000000000ull) {
			free(r);
			return cand;
		}
	}
	free(r);
	return 0;
}

/* The vvar/vdso layout and vdso code of this kernel against the image's (its main process). */
int plan_vdso(struct restore_ctx *c, struct err *e)
{
	struct img_process *p = image_process(&c->img, c->img.main_pid);
	uint64_t want[3] = {0}, cur[3] = {0}, vdso_at = 0, cur_vdso = 0;
	for (uint32_t i = 0; i < p->nvmas; i++) {
		uint32_t k = p->vmas[i].kind;
		int idx = k == VOS_VMA_VVAR ? 0 : k == VOS_VMA_VVAR_VCLOCK ? 1 : k == VOS_VMA_VDSO ? 2 : -1;
		if (idx >= 0)
			want[idx] = p->vmas[i].end - p->vmas[i].start;
		if (k == VOS_VMA_VDSO)
			vdso_at = p->vmas[i].start;
	}
	char *text = read_text_file("/proc/self/maps", NULL);
	for (char *line = text; line && *line;) {
		unsigned long long s, en;
		char name[64] = "";
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %63s", &s, &en, name) >= 2) {
			int idx = strcmp(name, "[vvar]") == 0 ? 0 : strcmp(name, "[vvar_vclock]") == 0 ? 1 : strcmp(name, "[vdso]") == 0 ? 2 : -1;
			if (idx >= 0)
				cur[idx] = en - s;
			if (idx == 2)
				cur_vdso = s;
		}
		char *next = strchr(line, '\n');
		line = next ? next + 1 : NULL;
	}
	free(text);
	int same = memcmp(want, cur, sizeof want) == 0 && want[2] != 0;
	if (same) {
		/* Same layout; the same code too? Compare with the vdso pages the image carries: walk
		 * the run headers of the main process's PAGES records (not their data). */
		same = 0;
		for (int i = 0; i < p->npages && !same; i++) {
			struct run_cursor runs;
			run_cursor_init(&runs, c->img.fd, &p->pages[i]);
			struct page_run h;
			int rc;
			while ((rc = run_next(&runs, &h, e)) == 1) {
				if (h.kind == VOS_RUN_DATA && h.addr <= vdso_at && vdso_at + want[2] <= h.addr + (uint64_t)h.npages * PAGE) {
					uint8_t *old = xmalloc(want[2]);
					same = pread_full(c->img.fd, old, want[2], h.data + (vdso_at - h.addr)) == 0 &&
					       memcmp(old, (void *)(uintptr_t)cur_vdso, want[2]) == 0;
					free(old);
					break;
				}
			}
			if (rc < 0)
				return -1;
		}
	}
	/* Another kernel: the old vdso's entry points are redirected to this one's (vdso-proxy.c).
	 * Test hook: VOS_FORCE_VDSO_PROXY takes that path on the same kernel too (it is how it is
	 * tested). Safe in a shipped build: the restorer's environment is the agent's (set only by
	 * the user who starts it), and the proxy is correct on any kernel, this one included (its
	 * jumps lead to this kernel's own vdso); it costs a jump per clock call, nothing else. */
	const char *force = getenv("VOS_FORCE_VDSO_PROXY");
	c->vdso_proxy = !same || (force && *force && strcmp(force, "0") != 0);
	return 0;
}

uint64_t restore_zone_size(const struct img_process *p, uint64_t nruns)
{
	uint64_t code = ((uint64_t)(__stop_vos_blob - __start_vos_blob) + PAGE - 1) & ~(PAGE - 1);
	uint64_t data = sizeof(struct blob_plan) + (uint64_t)p->nvmas * sizeof(struct blob_area) +
			nruns * sizeof(struct blob_run) + (uint64_t)p->nthreads * sizeof(struct blob_thread) +
			p->auxv_len + 4096 /* unmap list */ * sizeof(struct blob_range) +
			((uint64_t)p->ntimers + 1) * sizeof(struct blob_timer) + ((uint64_t)p->nlocks + 1) * sizeof(struct blob_lock) +
			64 * sizeof(struct blob_poke) + 64 * 16;
	uint64_t stacks = (uint64_t)p->nthreads * BLOB_THREAD_STACK + BLOB_MAIN_STACK;
	return code + ((data + PAGE - 1) & ~(PAGE - 1)) + stacks + 4 * PAGE;
}

int plan_memory(struct restore_ctx *c, struct err *e)
{
	struct image *img = &c->img;
	c->runs = xcalloc((size_t)img->nprocs, sizeof *c->runs);
	/* Staged pages stay only where no area of the image is. */
	for (int i = 0; i < img->nprocs && c->staging.enabled; i++)
		for (uint32_t k = 0; k < img->procs[i].nvmas; k++)
			if (staging_overlaps(&c->staging, img->procs[i].vmas[k].start, img->procs[i].vmas[k].end))
				staging_free(&c->staging);
	uint64_t zone = 0;
	for (int i = 0; i < img->nprocs; i++) {
		if (collect_runs(c, &img->procs[i], &c->runs[i], e) < 0)
			return -1;
		uint64_t z = restore_zone_size(&img->procs[i], c->runs[i].n + staged_moves(c, &img->procs[i], NULL));
		if (z > zone)
			zone = z;
	}
	c->placed_pages = staging_drop_unkept(&c->staging);
	c->hole_size = 3 * PAGE + zone + HOLE_TEMP_PAGES * PAGE;
	c->hole = find_hole(img, c->hole_size);
	if (!c->hole)
		return fail(e, "no room in the address space for the restorer");
	return 0;
}
