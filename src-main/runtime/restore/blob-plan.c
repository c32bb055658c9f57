/*
 * The last step of a restoring process before the blob: its zone in the hole (see blob.h) with
 * the blob's code, its plan (the areas, runs, threads, timers, vdso moves and what to unmap) and
 * stacks, the trampoline its threads leave through, and the jump.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "restore.h"
#include "vos-control.h"
#include "vos-image.h"

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

void build_and_jump(struct restore_ctx *c, struct img_process *p, int image_fd, int exe_fd, const int *area_fd,
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
	/* Found and removed by the next stop from outside, in a process without the runtime. */
	struct vos_leftover_mark mark = {VOS_LEFTOVER_MAGIC, c->hole, 2 * PAGE};
	memcpy((uint8_t *)tramp + PAGE + 64, &mark, sizeof mark);
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
	_Static_assert(sizeof plan->parent_fd / sizeof plan->parent_fd[0] == VOS_MAX_CHAIN, "a parent fd for each parent");
	for (int k = 0; k < VOS_MAX_CHAIN; k++)
		plan->parent_fd[k] = k < c->nparents ? c->parent_fd[k] : -1;
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
	plan->locks = zalloc(c, &z, ((uint64_t)p->nlocks + 1) * sizeof *plan->locks, 8);
	plan->nlocks = 0;
	for (uint32_t i = 0; i < c->img.nlocks && plan->nlocks < p->nlocks; i++) {
		const struct vos_lock_rec *l = &c->img.locks[i];
		if (l->kind != VOS_LOCK_POSIX || l->pid != p->pid)
			continue;
		int fd = -1;
		for (uint32_t k = 0; k < p->nfds && fd < 0; k++)
			if (p->fds[k].object == l->object)
				fd = p->fds[k].fd;
		if (fd < 0)
			restore_fail(c, "process %d: no fd of its own for a lock it held", (int)p->pid);
		plan->locks[plan->nlocks++] = (struct blob_lock){fd, l->type == VOS_LOCK_WRITE ? F_WRLCK : F_RDLCK, i, 0,
								  (int64_t)l->start,
								  l->end == VOS_LOCK_TO_EOF ? 0 : (int64_t)(l->end - l->start + 1)};
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
