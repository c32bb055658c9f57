/*
 * A migration's target: the pages sent ahead (PRECOPY records) and the final image's pages
 * (PAGES) are put into memory while they arrive, so that the restore, once the whole image is
 * in, moves them into place instead of copying them into fresh memory (faulting in fresh memory
 * is what a large restore costs). A stop-and-copy move thus restores its memory while it
 * arrives, and a live one the pages written in its last round.
 *
 * Pages are staged in chunks of 2 MiB, one per 2 MiB-aligned piece of a process's address space,
 * at the same offset inside the chunk as inside that piece; a later round's page overwrites the
 * earlier one, and the final image's page a round's; a zero page becomes a hole. Before the
 * process tree is created, every staged page that the final image does not take from staging
 * (a KEPT run's, or a DATA run's, in an anonymous area) is dropped;
 * each process inherits the chunks with its fork and moves its own into its areas with mremap,
 * which moves page tables, not bytes (blob.c). Chunks live far from where programs map memory
 * (STAGING_BASE) and are dropped if an area of the image overlaps them after all. Any failure
 * only turns staging off: the pages are then read from the image as usual.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../common/buf.h"
#include "restore.h"

#define MADV_POPULATE_WRITE_ 23 /* Linux 5.14; newer than this system's headers may be */

#define STAGING_BASE 0x100000000000ull /* 16 TiB: below PIE programs (~93 TiB) and mmap (~127 TiB) */
#define STAGING_LIMIT 0x200000000000ull

/* Never 0 or 1 (reserved by u64map): the pid is at least 1. */
static uint64_t key_of(pid_t pid, uint64_t base)
{
	return (uint64_t)(uint32_t)pid << 32 | (base / STAGING_CHUNK + 1);
}

struct staged_chunk *staging_find(const struct staging *s, pid_t pid, uint64_t addr)
{
	uint64_t i;
	return u64map_get(&s->index, key_of(pid, addr & ~(STAGING_CHUNK - 1)), &i) ? &s->chunks[i] : NULL;
}

static struct staged_chunk *chunk_for(struct staging *s, pid_t pid, uint64_t addr)
{
	struct staged_chunk *c = staging_find(s, pid, addr);
	if (c)
		return c;
	if (s->next + STAGING_CHUNK > STAGING_LIMIT)
		return NULL;
	uint8_t *mem = mmap((void *)(uintptr_t)s->next, STAGING_CHUNK, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return NULL;
	s->next += STAGING_CHUNK;
	if (s->n == s->chunks_cap) {
		s->chunks_cap = s->chunks_cap ? s->chunks_cap * 2 : 256;
		s->chunks = xrealloc(s->chunks, s->chunks_cap * sizeof *s->chunks);
	}
	c = &s->chunks[s->n];
	memset(c, 0, sizeof *c);
	c->pid = pid;
	c->base = addr & ~(STAGING_CHUNK - 1);
	c->mem = mem;
	u64map_put(&s->index, key_of(pid, c->base), s->n++);
	return c;
}

void staging_init(struct staging *s)
{
	memset(s, 0, sizeof *s);
	s->next = STAGING_BASE;
	s->enabled = 1;
}

/* Stages the runs of one PAGES or PRECOPY payload (its head read already): DATA and ZERO runs
 * into their chunks; KEPT runs, where `kept_ok`, are skipped (their pages stay as the rounds
 * left them). -1: a run this cannot stage (the caller decides what that turns off). */
static int stage_runs(struct staging *s, struct reader *r, pid_t pid, int kept_ok)
{
	while (reader_left(r) > 0) {
		struct vos_page_run run;
		if (page_run_read(r, &run) < 0)
			return -1;
		uint64_t addr = run.addr;
		uint32_t npages = run.npages;
		uint32_t kind = run.kind;
		if (kept_ok && kind == VOS_RUN_KEPT && addr % PAGE == 0)
			continue;
		if (addr % PAGE || (kind != VOS_RUN_DATA && kind != VOS_RUN_ZERO))
			return -1;
		const uint8_t *data = NULL;
		if (kind == VOS_RUN_DATA && (data = rd_raw(r, (size_t)npages * PAGE)) == NULL)
			return -1;
		for (uint32_t i = 0; i < npages;) {
			uint64_t at = addr + (uint64_t)i * PAGE;
			uint64_t in = at % STAGING_CHUNK;
			uint32_t n = (uint32_t)((STAGING_CHUNK - in) / PAGE);
			if (n > npages - i)
				n = npages - i;
			/* A zero page where nothing is staged needs nothing (the restore finds it in the
			 * records): a run of zero pages makes no chunk, so a stream's staged memory is
			 * never more than the bytes it brought. */
			struct staged_chunk *c = data ? chunk_for(s, pid, at) : staging_find(s, pid, at);
			if (!c && !data) {
				i += n;
				continue;
			}
			if (!c)
				return -1;
			if (data) {
				/* Faulted in by one call, not a fault per page (which costs several times
				 * more in a virtual machine); the copy then fills it. Where the kernel has
				 * no MADV_POPULATE_WRITE, the copy faults the pages in. */
				(void)madvise(c->mem + in, (size_t)n * PAGE, MADV_POPULATE_WRITE_);
				memcpy(c->mem + in, data + (uint64_t)i * PAGE, (size_t)n * PAGE);
			} else if (madvise(c->mem + in, (size_t)n * PAGE, MADV_DONTNEED) < 0)
				return -1;
			for (uint64_t pg = in / PAGE; pg < in / PAGE + n; pg++)
				c->have[pg / 8] |= (uint8_t)(1u << (pg % 8));
			i += n;
		}
	}
	return 0;
}

void staging_take(struct staging *s, const void *payload, uint64_t len)
{
	if (!s->enabled)
		return;
	struct reader r;
	reader_init(&r, payload, (size_t)len);
	uint32_t owner_kind = rd_u32(&r);
	pid_t pid = (pid_t)rd_u32(&r);
	s->records++;
	/* An owner that is not a process is refused by the restore; do not guess. */
	if (owner_kind != 0 || pid <= 0 || stage_runs(s, &r, pid, 0) < 0)
		staging_free(s);
}

void staging_take_final(struct staging *s, const void *payload, uint64_t len)
{
	if (!s->enabled || s->final_off)
		return;
	struct reader r;
	reader_init(&r, payload, (size_t)len);
	uint32_t owner_kind = rd_u32(&r);
	pid_t pid = (pid_t)rd_u32(&r);
	if (owner_kind != 0)
		return; /* shared memory: restored from the image */
	/* A run half staged leaves DATA pages of this record wrong here, and only those: final_off
	 * makes the restore read every DATA run from the image. */
	if (pid <= 0 || stage_runs(s, &r, pid, 1) < 0)
		s->final_off = 1;
	else
		s->final_records++;
}

int staging_final_complete(const struct staging *s, uint64_t records)
{
	return s->enabled && !s->final_off && s->final_records == records;
}

uint64_t staging_keep_run(struct staged_chunk *c, uint64_t addr, uint64_t n)
{
	uint64_t first = (addr - c->base) / PAGE, k = 0;
	for (; k < n && first + k < STAGING_CHUNK / PAGE; k++) {
		uint64_t page = first + k;
		if (!(c->have[page / 8] >> (page % 8) & 1))
			break;
		c->keep[page / 8] |= (uint8_t)(1u << (page % 8));
	}
	return k;
}

static int kept(const struct staged_chunk *c, uint64_t page)
{
	return c->keep[page / 8] >> (page % 8) & 1;
}

uint64_t staging_drop_unkept(struct staging *s)
{
	uint64_t kept_pages = 0;
	for (size_t k = 0; k < s->n; k++) {
		struct staged_chunk *c = &s->chunks[k];
		for (uint64_t i = 0; i < STAGING_CHUNK / PAGE;) {
			if (kept(c, i)) {
				kept_pages++;
				i++;
				continue;
			}
			uint64_t j = i;
			while (j < STAGING_CHUNK / PAGE && !kept(c, j))
				j++;
			madvise(c->mem + i * PAGE, (size_t)(j - i) * PAGE, MADV_DONTNEED);
			i = j;
		}
	}
	return kept_pages;
}

uint64_t staging_start(const struct staging *s)
{
	return s->n > 0 ? STAGING_BASE : 0;
}

uint64_t staging_end(const struct staging *s)
{
	return s->n > 0 ? s->next : 0;
}

int staging_overlaps(const struct staging *s, uint64_t start, uint64_t end)
{
	return s->n > 0 && start < s->next && end > STAGING_BASE;
}

void staging_skip_forks(struct staging *s, int skip)
{
	if (s->next <= STAGING_BASE)
		return;
	void *at = (void *)(uintptr_t)STAGING_BASE;
	size_t len = (size_t)(s->next - STAGING_BASE);
	if (madvise(at, len, skip ? MADV_DONTFORK : MADV_DOFORK) < 0 && !skip)
		staging_free(s); /* pod init would find holes: read the pages from the image instead */
}

void staging_free(struct staging *s)
{
	if (s->next > STAGING_BASE)
		munmap((void *)(uintptr_t)STAGING_BASE, (size_t)(s->next - STAGING_BASE));
	free(s->chunks);
	u64map_free(&s->index);
	memset(s, 0, sizeof *s);
}
