/*
 * One restoring process, from its creation (with its own pid) to the jump into the blob:
 * session and process group (in step with the others, through the sync page), its children,
 * its fds at their numbers, working directory, limits, signal handlers, and the blob's plan.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "../common/buf.h"
#include "restore.h"
#include "vos-control.h"
#include "vos-image.h"

void restore_fail(struct restore_ctx *c, const char *fmt, ...)
{
	struct restore_sync *s = c->sync;
	if (__atomic_exchange_n(&s->failed, 1, __ATOMIC_SEQ_CST) == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->fail_text, sizeof s->fail_text, fmt, ap);
		va_end(ap);
		s->fail_pid = getpid();
	}
	syscall(SYS_futex, &s->prepared, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
	_exit(1);
}

/* Waits until pod init publishes stage `want` (or gives up on the restore). */
static void wait_stage(struct restore_ctx *c, uint32_t want)
{
	for (;;) {
		uint32_t stage = __atomic_load_n(&c->sync->stage, __ATOMIC_SEQ_CST);
		if (stage == STAGE_ABORT)
			_exit(1);
		if (stage >= want)
			return;
		struct timespec ts = {1, 0};
		syscall(SYS_futex, &c->sync->stage, FUTEX_WAIT, stage, &ts, NULL, 0);
	}
}

static void count(uint32_t *field)
{
	__atomic_add_fetch(field, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, field, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

static int object_index(struct restore_ctx *c, uint32_t id)
{
	for (int i = 0; i < c->img.nobjects; i++)
		if (c->img.objects[i].id == id)
			return i;
	return -1;
}

static int max_fd(const struct img_process *p)
{
	int m = 2;
	for (uint32_t i = 0; i < p->nfds; i++)
		if (p->fds[i].fd > m)
			m = p->fds[i].fd;
	return m;
}

/* A descriptor the blob needs, above every fd number of the process. */
static int keep(struct restore_ctx *c, int fd, int above)
{
	int k = fcntl(fd, F_DUPFD_CLOEXEC, above);
	if (k < 0)
		restore_fail(c, "process %d: out of file descriptors: %s", (int)getpid(), strerror(errno));
	return k;
}

static int is_kept(int fd, const int *kept, int nkept)
{
	for (int i = 0; i < nkept; i++)
		if (kept[i] == fd)
			return 1;
	return 0;
}

static void place_fds(struct restore_ctx *c, struct img_process *p, const int *kept, int nkept)
{
	for (uint32_t i = 0; i < p->nfds; i++) {
		int idx = object_index(c, p->fds[i].object);
		if (idx < 0 || c->object_fd[idx] < 0)
			restore_fail(c, "process %d: fd %d refers to an unknown open file", (int)p->pid, p->fds[i].fd);
		if (dup2(c->object_fd[idx], p->fds[i].fd) < 0)
			restore_fail(c, "process %d: cannot place fd %d: %s", (int)p->pid, p->fds[i].fd, strerror(errno));
		if (p->fds[i].cloexec)
			fcntl(p->fds[i].fd, F_SETFD, FD_CLOEXEC);
	}
	/* Everything else goes: pod init's own descriptors, the object table. */
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		restore_fail(c, "cannot list /proc/self/fd: %s", strerror(errno));
	int dfd = dirfd(d);
	int *close_list = NULL, n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		int fd = atoi(de->d_name);
		if (fd == dfd || is_kept(fd, kept, nkept))
			continue;
		int mine = 0;
		for (uint32_t i = 0; i < p->nfds; i++)
			mine |= p->fds[i].fd == fd;
		if (!mine) {
			close_list = xrealloc(close_list, (size_t)(n + 1) * sizeof *close_list);
			close_list[n++] = fd;
		}
	}
	closedir(d);
	for (int i = 0; i < n; i++)
		close(close_list[i]);
	free(close_list);
}

static void restore_epoll(struct restore_ctx *c, struct img_process *p)
{
	for (uint32_t i = 0; i < p->nfds; i++) {
		int idx = object_index(c, p->fds[i].object);
		struct img_object *o = &c->img.objects[idx];
		if (o->kind != VOS_OBJ_EPOLL || o->owner != p->pid || o->nepoll == 0)
			continue;
		for (uint32_t k = 0; k < o->nepoll; k++) {
			struct epoll_event ev = {.events = o->epoll[k].events, .data.u64 = o->epoll[k].data};
			if (epoll_ctl(p->fds[i].fd, EPOLL_CTL_ADD, o->epoll[k].tfd, &ev) < 0 && errno != EEXIST && errno != EBADF)
				restore_fail(c, "process %d: cannot watch fd %d again with epoll: %s", (int)p->pid,
					     o->epoll[k].tfd, strerror(errno));
		}
		o->nepoll = 0; /* once, even when several fds of this process share the epoll */
	}
}

struct kernel_sigaction {
	uint64_t handler, flags, restorer, mask;
};

static void restore_process_state(struct restore_ctx *c, struct img_process *p)
{
	if (chdir(p->cwd) < 0)
		restore_fail(c, "process %d (%s): its working directory %s is missing here: %s", (int)p->pid, p->comm, p->cwd,
			     strerror(errno));
	umask((mode_t)p->umask);
	for (uint32_t r = 0; r < p->nrlimits; r++) {
		struct rlimit rl = {p->rlimits[r][0], p->rlimits[r][1]};
		setrlimit((__rlimit_resource_t)r, &rl); /* raising a hard limit needs privilege: then keep ours */
	}
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	for (int sig = 1; sig < 65; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		struct kernel_sigaction ka = {p->sigactions[sig][0], p->sigactions[sig][1], p->sigactions[sig][2],
					      p->sigactions[sig][3]};
		if (syscall(SYS_rt_sigaction, sig, &ka, NULL, 8) < 0 && sig < 32)
			restore_fail(c, "process %d: cannot restore the handler of signal %d: %s", (int)p->pid, sig,
				     strerror(errno));
	}
	if (p->no_new_privs)
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	prctl(PR_SET_NAME, p->comm, 0, 0, 0);
}

/* ---- the plan ---- */

struct vdso_block {
	uint64_t start[3], len[3]; /* vvar, vvar_vclock, vdso (len 0: absent) */
};

static void find_vdso(const struct img_vma *v, uint32_t n, struct vdso_block *b)
{
	memset(b, 0, sizeof *b);
	for (uint32_t i = 0; i < n; i++) {
		int k = v[i].kind == VOS_VMA_VVAR ? 0 : v[i].kind == VOS_VMA_VVAR_VCLOCK ? 1 : v[i].kind == VOS_VMA_VDSO ? 2 : -1;
		if (k >= 0) {
			b->start[k] = v[i].start;
			b->len[k] = v[i].end - v[i].start;
		}
	}
}

static void add_range(struct blob_range **list, uint64_t *n, uint64_t start, uint64_t end)
{
	*list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
	(*list)[(*n)++] = (struct blob_range){start, end};
}

/* This process's current vvar/vdso, and every other mapping (to be removed by the blob). */
static void current_layout(struct restore_ctx *c, struct vdso_block *cur, struct blob_range **unmap, uint64_t *nunmap)
{
	char *text = read_text_file("/proc/self/maps", NULL);
	if (!text)
		restore_fail(c, "cannot read /proc/self/maps: %s", strerror(errno));
	memset(cur, 0, sizeof *cur);
	*unmap = NULL;
	*nunmap = 0;
	for (char *line = text; *line;) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		else
			next = line + strlen(line);
		unsigned long long s, e;
		int consumed = 0;
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &s, &e, &consumed) >= 2) {
			const char *name = consumed ? line + consumed : "";
			int k = strcmp(name, "[vvar]") == 0 ? 0 : strcmp(name, "[vvar_vclock]") == 0 ? 1 : strcmp(name, "[vdso]") == 0 ? 2 : -1;
			if (k >= 0) {
				cur->start[k] = s;
				cur->len[k] = e - s;
			} else if (strcmp(name, "[vsyscall]") != 0 && !(s >= c->hole && e <= c->hole + c->hole_size)) {
				/* The staging range stays until its pages have moved (the blob removes it then). */
				uint64_t ss = staging_start(&c->staging), se = staging_end(&c->staging);
				if (ss < se && s < se && e > ss) {
					if (s < ss)
						add_range(unmap, nunmap, s, ss);
					if (e > se)
						add_range(unmap, nunmap, se, e);
				} else {
					add_range(unmap, nunmap, s, e);
				}
			}
		}
		line = next;
	}
	free(text);
}

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
		if (last->addr + last->len == r.addr && last->zero == r.zero &&
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

/* A KEPT run: each page from where the pages sent ahead have it (or in memory, staged). */
static int add_kept(struct restore_ctx *c, struct img_process *p, struct u64map *ix, const struct img_vma *v,
		    uint64_t addr, uint64_t npages, struct run_list *runs, struct err *e)
{
	if (!ix->cap && precopy_index_build(&c->img, p->pid, ix, e) < 0)
		return -1;
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t at = addr + i * PAGE, offset;
		if (!v || at >= v->end)
			v = vma_at(p, at); /* a run of neighbouring areas' pages */
		if (!v)
			return fail(e, "the image is damaged: page %#llx of process %d lies in none of its areas", (unsigned long long)at,
				    (int)p->pid);
		int anon = v->kind == VOS_VMA_ANON;
		if (!u64map_get(ix, at, &offset))
			return fail(e, "the image is damaged: page %#llx of process %d was to be sent ahead, and was not",
				    (unsigned long long)at, (int)p->pid);
		struct staged_chunk *staged = stageable(v) && c->staging.enabled ? staging_find(&c->staging, p->pid, at) : NULL;
		if (staged) {
			staging_keep(staged, at); /* in memory already: it moves into place */
			continue;
		}
		if (offset == 0 && anon)
			continue; /* fresh anonymous memory is zero already */
		add_run(runs, (struct blob_run){at, PAGE, offset, offset == 0, 0});
	}
	return 0;
}

int collect_runs(struct restore_ctx *c, struct img_process *p, struct run_list *runs, struct err *e)
{
	runs->v = NULL;
	runs->n = 0;
	struct u64map ix = {0}; /* the pages sent ahead, built at the first KEPT run */
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
					rc = add_kept(c, p, &ix, v, h.addr, h.npages, runs, e);
				continue;
			}
			if (h.kind == VOS_RUN_ZERO)
				keep_run = keep_run && v->kind != VOS_VMA_ANON; /* fresh anonymous memory is zero already */
			if (keep_run)
				add_run(runs, (struct blob_run){h.addr, (uint64_t)h.npages * PAGE, h.kind == VOS_RUN_DATA ? h.data : 0,
								h.kind == VOS_RUN_ZERO, 0});
		}
	}
	u64map_free(&ix);
	return rc;
}

/* Bump allocator inside the zone. */
struct zone {
	uint8_t *base, *next, *end;
};

static void *zalloc(struct restore_ctx *c, struct zone *z, uint64_t size, uint64_t align)
{
	uint64_t p = ((uint64_t)(uintptr_t)z->next + align - 1) & ~(align - 1);
	if (p + size > (uint64_t)(uintptr_t)z->end)
		restore_fail(c, "internal error: the restore zone is too small");
	z->next = (uint8_t *)(uintptr_t)(p + size);
	return (void *)(uintptr_t)p;
}

/* The trampoline every thread leaves the zone through (see blob.h): machine code. */
static const uint8_t trampoline_code[] = {
	0xF0, 0x41, 0xFF, 0x4D, 0x00, /* lock decl 0(%r13)          */
	0x75, 0x07,                   /* jnz 1f                     */
	0xB8, 0x0B, 0x00, 0x00, 0x00, /* mov $__NR_munmap, %eax     */
	0x0F, 0x05,                   /* syscall (rdi, rsi: zone)   */
	0x4C, 0x89, 0xE4,             /* 1: mov %r12, %rsp (frame)  */
	0xB8, 0x0F, 0x00, 0x00, 0x00, /* mov $__NR_rt_sigreturn, %eax */
	0x0F, 0x05,                   /* syscall                    */
	0x0F, 0x0B,                   /* ud2                        */
};

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

uint64_t restore_zone_size(const struct img_process *p, uint64_t nruns)
{
	uint64_t code = ((uint64_t)(__stop_vos_blob - __start_vos_blob) + PAGE - 1) & ~(PAGE - 1);
	uint64_t data = sizeof(struct blob_plan) + (uint64_t)p->nvmas * sizeof(struct blob_area) +
			nruns * sizeof(struct blob_run) + (uint64_t)p->nthreads * sizeof(struct blob_thread) +
			p->auxv_len + 4096 /* unmap list */ * sizeof(struct blob_range) +
			((uint64_t)p->ntimers + 1) * sizeof(struct blob_timer) + 64 * sizeof(struct blob_poke) + 64 * 16;
	uint64_t stacks = (uint64_t)p->nthreads * BLOB_THREAD_STACK + BLOB_MAIN_STACK;
	return code + ((data + PAGE - 1) & ~(PAGE - 1)) + stacks + 4 * PAGE;
}

static void build_and_jump(struct restore_ctx *c, struct img_process *p, int image_fd, int exe_fd, const int *area_fd,
			   struct run_list *runs) __attribute__((noreturn));
static void build_and_jump(struct restore_ctx *c, struct img_process *p, int image_fd, int exe_fd, const int *area_fd,
			   struct run_list *runs)
{
	uint64_t zone_addr = c->hole + 3 * PAGE;
	uint64_t nstaged = staged_moves(c, p, NULL);
	uint64_t zone_size = restore_zone_size(p, runs->n + nstaged); /* a move takes less room than a run */
	if (3 * PAGE + zone_size + HOLE_TEMP_PAGES * PAGE > c->hole_size)
		restore_fail(c, "internal error: the restore hole is too small for process %d", (int)p->pid);
	/* Trampoline pages (code, counter), then the zone. */
	void *tramp = mmap((void *)(uintptr_t)c->hole, 2 * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	void *zone_mem = mmap((void *)(uintptr_t)zone_addr, zone_size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (tramp != (void *)(uintptr_t)c->hole || zone_mem != (void *)(uintptr_t)zone_addr)
		restore_fail(c, "process %d: cannot map the restore zone at %#" PRIx64 ": %s", (int)p->pid, c->hole,
			     strerror(errno));
	memcpy(tramp, trampoline_code, sizeof trampoline_code);
	uint32_t *counter = (uint32_t *)((uint8_t *)tramp + PAGE);
	*counter = p->nthreads;
	mprotect(tramp, PAGE, PROT_READ | PROT_EXEC);

	struct zone z = {zone_mem, zone_mem, (uint8_t *)zone_mem + zone_size};
	size_t code_len = (size_t)(__stop_vos_blob - __start_vos_blob);
	uint8_t *code = zalloc(c, &z, code_len, PAGE);
	memcpy(code, __start_vos_blob, code_len);
	uint64_t code_pages = (code_len + PAGE - 1) & ~(PAGE - 1);
	z.next = code + code_pages;

	struct blob_plan *plan = zalloc(c, &z, sizeof *plan, 64);
	memset(plan, 0, sizeof *plan);
	plan->self = (uint64_t)(uintptr_t)plan;
	plan->unmap_start = c->hole + 2 * PAGE; /* the sync page and the zone */
	plan->unmap_len = PAGE + zone_size;
	plan->trampoline = c->hole;
	plan->tramp_counter = c->hole + PAGE;
	plan->pid = p->pid;
	plan->image_fd = image_fd;
	plan->exe_fd = exe_fd;
	plan->sync = c->sync;
	plan->start_code = p->start_code;
	plan->end_code = p->end_code;
	plan->start_data = p->start_data;
	plan->end_data = p->end_data;
	plan->start_brk = p->start_brk;
	plan->brk = p->brk;
	plan->start_stack = p->start_stack;
	plan->arg_start = p->arg_start;
	plan->arg_end = p->arg_end;
	plan->env_start = p->env_start;
	plan->env_end = p->env_end;
	uint8_t *auxv = zalloc(c, &z, p->auxv_len + 16, 16);
	memcpy(auxv, p->auxv, p->auxv_len);
	plan->auxv = (uint64_t)(uintptr_t)auxv;
	plan->auxv_size = p->auxv_len;
	plan->ctl_addr = p->ctl_addr;
	memcpy(plan->itimers, p->itimers, sizeof plan->itimers);
	plan->shared_pending = p->shared_pending;

	/* vvar/vdso: this kernel's, moved to where the image had them. */
	struct vdso_block want, cur;
	find_vdso(p->vmas, p->nvmas, &want);
	struct blob_range *unmap_list;
	uint64_t nunmap;
	current_layout(c, &cur, &unmap_list, &nunmap);
	int overlap = 0;
	for (int k = 0; k < 3; k++)
		for (int j = 0; j < 3; j++)
			if (cur.len[k] && want.len[j] && cur.start[k] < want.start[j] + want.len[j] &&
			    want.start[j] < cur.start[k] + cur.len[k] && !(k == j && cur.start[k] == want.start[j]))
				overlap = 1;
	uint64_t low = ~0ull;
	for (int k = 0; k < 3; k++)
		if (cur.len[k] && cur.start[k] < low)
			low = cur.start[k];
	uint64_t temp = c->hole + c->hole_size - HOLE_TEMP_PAGES * PAGE;
	struct blob_move first[3], second[3];
	int n1 = 0, n2 = 0;
	if (c->vdso_proxy) {
		/* This kernel's vdso (with its data pages) settles at the free end of the hole; the
		 * image's vdso comes back at its old place, its functions jumping to this one. */
		overlap = 0;
		for (int k = 0; k < 3; k++)
			if (cur.len[k])
				first[n1++] = (struct blob_move){cur.start[k], temp + (cur.start[k] - low), cur.len[k]};
		plan->pokes = zalloc(c, &z, 64 * sizeof *plan->pokes, 8);
		/* The image's vdso bytes, gathered from the runs that cover it. */
		uint8_t *old = want.len[2] ? xcalloc(1, want.len[2]) : NULL;
		for (uint64_t r = 0; r < runs->n && old; r++) {
			const struct blob_run *run = &runs->v[r];
			uint64_t from = run->addr > want.start[2] ? run->addr : want.start[2];
			uint64_t to = run->addr + run->len < want.start[2] + want.len[2] ? run->addr + run->len : want.start[2] + want.len[2];
			if (from >= to || run->zero)
				continue;
			if (pread_full(image_fd, old + (from - want.start[2]), to - from, run->offset + (from - run->addr)) < 0)
				restore_fail(c, "cannot read the image's vdso: %s", strerror(errno));
		}
		if (old)
			plan->npokes = (uint64_t)vdso_proxy_pokes(old, want.len[2], want.start[2], (const uint8_t *)(uintptr_t)cur.start[2],
								  cur.len[2], temp + (cur.start[2] - low), plan->pokes, 64);
		free(old);
		if (plan->npokes == 0)
			restore_fail(c, "process %d: the image's vdso cannot be connected to this kernel's", (int)p->pid);
	}
	for (int k = 0; k < 3 && !c->vdso_proxy; k++) {
		if (!cur.len[k] || !want.len[k])
			continue;
		uint64_t from = cur.start[k];
		if (overlap) {
			/* Overlapping places: everything to the free end of the hole first. */
			uint64_t via = temp + (cur.start[k] - low);
			first[n1++] = (struct blob_move){from, via, cur.len[k]};
			from = via;
		}
		second[n2++] = (struct blob_move){from, want.start[k], cur.len[k]};
	}
	for (int i = 0; i < n1; i++)
		plan->moves[plan->nmoves++] = first[i];
	for (int i = 0; i < n2; i++)
		plan->moves[plan->nmoves++] = second[i];

	plan->areas = zalloc(c, &z, (uint64_t)p->nvmas * sizeof *plan->areas, 8);
	for (uint32_t i = 0; i < p->nvmas; i++) {
		const struct img_vma *v = &p->vmas[i];
		if ((v->kind == VOS_VMA_VDSO && !c->vdso_proxy) || v->kind == VOS_VMA_VVAR ||
		    v->kind == VOS_VMA_VVAR_VCLOCK || v->kind == VOS_VMA_VSYSCALL)
			continue;
		struct blob_area *a = &plan->areas[plan->nareas++];
		a->start = v->start;
		a->end = v->end;
		a->pgoff = v->pgoff;
		a->prot = v->prot;
		a->fd = area_fd[i];
		a->map_flags = (v->flags & VOS_VMA_SHARED) ? MAP_SHARED : MAP_PRIVATE;
		if (a->fd < 0)
			a->map_flags |= MAP_ANONYMOUS;
		if (v->flags & VOS_VMA_GROWSDOWN)
			a->map_flags |= MAP_GROWSDOWN;
		/* The advice the program gave, and nothing of ours: huge pages for memory it did not ask
		 * them for would cost it memory, and on a VM that hands freed memory back to the host
		 * each 2 MiB fault is far slower than 512 small ones (measured: 5 ms against 0.3 ms). */
		a->advice = v->flags & (VOS_VMA_HUGEPAGE | VOS_VMA_NOHUGEPAGE | VOS_VMA_DONTFORK | VOS_VMA_WIPEONFORK |
					VOS_VMA_DONTDUMP);
	}
	plan->runs = zalloc(c, &z, runs->n * sizeof *plan->runs + 8, 8);
	memcpy(plan->runs, runs->v, runs->n * sizeof *plan->runs);
	plan->nruns = runs->n;

	plan->threads = zalloc(c, &z, (uint64_t)p->nthreads * sizeof *plan->threads, 8);
	plan->nthreads = p->nthreads;
	for (uint32_t i = 0; i < p->nthreads; i++) {
		const struct img_thread *t = &p->threads[i];
		struct blob_thread *b = &plan->threads[i];
		memset(b, 0, sizeof *b);
		b->tid = t->tid;
		b->fs_base = t->fs_base;
		b->gs_base = t->gs_base;
		b->frame = t->frame;
		b->clear_child_tid = t->clear_child_tid;
		b->robust_list = t->robust_list;
		b->robust_len = t->robust_len;
		b->pending = t->pending;
	}
	/* The main thread (tid == pid) goes first: it is the one running now. */
	for (uint32_t i = 1; i < p->nthreads; i++) {
		if (plan->threads[i].tid == p->pid) {
			struct blob_thread tmp = plan->threads[0];
			plan->threads[0] = plan->threads[i];
			plan->threads[i] = tmp;
		}
	}
	if (plan->nthreads == 0 || plan->threads[0].tid != p->pid)
		restore_fail(c, "process %d: the image has no main thread for it", (int)p->pid);
	for (uint32_t i = 0; i < p->nthreads; i++) {
		uint8_t *stack = zalloc(c, &z, BLOB_THREAD_STACK, 64);
		plan->threads[i].stack_top = (uint64_t)(uintptr_t)(stack + BLOB_THREAD_STACK);
	}
	plan->timers = zalloc(c, &z, ((uint64_t)p->ntimers + 1) * sizeof *plan->timers, 8);
	plan->ntimers = p->ntimers;
	for (uint32_t i = 0; i < p->ntimers; i++) {
		const struct img_timer *t = &p->timers[i];
		plan->timers[i] = (struct blob_timer){t->id, t->clock, t->signo, t->notify, t->target_tid, 0,
						      t->value, t->interval_ns, t->value_ns};
	}
	plan->hold = 1;
	plan->staged = zalloc(c, &z, (nstaged + 1) * sizeof *plan->staged, 8);
	plan->nstaged = staged_moves(c, p, plan->staged);
	plan->staging_start = staging_start(&c->staging);
	plan->staging_end = staging_end(&c->staging);
	plan->unmap = zalloc(c, &z, (nunmap + 1) * sizeof *plan->unmap, 8);
	memcpy(plan->unmap, unmap_list, nunmap * sizeof *plan->unmap);
	plan->nunmap = nunmap;
	uint8_t *main_stack = zalloc(c, &z, BLOB_MAIN_STACK, 64);
	uint64_t main_top = (uint64_t)(uintptr_t)(main_stack + BLOB_MAIN_STACK);
	/* unmap_list (malloc) is not freed: all of this process's old memory goes in a moment. */

	mprotect(code, code_pages, PROT_READ | PROT_EXEC);
	/* glibc registered this thread's TLS for restartable sequences: the kernel would write
	 * there after the blob unmaps it (and kill us for it). Unregister first. */
	if (__rseq_size > 0) {
		/* It must name the length it registered with: 32 (the original ABI) or the feature size. */
		void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
		if (syscall(SYS_rseq, area, 32, 1 /* unregister */, RSEQ_SIG) < 0)
			syscall(SYS_rseq, area, __rseq_size, 1, RSEQ_SIG);
	}
	void (*entry)(struct blob_plan *) =
		(void (*)(struct blob_plan *))(void *)(code + ((char *)(void *)blob_main - __start_vos_blob));
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "mov %1, %%rdi\n\t"
			 "call *%2\n\t"
			 "ud2"
			 :
			 : "r"(main_top), "r"(plan), "r"(entry)
			 : "memory");
	__builtin_unreachable();
}

/* The pod pty that is this session's controlling terminal (its slave in the object table). */
static int inner_tty_fd(struct restore_ctx *c, int32_t index)
{
	for (int i = 0; i < c->img.nobjects; i++)
		if (c->img.objects[i].kind == VOS_OBJ_PTY_SLAVE && (int64_t)c->img.objects[i].p[0] == index)
			return c->object_fd[i];
	return -1;
}

void restore_process(struct restore_ctx *c, struct img_process *p)
{
	if (p->sid == p->pid && setsid() < 0)
		restore_fail(c, "process %d: setsid: %s", (int)p->pid, strerror(errno));
	int inner = p->sid == p->pid && p->inner_tty >= 0 ? inner_tty_fd(c, p->inner_tty) : -1;
	if (inner >= 0 && ioctl(inner, TIOCSCTTY, 0) < 0)
		restore_fail(c, "process %d: cannot take its terminal back: %s", (int)p->pid, strerror(errno));
	create_children(c, p->pid);
	count(&c->sync->created);
	wait_stage(c, STAGE_GROUP_LEADERS);
	if (p->pgid == p->pid && getpgrp() != p->pid && setpgid(0, 0) < 0)
		restore_fail(c, "process %d: setpgid: %s", (int)p->pid, strerror(errno));
	count(&c->sync->leaders);
	wait_stage(c, STAGE_GROUP_MEMBERS);
	if (p->pgid != p->pid && getpgrp() != p->pgid && setpgid(0, p->pgid) < 0)
		restore_fail(c, "process %d: cannot join process group %d: %s", (int)p->pid, (int)p->pgid, strerror(errno));
	count(&c->sync->members);
	wait_stage(c, STAGE_PREPARE);
	if (inner >= 0 && p->inner_fg > 0) {
		/* Every group exists now: the job that had this terminal gets it back. */
		sigset_t ttou, old;
		sigemptyset(&ttou);
		sigaddset(&ttou, SIGTTOU);
		sigprocmask(SIG_BLOCK, &ttou, &old);
		if (tcsetpgrp(inner, p->inner_fg) < 0)
			restore_fail(c, "process %d: cannot give its terminal to group %d: %s", (int)p->pid, (int)p->inner_fg,
				     strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
	}

	/* Descriptors the blob needs, moved above the process's own fd numbers. */
	int above = max_fd(p) + 1;
	int *area_fd = xmalloc((size_t)(p->nvmas + 1) * sizeof *area_fd);
	int *kept = xmalloc((size_t)(p->nvmas + 3) * sizeof *kept);
	int nkept = 0;
	int image_fd = keep(c, c->img.fd, above);
	kept[nkept++] = image_fd;
	for (uint32_t i = 0; i < p->nvmas; i++) {
		const struct img_vma *v = &p->vmas[i];
		area_fd[i] = -1;
		int src = -1;
		if (v->kind == VOS_VMA_FILE)
			src = c->file_fd[v->file_id];
		else if (v->kind == VOS_VMA_SHMEM)
			src = (int)v->file_id < c->img.nshms ? c->shm_fd[v->file_id] : -1;
		if (v->kind == VOS_VMA_SHARED_FILE) {
			const char *path = v->path;
			int opened = open(path, ((v->prot & PROT_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
			if (opened < 0)
				restore_fail(c, "process %d: cannot map %s again: %s", (int)p->pid, path, strerror(errno));
			area_fd[i] = keep(c, opened, above);
			close(opened);
		} else if (src >= 0) {
			area_fd[i] = keep(c, src, above);
		} else if (v->kind == VOS_VMA_SHMEM || v->kind == VOS_VMA_FILE) {
			restore_fail(c, "process %d: the content of %s is missing from the image", (int)p->pid, v->path);
		}
		if (area_fd[i] >= 0)
			kept[nkept++] = area_fd[i];
	}
	int exe_fd = -1;
	if (p->exe[0]) {
		int fd = open(p->exe, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			exe_fd = keep(c, fd, above);
			close(fd);
			kept[nkept++] = exe_fd;
		}
	}
	place_fds(c, p, kept, nkept);
	restore_epoll(c, p);
	restore_process_state(c, p);
	build_and_jump(c, p, image_fd, exe_fd, area_fd, &c->runs[p - c->img.procs]);
}
