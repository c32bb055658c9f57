/*
 * What each restoring process gets, worked out by pod init once, before it forks any of them:
 * the runs (where each page of a process's memory comes from: the image's PAGES, the pages sent
 * ahead in PRECOPY records, or staged memory: a migration's pages put in memory as they arrived)
 * and the moves of its staged chunks. The processes inherit the result and build their blob's
 * plan from it (blob-plan.c).
 */
#include <stdlib.h>
#include <string.h>

#include "restore.h"
#include "vos-image.h"

static const struct img_vma *vma_at(const struct img_process *p, uint64_t addr)
{
	for (uint32_t i = 0; i < p->nvmas; i++)
		if (addr >= p->vmas[i].start && addr < p->vmas[i].end)
			return &p->vmas[i];
	return NULL;
}

static void add_run(struct run_list *runs, struct blob_run r)
{
	if (runs->n > 0) {
		struct blob_run *last = &runs->v[runs->n - 1];
		if (last->addr + last->len == r.addr && last->zero == r.zero && last->pad == r.pad &&
		    (r.zero || last->offset + last->len == r.offset)) {
			last->len += r.len; /* pages sent ahead in the order of their addresses */
			return;
		}
	}
	runs->v = xrealloc(runs->v, (size_t)(runs->n + 1) * sizeof *runs->v);
	runs->v[runs->n++] = r;
}

/* Whether staged pages may move into area v: private anonymous memory, but not a stack that
 * grows down (the piece moved in would not grow; the stack could not either). */
static int stageable(const struct img_vma *v)
{
	return v->kind == VOS_VMA_ANON && !(v->flags & (VOS_VMA_GROWSDOWN | VOS_VMA_SHARED));
}

/* Where a KEPT page's content is (see add_kept); 1 if it was sent ahead, 0 if not, -1. */
static int kept_page_at(struct restore_ctx *c, struct img_process *p, struct precopy_runs *kx, uint64_t at, uint64_t *offset,
			struct err *e)
{
	if (!kx->loaded && precopy_runs_load(&c->img, p->pid, kx, e) < 0)
		return -1;
	return precopy_runs_find(kx, at, offset);
}

/* Pages from `at` on that move into place from staging (kept there for this process's area v),
 * up to the run's end, the area's or the 2 MiB piece's; 0 if staging does not have the first. */
static uint64_t take_staged(struct restore_ctx *c, const struct img_process *p, const struct img_vma *v, uint64_t at,
			    uint64_t run_end)
{
	struct staged_chunk *staged = v && stageable(v) && c->staging.enabled ? staging_find(&c->staging, p->pid, at) : NULL;
	if (!staged)
		return 0;
	uint64_t end = run_end < v->end ? run_end : v->end;
	if (end > staged->base + STAGING_CHUNK)
		end = staged->base + STAGING_CHUNK;
	return staging_keep_run(staged, at, (end - at) / PAGE);
}

/* A KEPT run: each page from where the pages sent ahead have it, or in memory, staged: those
 * are taken a 2 MiB piece at a time, and only the pages staging did not take (a stack's) are
 * looked up in the records. */
static int add_kept(struct restore_ctx *c, struct img_process *p, struct precopy_runs *kx, const struct img_vma *v,
		    uint64_t addr, uint64_t npages, struct run_list *runs, struct err *e)
{
	for (uint64_t i = 0; i < npages;) {
		uint64_t at = addr + i * PAGE, offset;
		if (!v || at >= v->end)
			v = vma_at(p, at); /* a run of neighbouring areas' pages */
		if (!v)
			return fail(e, "the image is damaged: page %#llx of process %d lies in none of its areas", (unsigned long long)at,
				    (int)p->pid);
		uint64_t took = take_staged(c, p, v, at, addr + npages * PAGE);
		if (took > 0) {
			i += took;
			continue;
		}
		int found = kept_page_at(c, p, kx, at, &offset, e);
		if (found < 0)
			return -1;
		if (!found)
			return fail(e, "the image is damaged: page %#llx of process %d was to be sent ahead, and was not",
				    (unsigned long long)at, (int)p->pid);
		i++;
		if (offset == 0 && v->kind == VOS_VMA_ANON)
			continue; /* fresh anonymous memory is zero already */
		add_run(runs, (struct blob_run){at, PAGE, offset, offset == 0, 0});
	}
	return 0;
}

/* A DATA run of the final image whose pages were staged as they arrived (staging_take_final):
 * they move into place as a KEPT run's do; a page staging does not have (in an area pages may
 * not move into, or a chunk it could not make) is read from the image. */
static void add_staged_data(struct restore_ctx *c, struct img_process *p, const struct img_vma *v, const struct page_run *h,
			    struct run_list *runs)
{
	uint64_t run_end = h->addr + (uint64_t)h->npages * PAGE;
	for (uint64_t i = 0; i < h->npages;) {
		uint64_t at = h->addr + i * PAGE;
		if (!v || at >= v->end)
			v = vma_at(p, at);
		uint64_t took = take_staged(c, p, v, at, run_end);
		if (took == 0) {
			add_run(runs, (struct blob_run){at, PAGE, h->data + i * PAGE, 0, 0});
			took = 1;
		}
		i += took;
	}
}

/* Where each page of process pid is in one image of the chain: the offset of its bytes, 0 for a
 * zero page, 1 for "in the parent" (offsets 0 and 1 lie in the header, never page data). */
static int parent_index_build(struct image *img, pid_t pid, struct u64map *ix, struct err *e)
{
	struct img_process *p = image_process(img, pid);
	if (!p)
		return 0; /* the process did not exist then: nothing of it is there */
	for (int k = 0; k < p->npages; k++) {
		struct run_cursor cur;
		run_cursor_init(&cur, img->fd, &p->pages[k]);
		struct page_run h;
		int rc;
		while ((rc = run_next(&cur, &h, e)) == 1) {
			if (h.kind == VOS_RUN_KEPT)
				return fail_code(e, "bad_image", "%s cannot be a parent image: it was written by a migration", img->name);
			uint64_t value = h.kind == VOS_RUN_DATA ? 0 : h.kind == VOS_RUN_ZERO ? 0 : 1;
			for (uint32_t i = 0; i < h.npages; i++)
				u64map_put(ix, h.addr + i * PAGE, h.kind == VOS_RUN_DATA ? h.data + i * PAGE : value);
		}
		if (rc < 0)
			return -1;
	}
	if (!ix->cap)
		u64map_put(ix, ~0ull, 1); /* built, if empty */
	return 0;
}

/* A PARENT run: each page from the nearest parent that holds it. */
static int add_parent(struct restore_ctx *c, struct img_process *p, struct u64map *ix, const struct img_vma *v, uint64_t addr,
		      uint64_t npages, struct run_list *runs, struct err *e)
{
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t at = addr + i * PAGE, value = 1;
		if (!v || at >= v->end)
			v = vma_at(p, at);
		if (!v)
			return fail(e, "the image is damaged: page %#llx of process %d lies in none of its areas", (unsigned long long)at,
				    (int)p->pid);
		int level = 0;
		for (; level < c->nparents && value == 1; level++) {
			if (!ix[level].cap && parent_index_build(&c->parents[level], p->pid, &ix[level], e) < 0)
				return -1;
			if (!u64map_get(&ix[level], at, &value))
				return fail_code(e, "bad_image", "%s does not hold page %#llx of process %d that %s takes from it",
						 c->parents[level].name, (unsigned long long)at, (int)p->pid,
						 level ? c->parents[level - 1].name : c->img.name);
		}
		if (value == 1)
			return fail_code(e, "bad_image", "%s takes page %#llx of process %d from a parent image it was not given",
					 c->img.name, (unsigned long long)at, (int)p->pid);
		if (value == 0 && v->kind == VOS_VMA_ANON)
			continue; /* fresh anonymous memory is zero already */
		add_run(runs, (struct blob_run){at, PAGE, value, value == 0, value == 0 ? 0 : (uint32_t)level});
	}
	return 0;
}

int collect_runs(struct restore_ctx *c, struct img_process *p, struct run_list *runs, struct err *e)
{
	runs->v = NULL;
	runs->n = 0;
	struct precopy_runs kx; /* the pages sent ahead (see add_kept) */
	memset(&kx, 0, sizeof kx);
	struct u64map pix[VOS_MAX_CHAIN];
	memset(pix, 0, sizeof pix); /* each parent's pages, built at the first PARENT run that needs it */
	int rc = 0;
	for (int i = 0; i < p->npages && rc == 0; i++) {
		struct run_cursor cur;
		run_cursor_init(&cur, c->img.fd, &p->pages[i]);
		struct page_run h;
		while (rc == 0 && (rc = run_next(&cur, &h, e)) == 1) {
			rc = 0;
			const struct img_vma *v = vma_at(p, h.addr);
			int keep_run = v && (v->kind != VOS_VMA_VDSO || c->vdso_proxy) && v->kind != VOS_VMA_VVAR &&
				       v->kind != VOS_VMA_VVAR_VCLOCK;
			if (h.kind == VOS_RUN_KEPT) {
				if (keep_run)
					rc = add_kept(c, p, &kx, v, h.addr, h.npages, runs, e);
				continue;
			}
			if (h.kind == VOS_RUN_PARENT) {
				if (keep_run)
					rc = add_parent(c, p, pix, v, h.addr, h.npages, runs, e);
				continue;
			}
			if (h.kind == VOS_RUN_ZERO)
				keep_run = keep_run && v->kind != VOS_VMA_ANON; /* fresh anonymous memory is zero already */
			if (keep_run && h.kind == VOS_RUN_DATA && stageable(v) && c->staging.enabled && !c->staging.final_off) {
				add_staged_data(c, p, v, &h, runs);
				continue;
			}
			if (keep_run)
				add_run(runs, (struct blob_run){h.addr, (uint64_t)h.npages * PAGE, h.kind == VOS_RUN_DATA ? h.data : 0,
								h.kind == VOS_RUN_ZERO, 0});
		}
	}
	precopy_runs_free(&kx);
	for (int k = 0; k < VOS_MAX_CHAIN; k++)
		u64map_free(&pix[k]);
	return rc;
}

uint64_t staged_moves(const struct restore_ctx *c, const struct img_process *p, struct blob_move *out)
{
	uint64_t n = 0;
	for (size_t k = 0; k < c->staging.n; k++) {
		const struct staged_chunk *ch = &c->staging.chunks[k];
		int any = 0;
		for (size_t b = 0; b < sizeof ch->keep && !any; b++)
			any = ch->keep[b] != 0;
		if (ch->pid != p->pid || !any)
			continue;
		for (uint32_t i = 0; i < p->nvmas; i++) {
			const struct img_vma *v = &p->vmas[i];
			uint64_t lo = v->start > ch->base ? v->start : ch->base;
			uint64_t hi = v->end < ch->base + STAGING_CHUNK ? v->end : ch->base + STAGING_CHUNK;
			if (!stageable(v) || lo >= hi)
				continue;
			if (out)
				out[n] = (struct blob_move){(uint64_t)(uintptr_t)ch->mem + (lo - ch->base), lo, hi - lo};
			n++;
		}
	}
	return n;
}
