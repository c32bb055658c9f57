/*
 * A process's memory: its areas from /proc/PID/maps, and their content.
 *
 * - Private anonymous areas (heap, stacks, malloc arenas): the pages the process ever touched
 *   (present or swapped in /proc/PID/pagemap); untouched pages are left out, zero pages become
 *   a run header without data.
 * - Private file mappings (program and library text and data): only the pages the process
 *   changed (copy-on-write, "anonymous" in pagemap) go with the process; the rest is the file's
 *   content, captured once per image (FILE/FILEDATA, see dump_mapped_files).
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
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/checksum.h"
#include "dump.h"
#include "vos-image.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)

static uint32_t file_index(struct mem_dump *md, uint64_t dev, uint64_t ino, const char *path, int deleted)
{
	for (int i = 0; i < md->nfiles; i++)
		if (md->files[i].dev == dev && md->files[i].ino == ino)
			return (uint32_t)i;
	md->files = xrealloc(md->files, (size_t)(md->nfiles + 1) * sizeof *md->files);
	struct mapped_file *f = &md->files[md->nfiles];
	memset(f, 0, sizeof *f);
	f->dev = dev;
	f->ino = ino;
	snprintf(f->path, sizeof f->path, "%s", path);
	f->deleted = deleted;
	buf_init(&f->captured);
	return (uint32_t)md->nfiles++;
}

uint32_t shm_id_for(struct mem_dump *md, uint64_t dev, uint64_t ino)
{
	for (int i = 0; i < md->nshms; i++)
		if (md->shms[i].dev == dev && md->shms[i].ino == ino)
			return (uint32_t)i;
	md->shms = xrealloc(md->shms, (size_t)(md->nshms + 1) * sizeof *md->shms);
	md->shms[md->nshms] = (struct shm_object){dev, ino, 0};
	return (uint32_t)md->nshms++;
}

static void add_range(struct mapped_file *f, uint64_t off, uint64_t len)
{
	f->ranges = xrealloc(f->ranges, (size_t)(f->nranges + 1) * sizeof *f->ranges);
	f->ranges[f->nranges][0] = off;
	f->ranges[f->nranges][1] = len;
	f->nranges++;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static uint32_t classify(const struct vma *v, int shared, const char *path)
{
	if (strcmp(path, "[vdso]") == 0)
		return VOS_VMA_VDSO;
	if (strcmp(path, "[vvar]") == 0)
		return VOS_VMA_VVAR;
	if (strcmp(path, "[vvar_vclock]") == 0)
		return VOS_VMA_VVAR_VCLOCK;
	if (strcmp(path, "[vsyscall]") == 0)
		return VOS_VMA_VSYSCALL;
	if (shared) {
		if (v->ino == 0 || strncmp(path, "/memfd:", 7) == 0 || strncmp(path, "/dev/zero", 9) == 0 ||
		    strncmp(path, "/SYSV", 5) == 0 || ends_with(path, " (deleted)"))
			return VOS_VMA_SHMEM;
		return VOS_VMA_SHARED_FILE;
	}
	if (v->ino == 0 || path[0] != '/')
		return VOS_VMA_ANON;
	return VOS_VMA_FILE;
}

/* The VmFlags of smaps that the image keeps (two-letter codes, see proc(5)). */
static uint32_t parse_vm_flags(const char *list)
{
	static const struct {
		char code[3];
		uint32_t flag;
	} known[] = {{"gd", VOS_VMA_GROWSDOWN}, {"hg", VOS_VMA_HUGEPAGE},   {"nh", VOS_VMA_NOHUGEPAGE},
		     {"dc", VOS_VMA_DONTFORK},  {"wf", VOS_VMA_WIPEONFORK}, {"dd", VOS_VMA_DONTDUMP}};
	uint32_t flags = 0;
	for (const char *p = list; *p;) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		for (size_t k = 0; n == 2 && k < sizeof known / sizeof known[0]; k++)
			if (p[0] == known[k].code[0] && p[1] == known[k].code[1])
				flags |= known[k].flag;
		p += n;
	}
	return flags;
}

/* In smaps, a mapping's first line starts with its address range; the lines after it are
 * "Key: value" fields. */
static int is_field_line(const char *line)
{
	size_t token = strcspn(line, " ");
	return token > 0 && line[token - 1] == ':';
}

int collect_vmas(pid_t pid, struct mem_dump *md, struct vma_list *out, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
	char *text = read_text_file(path, NULL);
	if (!text)
		return fail(e, "cannot read %s: %s", path, strerror(errno));
	out->v = NULL;
	out->n = 0;
	for (char *line = text; *line;) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		else
			next = line + strlen(line);
		if (is_field_line(line)) {
			if (out->n > 0 && strncmp(line, "VmFlags:", 8) == 0) {
				out->v[out->n - 1].flags |= parse_vm_flags(line + 8);
				out->v[out->n - 1].uffd_wp = strstr(line + 8, " uw") != NULL;
			}
			line = next;
			continue;
		}
		unsigned long long start, end, off, ino;
		unsigned maj, min;
		char perms[8];
		int consumed = 0;
		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj, &min, &ino,
			   &consumed) < 7) {
			free(text);
			return fail(e, "cannot parse %s", path);
		}
		const char *name = line + consumed;
		struct vma v;
		memset(&v, 0, sizeof v);
		v.start = start;
		v.end = end;
		v.pgoff = off;
		v.dev = makedev(maj, min);
		v.ino = ino;
		v.prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
			 (perms[2] == 'x' ? PROT_EXEC : 0);
		int shared = perms[3] == 's';
		if (shared)
			v.flags |= VOS_VMA_SHARED;
		snprintf(v.path, sizeof v.path, "%s", name);
		v.kind = classify(&v, shared, name);
		if (v.kind == VOS_VMA_FILE) {
			int deleted = ends_with(name, " (deleted)");
			v.file_id = file_index(md, v.dev, v.ino, name, deleted);
			add_range(&md->files[v.file_id], v.pgoff, v.end - v.start);
		} else if (v.kind == VOS_VMA_SHMEM) {
			v.file_id = shm_id_for(md, v.dev, v.ino);
		}
		out->v = xrealloc(out->v, (size_t)(out->n + 1) * sizeof *out->v);
		out->v[out->n++] = v;
		line = next;
	}
	free(text);
	return 0;
}

void put_vmas(const struct vma_list *l, struct buf *b)
{
	buf_u32(b, (uint32_t)l->n);
	for (int i = 0; i < l->n; i++) {
		const struct vma *v = &l->v[i];
		buf_u64(b, v->start);
		buf_u64(b, v->end);
		buf_u64(b, v->pgoff);
		buf_u32(b, v->prot);
		buf_u32(b, v->flags);
		buf_u32(b, v->kind);
		buf_u32(b, v->file_id);
		buf_str(b, v->path);
	}
}

/* ---- page content ---- */

#define BATCH_PAGES (VOS_PAGES_CHUNK / PAGE)
#define BATCH_ENTRIES ((int)BATCH_PAGES + 256)

/* Pages on their way into one record: data pages (read from the process, one entry each) and
 * runs of kept pages (live migration: the target has them already; no data). */
struct page_batch {
	uint32_t rec_type;   /* VOS_REC_PAGES, or VOS_REC_PRECOPY */
	uint32_t owner_kind; /* 0: process pages, 1: shared memory object */
	uint32_t owner;      /* pid or shm id */
	struct {
		uint64_t addr; /* where the page goes (address, or offset in the object) */
		uint32_t npages;
		uint32_t kept;
	} ent[BATCH_ENTRIES];
	int nent;
	int ndata;
	uint8_t *data; /* ndata pages, in entry order */
};

struct page_batch *page_batch_new(uint32_t rec_type, uint32_t owner_kind, uint32_t owner, struct err *e)
{
	struct page_batch *b = xmalloc(sizeof *b);
	b->data = mmap(NULL, VOS_PAGES_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->data == MAP_FAILED) {
		free(b);
		fail(e, "out of memory for the page buffer");
		return NULL;
	}
	b->rec_type = rec_type;
	b->owner_kind = owner_kind;
	b->owner = owner;
	b->nent = b->ndata = 0;
	return b;
}

void page_batch_free(struct page_batch *b)
{
	if (!b)
		return;
	munmap(b->data, VOS_PAGES_CHUNK);
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

/* Writes the batch as one record: runs of data pages, zero pages and kept pages. */
int page_batch_flush(struct page_batch *b, struct mem_dump *md, struct image_writer *w, struct err *e)
{
	if (b->nent == 0)
		return 0;
	struct vos_pages_head head = {b->owner_kind, b->owner};
	/* At most one header and one data part per entry, plus the record head. */
	struct iovec *parts = xmalloc((size_t)(2 * b->nent + 1) * sizeof *parts);
	struct vos_page_run *runs = xmalloc((size_t)b->nent * sizeof *runs);
	int np = 0, nr = 0, slot = 0;
	parts[np++] = (struct iovec){&head, sizeof head};
	for (int i = 0; i < b->nent;) {
		if (b->ent[i].kept) {
			runs[nr] = (struct vos_page_run){b->ent[i].addr, b->ent[i].npages, VOS_RUN_KEPT};
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

int page_batch_add(struct page_batch *b, pid_t pid, int mem_fd, const struct vma *v, uint64_t src, uint64_t dst_addr,
		   int count, struct mem_dump *md, struct image_writer *w, struct err *e)
{
	while (count > 0) {
		int room = (int)BATCH_PAGES - b->ndata;
		if (BATCH_ENTRIES - b->nent < room)
			room = BATCH_ENTRIES - b->nent;
		int take = count < room ? count : room;
		if (read_pages(pid, mem_fd, v, src, take, b->data + (size_t)b->ndata * PAGE, e) < 0)
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

/* Which pages of the area to save: 1 for each page to take. */
static int wanted_pages(int pagemap_fd, const struct vma *v, uint8_t *want, struct err *e)
{
	uint64_t npages = (v->end - v->start) / PAGE;
	uint64_t *pm = xmalloc((size_t)npages * 8);
	if (pread_full(pagemap_fd, pm, (size_t)npages * 8, (v->start / PAGE) * 8) < 0) {
		free(pm);
		return fail(e, "cannot read the page map of %s: %s", v->path, errno ? strerror(errno) : "short read");
	}
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t ent = pm[i];
		int touched = (ent & (PM_PRESENT | PM_SWAPPED)) != 0;
		if (v->kind == VOS_VMA_FILE)
			want[i] = touched && !(ent & PM_FILE); /* changed by the process (copy-on-write) */
		else
			want[i] = (uint8_t)touched;
	}
	free(pm);
	return 0;
}

static int dump_area(pid_t pid, int mem_fd, int pagemap_fd, const struct vma *v, struct page_batch *b,
		     struct mem_dump *md, struct dirty_proc *tracked, struct image_writer *w, struct err *e)
{
	uint64_t npages = (v->end - v->start) / PAGE;
	uint8_t *want = xmalloc((size_t)npages);
	uint8_t *keep = NULL;
	if (v->kind == VOS_VMA_VDSO || v->kind == VOS_VMA_SHMEM) {
		memset(want, 1, (size_t)npages); /* small, or shared: all of it */
	} else if (wanted_pages(pagemap_fd, v, want, e) < 0) {
		free(want);
		return -1;
	} else if (tracked) {
		keep = xcalloc((size_t)npages, 1);
		dirty_kept(tracked, pagemap_fd, v, want, keep);
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
	for (int i = 0; i < l->n && rc == 0; i++) {
		const struct vma *v = &l->v[i];
		if (v->kind == VOS_VMA_ANON || v->kind == VOS_VMA_FILE || v->kind == VOS_VMA_VDSO)
			rc = dump_area(pid, mem_fd, pagemap_fd, v, b, md, tracked, w, e);
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
		rc = dump_area(pid, mem_fd, pagemap_fd, v, b, md, NULL, w, e);
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

/* ---- mapped files, after the pod runs again ---- */

static int cmp_range(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	return (x[0] > y[0]) - (x[0] < y[0]);
}

static void merge_ranges(struct mapped_file *f, uint64_t file_size)
{
	qsort(f->ranges, (size_t)f->nranges, sizeof *f->ranges, cmp_range);
	int n = 0;
	for (int i = 0; i < f->nranges; i++) {
		uint64_t off = f->ranges[i][0], end = off + f->ranges[i][1];
		if (end > file_size)
			end = file_size; /* a mapping may reach past the end of the file */
		if (off >= end)
			continue;
		if (n > 0 && off <= f->ranges[n - 1][0] + f->ranges[n - 1][1]) {
			uint64_t prev_end = f->ranges[n - 1][0] + f->ranges[n - 1][1];
			if (end > prev_end)
				f->ranges[n - 1][1] = end - f->ranges[n - 1][0];
		} else {
			f->ranges[n][0] = off;
			f->ranges[n][1] = end - off;
			n++;
		}
	}
	f->nranges = n;
}

static int write_filedata(struct image_writer *w, uint32_t id, uint64_t off, const void *data, size_t len,
			  struct err *e)
{
	struct {
		uint32_t id, pad;
		uint64_t offset;
	} head = {id, 0, off};
	struct iovec parts[2] = {{&head, sizeof head}, {(void *)data, len}};
	return iw_record(w, VOS_REC_FILEDATA, parts, 2, e);
}

/* A regular file: content of its mapped ranges, read from the file itself. */
static int dump_file_content(struct mapped_file *f, uint32_t id, struct image_writer *w, struct hash64 *h,
			     uint64_t *size, int64_t *mtime, struct err *e)
{
	const char *path = f->path;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return fail(e, "cannot read %s, mapped by the pod: %s", path, strerror(errno));
	}
	if (st.st_dev != f->dev || st.st_ino != f->ino) {
		close(fd);
		return fail(e, "%s changed while the checkpoint was taken (it was replaced on disk)", path);
	}
	*size = (uint64_t)st.st_size;
	*mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	merge_ranges(f, *size);
	size_t chunk = VOS_PAGES_CHUNK;
	uint8_t *buf = xmalloc(chunk);
	int rc = 0;
	for (int i = 0; i < f->nranges && rc == 0; i++) {
		for (uint64_t off = f->ranges[i][0]; off < f->ranges[i][0] + f->ranges[i][1] && rc == 0;) {
			uint64_t left = f->ranges[i][0] + f->ranges[i][1] - off;
			size_t n = left < chunk ? (size_t)left : chunk;
			if (pread_full(fd, buf, n, off) < 0) {
				rc = fail(e, "cannot read %s: %s", path, errno ? strerror(errno) : "it got shorter");
				break;
			}
			hash64_update(h, &off, sizeof off);
			hash64_update(h, buf, n);
			rc = write_filedata(w, id, off, buf, n, e);
			off += n;
		}
	}
	free(buf);
	close(fd);
	return rc;
}

int dump_mapped_files(struct mem_dump *md, struct image_writer *w, struct err *e)
{
	for (int i = 0; i < md->nfiles; i++) {
		struct mapped_file *f = &md->files[i];
		struct hash64 h;
		hash64_init(&h, 0);
		uint64_t size = 0;
		int64_t mtime = 0;
		if (f->deleted) {
			struct reader r;
			reader_init(&r, f->captured.data, f->captured.len);
			while (reader_left(&r) > 0) {
				uint64_t off = rd_u64(&r);
				uint32_t len;
				const void *data = rd_bytes(&r, &len);
				if (r.bad)
					break;
				if (off + len > size)
					size = off + len;
				if (write_filedata(w, (uint32_t)i, off, data, len, e) < 0)
					return -1;
			}
		} else if (dump_file_content(f, (uint32_t)i, w, &h, &size, &mtime, e) < 0) {
			return -1;
		}
		struct buf b;
		buf_init(&b);
		buf_u32(&b, (uint32_t)i);
		buf_u32(&b, (uint32_t)f->deleted);
		buf_u64(&b, size);
		buf_i64(&b, mtime);
		buf_u64(&b, f->deleted ? 0 : hash64_final(&h));
		buf_str(&b, f->path);
		buf_u32(&b, (uint32_t)f->nranges);
		for (int k = 0; k < f->nranges; k++) {
			buf_u64(&b, f->ranges[k][0]);
			buf_u64(&b, f->ranges[k][1]);
		}
		int rc = iw_record1(w, VOS_REC_FILE, b.data, b.len, e);
		buf_free(&b);
		if (rc < 0)
			return -1;
	}
	return 0;
}

void vma_list_free(struct vma_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void mem_dump_free(struct mem_dump *md)
{
	for (int i = 0; i < md->nfiles; i++) {
		free(md->files[i].ranges);
		buf_free(&md->files[i].captured);
	}
	free(md->files);
	free(md->shms);
	memset(md, 0, sizeof *md);
}
