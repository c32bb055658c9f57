/*
 * A process's memory content: PAGES records (and live migration's PRECOPY, dirty.c), written in
 * batches of at most VOS_PAGES_CHUNK bytes of page data.
 *
 * - Private anonymous areas (heap, stacks, malloc arenas): the pages the process ever touched
 *   (present or swapped in /proc/PID/pagemap); untouched pages are left out, zero pages become
 *   a run header without data.
 * - Private file mappings (program and library text and data): only the pages the process
 *   changed (copy-on-write, "anonymous" in pagemap) go with the process; the rest is the file's
 *   content, captured once per image (FILE/FILEDATA, see mapped-files.c).
 * - Shared memory (shared anonymous, memfd, deleted files mapped shared): its content, once.
 * - Shared mappings of regular files: nothing; the file holds it.
 * - vdso: its code (small), so a restore on another kernel can redirect its entry points.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dump.h"
#include "vos-image.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)

#define BATCH_PAGES (VOS_PAGES_CHUNK / PAGE)
#define BATCH_ENTRIES ((int)BATCH_PAGES + 256)
#define BATCH_READS 1024 /* IOV_MAX: the most iovecs one process_vm_readv takes */

/* Pages on their way into one record: data pages (read from the process, one entry each) and
 * runs of kept pages (live migration: the target has them already; no data). */
struct page_batch {
	uint32_t rec_type;   /* VOS_REC_PAGES, or VOS_REC_PRECOPY */
	uint32_t owner_kind; /* 0: process pages, 1: shared memory object */
	uint32_t owner;      /* pid or shm id */
	uint32_t keep_kind;  /* the run kind of pages without data: VOS_RUN_KEPT or VOS_RUN_PARENT */
	struct {
		uint64_t addr; /* where the page goes (address, or offset in the object) */
		uint32_t npages;
		uint32_t kept;
	} ent[BATCH_ENTRIES];
	int nent;
	int ndata;
	uint8_t *data; /* ndata pages, in entry order */
	/* Reads not done yet: one process_vm_readv does them all (an incremental image's pages are
	 * scattered; a call per page would cost more than the copying). Done before the batch is
	 * written, or when the list is full. */
	struct pending_read {
		pid_t pid;
		int mem_fd;
		const struct vma *v; /* valid until the batch is flushed (the caller's area list) */
		uint64_t src;
		int count;
		int slot; /* the first page of data it fills */
	} pend[BATCH_READS];
	int npend;
};

/* One page buffer outlives its batch, so that the next checkpoint finds it faulted in (touching
 * a fresh megabyte costs its 256 page faults inside the frozen time). Pod init is one thread and
 * has one batch at a time; a second one at once gets a buffer of its own. */
static uint8_t *spare_buffer;

static uint8_t *buffer_take(void)
{
	uint8_t *p = spare_buffer;
	spare_buffer = NULL;
	if (p)
		return p;
	p = mmap(NULL, VOS_PAGES_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void buffer_give_back(uint8_t *p)
{
	if (!spare_buffer)
		spare_buffer = p;
	else
		munmap(p, VOS_PAGES_CHUNK);
}

struct page_batch *page_batch_new(uint32_t rec_type, uint32_t owner_kind, uint32_t owner, struct err *e)
{
	struct page_batch *b = xmalloc(sizeof *b);
	b->data = buffer_take();
	if (!b->data) {
		free(b);
		fail(e, "out of memory for the page buffer");
		return NULL;
	}
	b->rec_type = rec_type;
	b->owner_kind = owner_kind;
	b->owner = owner;
	b->keep_kind = VOS_RUN_KEPT;
	b->nent = b->ndata = b->npend = 0;
	return b;
}

void page_batch_free(struct page_batch *b)
{
	if (!b)
		return;
	buffer_give_back(b->data);
	free(b);
}

static int is_zero_page(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	for (size_t i = 0; i < PAGE / 8; i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return 0;
	return 1;
}

/* Reads `count` pages at `src` of process pid into dst (through /proc/PID/mem for areas the
 * process itself cannot read, e.g. PROT_NONE). */
static int read_pages(pid_t pid, int mem_fd, const struct vma *v, uint64_t src, int count, uint8_t *dst, struct err *e)
{
	size_t len = (size_t)count * PAGE;
	if (v->prot & PROT_READ) {
		struct iovec local = {dst, len}, remote = {(void *)(uintptr_t)src, len};
		ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
		if (n == (ssize_t)len)
			return 0;
	}
	if (pread_full(mem_fd, dst, len, src) < 0)
		return fail(e, "cannot read the memory of process %d at %#" PRIx64 " (%s): %s", (int)pid, src, v->path,
			    errno ? strerror(errno) : "end of file");
	return 0;
}

/* Does the pending reads: as many as possible in one call per process, each one the first call
 * could not do (the call stops at the first area it cannot read) on its own. */
static int do_reads(struct page_batch *b, struct err *e)
{
	struct iovec local[BATCH_READS], remote[BATCH_READS];
	for (int i = 0; i < b->npend;) {
		int n = 0;
		size_t want = 0;
		while (i + n < b->npend && b->pend[i + n].pid == b->pend[i].pid) {
			const struct pending_read *r = &b->pend[i + n];
			size_t len = (size_t)r->count * PAGE;
			local[n] = (struct iovec){b->data + (size_t)r->slot * PAGE, len};
			remote[n] = (struct iovec){(void *)(uintptr_t)r->src, len};
			want += len;
			n++;
		}
		ssize_t got = process_vm_readv(b->pend[i].pid, local, (unsigned long)n, remote, (unsigned long)n, 0);
		if (got == (ssize_t)want) {
			i += n;
			continue;
		}
		/* Past what it read whole (fewer bytes than asked: it stopped inside one of them), the
		 * one it stopped in goes alone, then the rest again. */
		size_t done = got > 0 ? (size_t)got : 0;
		int whole = 0;
		while (whole < n && done >= local[whole].iov_len)
			done -= local[whole++].iov_len;
		i += whole;
		const struct pending_read *r = &b->pend[i];
		if (read_pages(r->pid, r->mem_fd, r->v, r->src, r->count, b->data + (size_t)r->slot * PAGE, e) < 0) {
			b->npend = 0;
			return -1;
		}
		i++;
	}
	b->npend = 0;
	return 0;
}

/* Writes the batch as one record: runs of data pages, zero pages and kept pages. */
int page_batch_flush(struct page_batch *b, struct mem_dump *md, struct image_writer *w, struct err *e)
{
	if (b->nent == 0)
		return 0;
	if (do_reads(b, e) < 0)
		return -1;
	struct vos_pages_head head = {b->owner_kind, b->owner};
	/* At most one header and one data part per entry, plus the record head. */
	struct iovec *parts = xmalloc((size_t)(2 * b->nent + 1) * sizeof *parts);
	struct vos_page_run *runs = xmalloc((size_t)b->nent * sizeof *runs);
	int np = 0, nr = 0, slot = 0;
	parts[np++] = (struct iovec){&head, sizeof head};
	for (int i = 0; i < b->nent;) {
		if (b->ent[i].kept) {
			runs[nr] = (struct vos_page_run){b->ent[i].addr, b->ent[i].npages, b->keep_kind};
			parts[np++] = (struct iovec){&runs[nr++], sizeof *runs};
			md->kept_pages += b->ent[i].npages;
			i++;
			continue;
		}
		const uint8_t *first = b->data + (size_t)slot * PAGE;
		int zero = is_zero_page(first);
		int j = i + 1;
		while (j < b->nent && !b->ent[j].kept && b->ent[j].addr == b->ent[j - 1].addr + PAGE &&
		       is_zero_page(b->data + (size_t)(slot + j - i) * PAGE) == zero)
			j++;
		runs[nr] = (struct vos_page_run){b->ent[i].addr, (uint32_t)(j - i), zero ? VOS_RUN_ZERO : VOS_RUN_DATA};
		parts[np++] = (struct iovec){&runs[nr++], sizeof *runs};
		if (!zero)
			parts[np++] = (struct iovec){(void *)first, (size_t)(j - i) * PAGE};
		if (zero)
			md->zero_pages += (uint64_t)(j - i);
		md->pages += (uint64_t)(j - i);
		slot += j - i;
		i = j;
	}
	int rc = iw_record(w, b->rec_type, parts, np, e);
	free(parts);
	free(runs);
	b->nent = b->ndata = 0;
	return rc;
}

/* Reads `take` pages at src into the batch's next data pages: now if the area is unreadable to
 * the process itself, otherwise with the batch's other reads. */
static int queue_read(struct page_batch *b, pid_t pid, int mem_fd, const struct vma *v, uint64_t src, int take,
		      struct err *e)
{
	if (!(v->prot & PROT_READ))
		return read_pages(pid, mem_fd, v, src, take, b->data + (size_t)b->ndata * PAGE, e);
	struct pending_read *last = b->npend > 0 ? &b->pend[b->npend - 1] : NULL;
	if (last && last->pid == pid && last->v == v && last->src + (uint64_t)last->count * PAGE == src &&
	    last->slot + last->count == b->ndata) {
		last->count += take;
		return 0;
	}
	if (b->npend == BATCH_READS && do_reads(b, e) < 0)
		return -1;
	b->pend[b->npend++] = (struct pending_read){pid, mem_fd, v, src, take, b->ndata};
	return 0;
}

int page_batch_add(struct page_batch *b, pid_t pid, int mem_fd, const struct vma *v, uint64_t src, uint64_t dst_addr,
		   int count, struct mem_dump *md, struct image_writer *w, struct err *e)
{
	while (count > 0) {
		int room = (int)BATCH_PAGES - b->ndata;
		if (BATCH_ENTRIES - b->nent < room)
			room = BATCH_ENTRIES - b->nent;
		int take = count < room ? count : room;
		if (queue_read(b, pid, mem_fd, v, src, take, e) < 0)
			return -1;
		for (int i = 0; i < take; i++) {
			b->ent[b->nent + i].addr = dst_addr + (uint64_t)i * PAGE;
			b->ent[b->nent + i].npages = 1;
			b->ent[b->nent + i].kept = 0;
		}
		b->nent += take;
		b->ndata += take;
		md->bytes += (uint64_t)take * PAGE;
		src += (uint64_t)take * PAGE;
		dst_addr += (uint64_t)take * PAGE;
		count -= take;
		if ((b->ndata == (int)BATCH_PAGES || b->nent == BATCH_ENTRIES) && page_batch_flush(b, md, w, e) < 0)
			return -1;
	}
	return 0;
}

/* Pages the target already has (sent ahead and not written since): a run without data. */
static int page_batch_keep(struct page_batch *b, uint64_t addr, uint64_t count, struct mem_dump *md,
			   struct image_writer *w, struct err *e)
{
	if (b->nent > 0 && b->ent[b->nent - 1].kept &&
	    b->ent[b->nent - 1].addr + (uint64_t)b->ent[b->nent - 1].npages * PAGE == addr &&
	    b->ent[b->nent - 1].npages + count < UINT32_MAX) {
		b->ent[b->nent - 1].npages += (uint32_t)count;
		return 0;
	}
	if (b->nent == BATCH_ENTRIES && page_batch_flush(b, md, w, e) < 0)
		return -1;
	b->ent[b->nent].addr = addr;
	b->ent[b->nent].npages = (uint32_t)count;
	b->ent[b->nent].kept = 1;
	b->nent++;
	return 0;
}

/* Page map entries read at a time (32 KiB on the stack: a 1 GiB area's whole map in one fresh
 * buffer cost its 512 page faults inside the frozen time). */
#define PAGEMAP_STEP 4096

/* Which pages of the area to save: 1 for each page to take. */
int wanted_pages(int pagemap_fd, const struct vma *v, uint8_t *want, struct err *e)
{
	uint64_t npages = (v->end - v->start) / PAGE;
	uint64_t pm[PAGEMAP_STEP];
	for (uint64_t at = 0; at < npages; at += PAGEMAP_STEP) {
		uint64_t n = npages - at < PAGEMAP_STEP ? npages - at : PAGEMAP_STEP;
		if (pread_full(pagemap_fd, pm, (size_t)n * 8, (v->start / PAGE + at) * 8) < 0)
			return fail(e, "cannot read the page map of %s: %s", v->path, errno ? strerror(errno) : "short read");
		for (uint64_t i = 0; i < n; i++) {
			uint64_t ent = pm[i];
			int touched = (ent & (PM_PRESENT | PM_SWAPPED)) != 0;
			if (v->kind == VOS_VMA_FILE)
				want[at + i] = touched && !(ent & PM_FILE); /* changed by the process (copy-on-write) */
			else
				want[at + i] = (uint8_t)touched;
		}
	}
	return 0;
}

static int dump_area(pid_t pid, int mem_fd, int pagemap_fd, const struct vma *v, struct page_batch *b,
		     struct mem_dump *md, const struct dirty_tracker *t, struct dirty_proc *tracked, struct image_writer *w,
		     struct err *e)
{
	uint64_t npages = (v->end - v->start) / PAGE;
	uint8_t *want = xmalloc((size_t)npages);
	uint8_t *keep = NULL;
	int protected = 0; /* the written pages are write-protected again already (dirty_kept) */
	if (v->kind == VOS_VMA_VDSO || v->kind == VOS_VMA_SHMEM) {
		memset(want, 1, (size_t)npages); /* small, or shared: all of it */
	} else if (!(tracked && t->incremental && dirty_wanted(pagemap_fd, v, want) == 0) && wanted_pages(pagemap_fd, v, want, e) < 0) {
		free(want);
		return -1;
	} else if (tracked) {
		keep = xcalloc((size_t)npages, 1);
		if (!t->incremental || t->refer)
			protected = dirty_kept(tracked, pagemap_fd, v, want, keep, t->incremental);
	}
	int rc = 0;
	for (uint64_t i = 0; i < npages && rc == 0;) {
		if (!want[i]) {
			i++;
			continue;
		}
		uint8_t kept = keep ? keep[i] : 0;
		uint64_t j = i;
		while (j < npages && want[j] && (keep ? keep[j] : 0) == kept)
			j++;
		uint64_t src = v->start + i * PAGE;
		uint64_t dst = v->kind == VOS_VMA_SHMEM ? v->pgoff + i * PAGE : src;
		if (kept)
			rc = page_batch_keep(b, dst, j - i, md, w, e);
		else
			rc = page_batch_add(b, pid, mem_fd, v, src, dst, (int)(j - i), md, w, e);
		i = j;
	}
	/* While the pod is still frozen: from here on, what the next image needs shows. */
	if (rc == 0 && keep && t->incremental)
		dirty_rearm(tracked, pagemap_fd, v, want, protected);
	free(keep);
	free(want);
	return rc;
}

int open_process_memory(pid_t pid, int *pagemap_fd, int *mem_fd, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
	*pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
	*mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*pagemap_fd >= 0 && *mem_fd >= 0)
		return 0;
	int err = errno;
	if (*pagemap_fd >= 0)
		close(*pagemap_fd);
	if (*mem_fd >= 0)
		close(*mem_fd);
	return fail(e, "cannot open the memory of process %d: %s", (int)pid, strerror(err));
}

int dump_pages(pid_t pid, struct mem_dump *md, const struct vma_list *l, struct dirty_tracker *t,
	       struct image_writer *w, struct err *e)
{
	int pagemap_fd, mem_fd;
	if (open_process_memory(pid, &pagemap_fd, &mem_fd, e) < 0)
		return -1;
	/* The process's own pages first, then shared objects met for the first time. */
	struct dirty_proc *tracked = t ? dirty_find(t, pid) : NULL;
	struct page_batch *b = page_batch_new(VOS_REC_PAGES, 0, (uint32_t)pid, e);
	int rc = b ? 0 : -1;
	if (b && t && t->incremental)
		b->keep_kind = VOS_RUN_PARENT;
	for (int i = 0; i < l->n && rc == 0; i++) {
		const struct vma *v = &l->v[i];
		if (v->kind == VOS_VMA_ANON || v->kind == VOS_VMA_FILE || v->kind == VOS_VMA_VDSO)
			rc = dump_area(pid, mem_fd, pagemap_fd, v, b, md, t, tracked, w, e);
	}
	if (rc == 0)
		rc = page_batch_flush(b, md, w, e);
	for (int i = 0; i < l->n && rc == 0; i++) {
		const struct vma *v = &l->v[i];
		if (v->kind != VOS_VMA_SHMEM || md->shms[v->file_id].dumped)
			continue;
		md->shms[v->file_id].dumped = 1;
		b->owner_kind = 1;
		b->owner = v->file_id;
		rc = dump_area(pid, mem_fd, pagemap_fd, v, b, md, NULL, NULL, w, e);
		if (rc == 0)
			rc = page_batch_flush(b, md, w, e);
	}
	/* Deleted files mapped privately: their content can only be read through the mapping. */
	for (int i = 0; i < l->n && rc == 0; i++) {
		const struct vma *v = &l->v[i];
		if (v->kind != VOS_VMA_FILE || !md->files[v->file_id].deleted)
			continue;
		struct mapped_file *f = &md->files[v->file_id];
		uint64_t len = v->end - v->start;
		uint8_t *tmp = xmalloc((size_t)len);
		if (pread_full(mem_fd, tmp, (size_t)len, v->start) == 0) {
			buf_u64(&f->captured, v->pgoff);
			buf_bytes(&f->captured, tmp, (uint32_t)len);
		}
		free(tmp);
	}
	page_batch_free(b);
	close(pagemap_fd);
	close(mem_fd);
	return rc;
}
