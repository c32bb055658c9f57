/*
 * Which pages a running pod writes, for live migration (iterative pre-copy).
 *
 * This kernel has no soft-dirty bits; it has userfaultfd write-protection in asynchronous mode
 * (the kernel resolves the fault itself and marks the page written) and the PAGEMAP_SCAN ioctl,
 * which lists written pages and protects them again in one step. A userfaultfd acts on the mm
 * of the process that made it, so each process makes one during a short freeze (the runtime
 * does it in its signal handler) and pod init takes a copy with pidfd_getfd.
 *
 * Each round registers the areas not yet registered (new mappings), then sends the pages
 * written since the previous round (in the first: every page) as PRECOPY records and notes
 * them as sent. In the final, frozen image a page becomes a KEPT run only when all of these
 * hold: the process is the same (pid and start time), its area is still registered with our
 * userfaultfd (an area unmapped, remapped or moved is not), the page was sent, and the scan
 * does not show it written (or replaced by the zero page) since. Anything else is sent again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common/range-set.h"
#include "dump.h"

/* Kernel interfaces newer than this system's headers (Linux 6.7 UAPI values). */
#define UFFD_FEATURE_WP_UNPOPULATED_ (1ull << 13)
#define UFFD_FEATURE_WP_ASYNC_ (1ull << 15)
struct pm_scan_arg_ {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct page_region_ {
	uint64_t start, end, categories;
};
#define PAGEMAP_SCAN_ _IOWR('f', 16, struct pm_scan_arg_)
#define PM_SCAN_WP_MATCHING_ (1ull << 0)
#define PM_SCAN_CHECK_WPASYNC_ (1ull << 1)
#define PAGE_IS_WRITTEN_ (1ull << 1)
#define PAGE_IS_FILE_ (1ull << 2)
#define PAGE_IS_PRESENT_ (1ull << 3)
#define PAGE_IS_SWAPPED_ (1ull << 4)
#define PAGE_IS_PFNZERO_ (1ull << 5)

#define SCAN_REGIONS 1024

/* ---- per process ---- */

struct dirty_proc {
	pid_t pid;
	uint64_t start_time; /* /proc/PID/stat field 22: a reused pid is another process */
	int uffd;
	int stale; /* its userfaultfd no longer reaches its memory (it ran exec): take a new one */
	struct range_set sent; /* the pages sent in rounds, or those of the latest image */
	/* Incremental checkpoints: the areas the latest image watches again (dirty_rearm), whose
	 * written pages are write-protected again just before the next freeze. */
	struct range_set armed;
};

static uint64_t start_time_of(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	char *text = read_text_file(path, NULL);
	if (!text)
		return 0;
	uint64_t t = 0;
	const char *p = strrchr(text, ')'); /* the command name may hold spaces and parentheses */
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		t = strtoull(p + 1, NULL, 10);
	free(text);
	return t;
}

static int same_process(const struct dirty_proc *p)
{
	return p->uffd >= 0 && start_time_of(p->pid) == p->start_time && p->start_time != 0;
}

/* Registers [start, end) for write-protection with our userfaultfd. Also the check that an area
 * already registered is registered with ours: another userfaultfd's area refuses (EBUSY). */
static int register_wp(int uffd, uint64_t start, uint64_t end)
{
	struct uffdio_register r;
	memset(&r, 0, sizeof r);
	r.range.start = start;
	r.range.len = end - start;
	r.mode = UFFDIO_REGISTER_MODE_WP;
	return ioctl(uffd, UFFDIO_REGISTER, &r);
}

/* Which pages a scan matches (all of `required`, one of `anyof` if set) and the categories it
 * reports (regions split where they differ). */
struct scan_masks {
	uint64_t required, anyof, returned;
};

/*
 * Pages written since they were last protected, among those that hold something (present or
 * swapped). The scan calls an unpopulated page "written" too (it is not protected), and
 * protecting it would leave a uffd-wp marker there: later scans call markers swapped, so every
 * reserved, never touched page (a JVM's heap, V8's cage, Go's arenas: gigabytes) would be read
 * as zeros into each image, and their page tables kept. An unpopulated page needs no marker: when
 * the program first touches it, it shows as written.
 */
static const struct scan_masks written_real = {PAGE_IS_WRITTEN_, PAGE_IS_PRESENT_ | PAGE_IS_SWAPPED_,
					       PAGE_IS_WRITTEN_ | PAGE_IS_PRESENT_ | PAGE_IS_SWAPPED_};

/* PAGEMAP_SCAN over [start, end); calls fn for each region of matching pages with its
 * categories. -1: the scan failed (errno); -2: fn failed. */
static int scan(int pagemap_fd, uint64_t start, uint64_t end, uint64_t flags, struct scan_masks m,
		int (*fn)(void *ctx, uint64_t start, uint64_t end, uint64_t categories), void *ctx)
{
	struct page_region_ regions[SCAN_REGIONS];
	while (start < end) {
		struct pm_scan_arg_ a;
		memset(&a, 0, sizeof a);
		a.size = sizeof a;
		a.flags = flags;
		a.start = start;
		a.end = end;
		a.vec = (uint64_t)(uintptr_t)regions;
		a.vec_len = SCAN_REGIONS;
		a.category_mask = m.required;
		a.category_anyof_mask = m.anyof;
		a.return_mask = m.returned;
		long n = ioctl(pagemap_fd, PAGEMAP_SCAN_, &a);
		if (n < 0)
			return -1;
		for (long i = 0; i < n; i++)
			if (fn(ctx, regions[i].start, regions[i].end, regions[i].categories) < 0)
				return -2;
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	return 0;
}

/* Which kernel interfaces are there: PAGEMAP_SCAN on our own memory, uffd write-protect. */
static int probe(struct err *e)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(e, "cannot open /proc/self/pagemap: %s", strerror(errno));
	static uint8_t page[PAGE] __attribute__((aligned(PAGE))); /* probe target only */
	struct page_region_ r;
	struct pm_scan_arg_ a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.start = (uint64_t)(uintptr_t)page;
	a.end = a.start + PAGE;
	a.vec = (uint64_t)(uintptr_t)&r;
	a.vec_len = 1;
	a.category_anyof_mask = PAGE_IS_WRITTEN_;
	a.return_mask = PAGE_IS_WRITTEN_;
	long n = ioctl(fd, PAGEMAP_SCAN_, &a);
	int err = errno;
	close(fd);
	if (n < 0)
		return fail(e, "this kernel cannot list written pages (PAGEMAP_SCAN: %s)", strerror(err));
	return 0;
}

static int enable_wp_async(int uffd, struct err *e)
{
	struct uffdio_api api;
	memset(&api, 0, sizeof api);
	api.api = UFFD_API;
	api.features = UFFD_FEATURE_WP_ASYNC_ | UFFD_FEATURE_WP_UNPOPULATED_;
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		return fail(e, "this kernel cannot track written pages (userfaultfd asynchronous write-protect: %s)",
			    strerror(errno));
	return 0;
}

int dirty_available(struct err *e)
{
	/* Test hook: a pod started with this set behaves as on a kernel without the interfaces.
	 * Safe in a shipped build: pod init's environment is what its session was started with, by
	 * the user (the agent's or the session's own; no peer can set it), and without dirty-page
	 * tracking every checkpoint is simply whole, as on such a kernel: nothing is skipped. */
	if (getenv("VOS_TEST_NO_DIRTY_TRACKING"))
		return fail(e, "dirty-page tracking is turned off (VOS_TEST_NO_DIRTY_TRACKING)");
	return probe(e);
}

int dirty_probe_full(struct err *e)
{
	if (dirty_available(e) < 0)
		return -1;
	/* A userfaultfd of our own (user-mode faults only: needs no privilege where
	 * vm.unprivileged_userfaultfd is 0), then the features the pods' trackers ask for. */
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		return fail(e, "this kernel does not let this user make a userfaultfd (userfaultfd: %s)", strerror(errno));
	int rc = enable_wp_async(uffd, e);
	close(uffd);
	return rc;
}

int dirty_start(struct pod *pod, struct dirty_tracker *t, struct err *e)
{
	memset(t, 0, sizeof *t);
	if (dirty_available(e) < 0)
		return -1;
	struct freeze f;
	if (freeze_pod(pod, &f, e) < 0)
		return -1;
	int rc = 0;
	t->procs = xcalloc((size_t)f.nprocs, sizeof *t->procs);
	for (int i = 0; i < f.nprocs && rc == 0; i++) {
		struct dirty_proc *p = &t->procs[t->nprocs];
		p->pid = f.procs[i].pid;
		p->uffd = freeze_take_uffd(pod, &f, &f.procs[i], e);
		if (p->uffd < 0) {
			rc = -1;
			break;
		}
		t->nprocs++;
		p->start_time = start_time_of(p->pid);
		rc = enable_wp_async(p->uffd, e);
	}
	thaw_pod(&f);
	freeze_free(&f);
	if (rc < 0)
		dirty_stop(t);
	return rc;
}

/* ---- a round ---- */

struct round_ctx {
	struct dirty_proc *p;
	const struct vma *v;
	int mem_fd;
	struct page_batch *b;
	struct mem_dump *md;
	struct image_writer *w;
	struct err *e;
};

/* Pages [start, end) of the area were written: send them if they belong in an image (touched;
 * in a private file mapping, changed by the process: not the file's page), as dump_area does. */
static int send_written(void *ctx, uint64_t start, uint64_t end, uint64_t categories)
{
	struct round_ctx *c = ctx;
	int touched = (categories & (PAGE_IS_PRESENT_ | PAGE_IS_SWAPPED_)) != 0;
	if (!touched || (c->v->kind == VOS_VMA_FILE && (categories & PAGE_IS_FILE_))) {
		range_set_remove(&c->p->sent, start, end); /* dropped, or the file's again */
		return 0;
	}
	range_set_add(&c->p->sent, start, end);
	return page_batch_add(c->b, c->p->pid, c->mem_fd, c->v, start, start, (int)((end - start) / PAGE), c->md, c->w, c->e);
}

static int round_process(struct dirty_proc *p, struct image_writer *w, struct mem_dump *scratch, struct err *e)
{
	struct vma_list l;
	if (collect_vmas(p->pid, scratch, &l, e) < 0)
		return -2; /* gone meanwhile */
	int pagemap_fd, mem_fd;
	if (open_process_memory(p->pid, &pagemap_fd, &mem_fd, e) < 0) {
		vma_list_free(&l);
		return -2;
	}
	struct page_batch *b = page_batch_new(VOS_REC_PRECOPY, 0, (uint32_t)p->pid, e);
	int rc = b ? 0 : -1;
	for (int i = 0; i < l.n && rc == 0; i++) {
		const struct vma *v = &l.v[i];
		if (v->kind != VOS_VMA_ANON && v->kind != VOS_VMA_FILE)
			continue;
		if (register_wp(p->uffd, v->start, v->end) < 0)
			continue; /* not ours to track (the program's own userfaultfd, a special area) */
		if (!v->uffd_wp)
			range_set_remove(&p->sent, v->start, v->end); /* a new area: what was here before is gone */
		struct round_ctx c = {p, v, mem_fd, b, scratch, w, e};
		struct scan_masks written = written_real;
		written.returned |= PAGE_IS_FILE_;
		/* A failed scan (the area went away under us) is for the next round or the final image
		 * to see; a failed write is the end. */
		if (scan(pagemap_fd, v->start, v->end, PM_SCAN_WP_MATCHING_, written, send_written, &c) == -2)
			rc = -1;
	}
	if (rc == 0)
		rc = page_batch_flush(b, scratch, w, e);
	page_batch_free(b);
	close(pagemap_fd);
	close(mem_fd);
	vma_list_free(&l);
	return rc;
}

int dirty_round(struct dirty_tracker *t, struct image_writer *w, struct err *e)
{
	struct mem_dump scratch;
	memset(&scratch, 0, sizeof scratch);
	int rc = 0;
	for (int i = 0; i < t->nprocs && rc == 0; i++) {
		struct dirty_proc *p = &t->procs[i];
		if (!same_process(p))
			continue;
		int r = round_process(p, w, &scratch, e);
		if (r == -2)
			continue;
		rc = r;
	}
	t->rounds++;
	t->round_pages = scratch.pages;
	t->sent_pages += scratch.pages;
	mem_dump_free(&scratch);
	return rc;
}

/* ---- the final image ---- */

struct kept_ctx {
	const struct vma *v;
	uint8_t *keep;
};

static int not_kept(void *ctx, uint64_t start, uint64_t end, uint64_t categories)
{
	(void)categories;
	struct kept_ctx *c = ctx;
	memset(c->keep + (start - c->v->start) / PAGE, 0, (size_t)((end - start) / PAGE));
	return 0;
}

pid_t dirty_pid(const struct dirty_tracker *t, int i)
{
	return t->procs[i].pid;
}

struct dirty_proc *dirty_find(struct dirty_tracker *t, pid_t pid)
{
	for (int i = 0; i < t->nprocs; i++)
		if (t->procs[i].pid == pid)
			return same_process(&t->procs[i]) ? &t->procs[i] : NULL;
	return NULL;
}

static int ignore_region(void *ctx, uint64_t start, uint64_t end, uint64_t categories)
{
	(void)ctx;
	(void)start;
	(void)end;
	(void)categories;
	return 0;
}

int dirty_kept(struct dirty_proc *p, int pagemap_fd, const struct vma *v, const uint8_t *want, uint8_t *keep, int protect)
{
	uint64_t npages = (v->end - v->start) / PAGE;
	memset(keep, 0, (size_t)npages);
	if (!v->uffd_wp || register_wp(p->uffd, v->start, v->end) < 0)
		return 0; /* untracked: everything goes */
	int any = 0;
	for (size_t k = range_set_from(&p->sent, v->start); k < p->sent.n && p->sent.r[k].lo < v->end; k++) {
		uint64_t from = p->sent.r[k].lo > v->start ? (p->sent.r[k].lo - v->start) / PAGE : 0;
		uint64_t to = p->sent.r[k].hi < v->end ? (p->sent.r[k].hi - v->start) / PAGE : npages;
		for (uint64_t i = from; i < to; i++) {
			keep[i] = want[i];
			any |= keep[i];
		}
	}
	if (!any)
		return 0;
	struct kept_ctx c = {v, keep};
	/* In a private file mapping, a page of the process's own that was write-protected and then
	 * discarded (MADV_DONTNEED) leaves a uffd-wp marker, which the scan calls swapped and not
	 * written, while the process sees the file's page there now: a swapped page of such an area
	 * is sent again (a real one too: the two look alike, and sending is never wrong). */
	uint64_t gone = v->kind == VOS_VMA_FILE ? PAGE_IS_SWAPPED_ : 0;
	struct scan_masks changed = {0, PAGE_IS_WRITTEN_ | PAGE_IS_PFNZERO_ | gone, PAGE_IS_WRITTEN_ | PAGE_IS_PFNZERO_ | gone};
	if (scan(pagemap_fd, v->start, v->end, PM_SCAN_CHECK_WPASYNC_, changed, not_kept, &c) < 0) {
		memset(keep, 0, (size_t)npages); /* cannot tell: send it all */
		return 0;
	}
	/* With protect, what was written is protected now (a walk of its own: the one above matches
	 * unpopulated pages too, which must not be protected, see written_real), and dirty_rearm
	 * need not walk the area again. */
	if (protect && scan(pagemap_fd, v->start, v->end, PM_SCAN_WP_MATCHING_, written_real, ignore_region, NULL) < 0)
		return 0;
	return protect;
}

/* ---- incremental checkpoints: tracking that lasts from one image to the next ---- */

void dirty_prune(const struct freeze *f, struct dirty_tracker *t)
{
	int n = 0;
	for (int i = 0; i < t->nprocs; i++) {
		struct dirty_proc *p = &t->procs[i];
		int frozen = 0;
		for (int k = 0; k < f->nprocs && !frozen; k++)
			frozen = f->procs[k].pid == p->pid;
		if (frozen && !p->stale && same_process(p)) {
			t->procs[n++] = *p;
			continue;
		}
		if (p->uffd >= 0)
			close(p->uffd); /* gone, another process with its pid, or its memory replaced by exec */
		range_set_free(&p->sent);
		range_set_free(&p->armed);
	}
	t->nprocs = n;
}

/* A process just followed: every area watched from now, its pages those of the image. */
static int arm_process(struct dirty_proc *p, struct err *e)
{
	struct mem_dump scratch;
	memset(&scratch, 0, sizeof scratch);
	struct vma_list l;
	int rc = collect_vmas(p->pid, &scratch, &l, e);
	int pagemap_fd = -1, mem_fd = -1;
	if (rc == 0 && (rc = open_process_memory(p->pid, &pagemap_fd, &mem_fd, e)) < 0)
		vma_list_free(&l);
	for (int i = 0; i < l.n && rc == 0; i++) {
		const struct vma *v = &l.v[i];
		if (v->kind != VOS_VMA_ANON && v->kind != VOS_VMA_FILE)
			continue;
		uint8_t *want = xmalloc((size_t)((v->end - v->start) / PAGE));
		rc = wanted_pages(pagemap_fd, v, want, e); /* as the image just written took them */
		if (rc == 0)
			dirty_rearm(p, pagemap_fd, v, want, 0);
		free(want);
	}
	if (pagemap_fd >= 0) {
		close(pagemap_fd);
		close(mem_fd);
		vma_list_free(&l);
	}
	mem_dump_free(&scratch);
	return rc;
}

int dirty_adopt(struct pod *pod, struct freeze *f, struct dirty_tracker *t, struct err *e)
{
	t->procs = xrealloc(t->procs, (size_t)(t->nprocs + f->nprocs) * sizeof *t->procs);
	t->adopted = 0;
	for (int k = 0; k < f->nprocs; k++) {
		int known = 0;
		for (int i = 0; i < t->nprocs && !known; i++)
			known = t->procs[i].pid == f->procs[k].pid;
		if (known)
			continue;
		struct dirty_proc *p = &t->procs[t->nprocs];
		memset(p, 0, sizeof *p);
		p->pid = f->procs[k].pid;
		p->uffd = freeze_take_uffd(pod, f, &f->procs[k], e);
		if (p->uffd < 0)
			return -1;
		t->nprocs++;
		p->start_time = start_time_of(p->pid);
		if (enable_wp_async(p->uffd, e) < 0 || arm_process(p, e) < 0)
			return -1;
		t->adopted++;
	}
	return 0;
}

struct want_ctx {
	const struct vma *v;
	uint8_t *want;
};

static int mark_wanted(void *ctx, uint64_t start, uint64_t end, uint64_t categories)
{
	struct want_ctx *c = ctx;
	if (c->v->kind == VOS_VMA_FILE && (categories & PAGE_IS_FILE_))
		return 0; /* the file's page, not one the process changed */
	memset(c->want + (start - c->v->start) / PAGE, 1, (size_t)((end - start) / PAGE));
	return 0;
}

int dirty_wanted(int pagemap_fd, const struct vma *v, uint8_t *want)
{
	memset(want, 0, (size_t)((v->end - v->start) / PAGE));
	struct want_ctx c = {v, want};
	/* Whether a page is the file's costs the kernel a look at each page: only where it matters. */
	uint64_t file = v->kind == VOS_VMA_FILE ? PAGE_IS_FILE_ : 0;
	struct scan_masks touched = {0, PAGE_IS_PRESENT_ | PAGE_IS_SWAPPED_, PAGE_IS_PRESENT_ | PAGE_IS_SWAPPED_ | file};
	return scan(pagemap_fd, v->start, v->end, 0, touched, mark_wanted, &c) < 0 ? -1 : 0;
}

void dirty_rearm(struct dirty_proc *p, int pagemap_fd, const struct vma *v, const uint8_t *want, int protected)
{
	if (register_wp(p->uffd, v->start, v->end) < 0) {
		range_set_remove(&p->sent, v->start, v->end);
		/* The program's own userfaultfd (EBUSY) or an area it cannot watch (EINVAL): this area
		 * is written whole each time. Anything else: our userfaultfd lost the process's memory. */
		if (errno != EBUSY && errno != EINVAL)
			p->stale = 1;
		return;
	}
	/* Write-protect every page written so far: from here on a write shows. A scan that fails
	 * leaves the area out of `sent`, so the next image has all of it. */
	if (!protected && scan(pagemap_fd, v->start, v->end, PM_SCAN_WP_MATCHING_, written_real, ignore_region, NULL) < 0) {
		range_set_remove(&p->sent, v->start, v->end);
		return;
	}
	range_set_add(&p->armed, v->start, v->end);
	/* Within the area, `sent` becomes the pages of this image: its runs of wanted pages. */
	uint64_t npages = (v->end - v->start) / PAGE;
	struct range *runs = NULL;
	size_t n = 0, cap = 0;
	for (uint64_t i = 0; i < npages;) {
		if (!want[i]) {
			i++;
			continue;
		}
		uint64_t j = i;
		while (j < npages && want[j])
			j++;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			runs = xrealloc(runs, cap * sizeof *runs);
		}
		runs[n++] = (struct range){v->start + i * PAGE, v->start + j * PAGE};
		i = j;
	}
	range_set_splice(&p->sent, v->start, v->end, runs, n);
	free(runs);
}

/* Pages written since the latest image: the coming image has them as data, not as its parent's. */
static int written_since(void *ctx, uint64_t start, uint64_t end, uint64_t categories)
{
	(void)categories;
	range_set_remove(ctx, start, end);
	return 0;
}

void dirty_protect_before_freeze(struct dirty_tracker *t)
{
	for (int i = 0; i < t->nprocs; i++) {
		struct dirty_proc *p = &t->procs[i];
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/pagemap", (int)p->pid);
		int pagemap_fd = p->armed.n && same_process(p) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
		/* (Gone meanwhile: the freeze finds it gone too.) An area unmapped or replaced since is
		 * no longer registered: the kernel skips it, and the image takes it whole. A walk that
		 * fails leaves the pages it did not see out of `sent` (written, as far as it knows). */
		for (size_t k = 0; k < p->armed.n && pagemap_fd >= 0; k++) {
			const struct range *r = &p->armed.r[k];
			if (scan(pagemap_fd, r->lo, r->hi, PM_SCAN_WP_MATCHING_, written_real, written_since, &p->sent) < 0)
				range_set_remove(&p->sent, r->lo, r->hi);
		}
		if (pagemap_fd >= 0)
			close(pagemap_fd);
		range_set_free(&p->armed);
	}
}

void dirty_stop(struct dirty_tracker *t)
{
	for (int i = 0; i < t->nprocs; i++) {
		if (t->procs[i].uffd >= 0)
			close(t->procs[i].uffd);
		range_set_free(&t->procs[i].sent);
		range_set_free(&t->procs[i].armed);
	}
	free(t->procs);
	memset(t, 0, sizeof *t);
}
