#include "image.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "vos-image.h"

struct img_process *image_process(struct image *img, pid_t pid)
{
	for (int i = 0; i < img->nprocs; i++)
		if (img->procs[i].pid == pid)
			return &img->procs[i];
	return NULL;
}

static struct img_object *object_by_id(struct image *img, uint32_t id)
{
	for (int i = 0; i < img->nobjects; i++)
		if (img->objects[i].id == id)
			return &img->objects[i];
	return NULL;
}

static struct img_file *file_by_id(struct image *img, uint32_t id)
{
	while ((int)id >= img->nfiles) {
		img->files = xrealloc(img->files, (size_t)(img->nfiles + 1) * sizeof *img->files);
		memset(&img->files[img->nfiles], 0, sizeof *img->files);
		img->files[img->nfiles].id = (uint32_t)img->nfiles;
		img->nfiles++;
	}
	return &img->files[id];
}

static struct img_shm *shm_by_id(struct image *img, uint32_t id)
{
	while ((int)id >= img->nshms) {
		img->shms = xrealloc(img->shms, (size_t)(img->nshms + 1) * sizeof *img->shms);
		memset(&img->shms[img->nshms], 0, sizeof *img->shms);
		img->nshms++;
	}
	return &img->shms[id];
}

static void add_record(struct record **list, int *n, const struct record *rec)
{
	*list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
	(*list)[(*n)++] = *rec;
}

/* fail() for an image that cannot be used: bad_image, naming the record (rec may be NULL). */
static int damaged(struct err *e, const struct record *rec, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int damaged(struct err *e, const struct record *rec, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	e->code[0] = e->path[0] = e->record[0] = 0;
	return err_bad_record(e, rec);
}

static int load_header(struct image *img, struct reader *r, struct err *e)
{
	const char *magic = rd_raw(r, 16);
	uint32_t version = rd_u32(r);
	img->page_size = rd_u32(r);
	rd_u64(r); /* created */
	char producer[128];
	rd_str(r, producer, sizeof producer);
	rd_str(r, img->kernel, sizeof img->kernel);
	rd_str(r, img->machine, sizeof img->machine);
	if (r->bad || !magic || memcmp(magic, VOS_IMAGE_MAGIC, sizeof VOS_IMAGE_MAGIC) != 0)
		return damaged(e, NULL, "%s is not a vOS image", img->name);
	if (version != VOS_IMAGE_VERSION)
		return damaged(e, NULL, "%s has image format %u; this vOS reads format %u", img->name, version, VOS_IMAGE_VERSION);
	return 0;
}

static int load_pod(struct image *img, struct reader *r)
{
	img->xfeatures = rd_u64(r);
	img->main_pid = rd_i32(r);
	img->have_terminal = rd_u32(r);
	img->fg_pgrp = rd_i32(r);
	img->c_iflag = rd_u32(r);
	img->c_oflag = rd_u32(r);
	img->c_cflag = rd_u32(r);
	img->c_lflag = rd_u32(r);
	img->c_line = rd_u8(r);
	img->nccs = rd_u32(r);
	if (img->nccs > sizeof img->c_cc)
		r->bad = 1;
	const void *cc = rd_raw(r, img->nccs);
	if (cc)
		memcpy(img->c_cc, cc, img->nccs);
	img->ispeed = rd_u32(r);
	img->ospeed = rd_u32(r);
	img->ws_row = rd_u16(r);
	img->ws_col = rd_u16(r);
	img->ws_xpixel = rd_u16(r);
	img->ws_ypixel = rd_u16(r);
	uint32_t n = rd_u32(r);
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		rd_i32(r), rd_i32(r), rd_i32(r), rd_i32(r), rd_u32(r); /* repeated in the PROCESS records */
	}
	uint32_t nz = rd_u32(r);
	if (nz > 1 << 16)
		r->bad = 1;
	img->zombies = xcalloc(nz, sizeof *img->zombies);
	for (uint32_t i = 0; i < nz && !r->bad; i++) {
		struct img_zombie *z = &img->zombies[img->nzombies++];
		z->pid = rd_i32(r);
		z->ppid = rd_i32(r);
		z->pgid = rd_i32(r);
		z->sid = rd_i32(r);
		z->status = rd_i32(r);
	}
	if (!r->bad && reader_left(r) >= 24) { /* the clocks at the freeze (images since live migration) */
		img->clock_monotonic = rd_i64(r);
		img->clock_boottime = rd_i64(r);
		img->clock_realtime = rd_i64(r);
		img->have_clocks = !r->bad;
	}
	return r->bad ? -1 : 0;
}

static int load_objects(struct image *img, struct reader *r)
{
	uint32_t n = rd_u32(r);
	if (n > 1 << 20)
		return -1;
	img->objects = xcalloc(n, sizeof *img->objects);
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		struct img_object *o = &img->objects[img->nobjects++];
		o->id = rd_u32(r);
		o->kind = rd_u32(r);
		o->flags = rd_u32(r);
		o->owner = rd_i32(r);
		o->pos = rd_u64(r);
		for (int k = 0; k < 4; k++)
			o->p[k] = rd_u64(r);
		rd_str(r, o->path, sizeof o->path);
		o->nepoll = rd_u32(r);
		if (o->nepoll > 1 << 20) {
			r->bad = 1;
			break;
		}
		o->epoll = xcalloc(o->nepoll, sizeof *o->epoll);
		for (uint32_t k = 0; k < o->nepoll; k++) {
			o->epoll[k].tfd = rd_i32(r);
			o->epoll[k].events = rd_u32(r);
			o->epoll[k].data = rd_u64(r);
		}
	}
	return r->bad ? -1 : 0;
}

static int load_process(struct image *img, struct reader *r)
{
	img->procs = xrealloc(img->procs, (size_t)(img->nprocs + 1) * sizeof *img->procs);
	struct img_process *p = &img->procs[img->nprocs];
	memset(p, 0, sizeof *p);
	p->pid = rd_i32(r);
	p->ppid = rd_i32(r);
	p->pgid = rd_i32(r);
	p->sid = rd_i32(r);
	p->inner_tty = rd_i32(r);
	p->inner_fg = rd_i32(r);
	rd_str(r, p->comm, sizeof p->comm);
	rd_str(r, p->exe, sizeof p->exe);
	rd_str(r, p->cwd, sizeof p->cwd);
	p->umask = rd_u32(r);
	p->no_new_privs = rd_u32(r);
	p->start_code = rd_u64(r);
	p->end_code = rd_u64(r);
	p->start_data = rd_u64(r);
	p->end_data = rd_u64(r);
	p->start_brk = rd_u64(r);
	p->brk = rd_u64(r);
	p->start_stack = rd_u64(r);
	p->arg_start = rd_u64(r);
	p->arg_end = rd_u64(r);
	p->env_start = rd_u64(r);
	p->env_end = rd_u64(r);
	const void *auxv = rd_bytes(r, &p->auxv_len);
	p->auxv = xmalloc(p->auxv_len);
	if (auxv)
		memcpy(p->auxv, auxv, p->auxv_len);
	p->nrlimits = rd_u32(r);
	if (p->nrlimits > 32)
		r->bad = 1;
	for (uint32_t i = 0; i < p->nrlimits && !r->bad; i++) {
		p->rlimits[i][0] = rd_u64(r);
		p->rlimits[i][1] = rd_u64(r);
	}
	for (int s = 0; s < 65; s++)
		for (int k = 0; k < 4; k++)
			p->sigactions[s][k] = rd_u64(r);
	for (int t = 0; t < 3; t++)
		for (int k = 0; k < 4; k++)
			p->itimers[t][k] = rd_i64(r);
	p->shared_pending = rd_u64(r);
	p->ctl_addr = rd_u64(r);
	p->nthreads = rd_u32(r);
	if (p->nthreads > 4096)
		r->bad = 1;
	p->threads = xcalloc(p->nthreads, sizeof *p->threads);
	for (uint32_t i = 0; i < p->nthreads && !r->bad; i++) {
		struct img_thread *t = &p->threads[i];
		t->tid = rd_i32(r);
		t->fs_base = rd_u64(r);
		t->gs_base = rd_u64(r);
		t->frame = rd_u64(r);
		t->clear_child_tid = rd_u64(r);
		t->robust_list = rd_u64(r);
		t->robust_len = rd_u64(r);
		t->pending = rd_u64(r);
	}
	p->ntimers = rd_u32(r);
	if (p->ntimers > 4096)
		r->bad = 1;
	p->timers = xcalloc(p->ntimers, sizeof *p->timers);
	for (uint32_t i = 0; i < p->ntimers && !r->bad; i++) {
		struct img_timer *t = &p->timers[i];
		t->id = rd_i32(r);
		t->clock = rd_i32(r);
		t->signo = rd_i32(r);
		t->notify = rd_i32(r);
		t->target_tid = rd_i32(r);
		t->value = rd_u64(r);
		t->interval_ns = rd_i64(r);
		t->value_ns = rd_i64(r);
	}
	p->nvmas = rd_u32(r);
	if (p->nvmas > 1 << 20)
		r->bad = 1;
	p->vmas = xcalloc(p->nvmas, sizeof *p->vmas);
	for (uint32_t i = 0; i < p->nvmas && !r->bad; i++) {
		struct img_vma *v = &p->vmas[i];
		v->start = rd_u64(r);
		v->end = rd_u64(r);
		v->pgoff = rd_u64(r);
		v->prot = rd_u32(r);
		v->flags = rd_u32(r);
		v->kind = rd_u32(r);
		v->file_id = rd_u32(r);
		rd_str(r, v->path, sizeof v->path);
	}
	p->nfds = rd_u32(r);
	if (p->nfds > 1 << 20)
		r->bad = 1;
	p->fds = xcalloc(p->nfds, sizeof *p->fds);
	for (uint32_t i = 0; i < p->nfds && !r->bad; i++) {
		p->fds[i].fd = rd_i32(r);
		p->fds[i].cloexec = rd_u32(r);
		p->fds[i].object = rd_u32(r);
	}
	if (r->bad)
		return -1;
	img->nprocs++;
	return 0;
}

static int load_file(struct image *img, struct reader *r)
{
	uint32_t id = rd_u32(r);
	if (r->bad || id > 1 << 20)
		return -1;
	struct img_file *f = file_by_id(img, id);
	f->present = 1;
	f->deleted = rd_u32(r);
	f->size = rd_u64(r);
	f->mtime = rd_i64(r);
	f->hash = rd_u64(r);
	rd_str(r, f->path, sizeof f->path);
	f->nranges = rd_u32(r);
	if (f->nranges > 1 << 20)
		return -1;
	f->ranges = xcalloc(f->nranges, sizeof *f->ranges);
	for (uint32_t i = 0; i < f->nranges; i++) {
		f->ranges[i][0] = rd_u64(r);
		f->ranges[i][1] = rd_u64(r);
	}
	return r->bad ? -1 : 0;
}

void run_cursor_init(struct run_cursor *c, int fd, const struct record *rec)
{
	c->fd = fd;
	c->rec = *rec;
	c->pos = rec->offset + sizeof(struct vos_pages_head);
	c->end = rec->offset + rec->length;
}

int run_next(struct run_cursor *c, struct page_run *r, struct err *e)
{
	if (c->pos >= c->end)
		return 0;
	struct vos_page_run h;
	errno = 0;
	if (c->pos + sizeof h > c->end || pread_full(c->fd, &h, sizeof h, c->pos) < 0)
	{
		if (errno)
			return fail(e, "cannot read the image: %s", strerror(errno));
		fail(e, "the image is damaged: a run of pages is cut short");
		return err_bad_record(e, &c->rec);
	}
	c->pos += sizeof h;
	*r = (struct page_run){h.addr, h.npages, h.kind, c->pos};
	if (h.kind == VOS_RUN_DATA) {
		uint64_t len = (uint64_t)h.npages * PAGE;
		if (len > c->end - c->pos)
		{
			fail(e, "the image is damaged: a run of pages is longer than its record");
			return err_bad_record(e, &c->rec);
		}
		c->pos += len;
	}
	return 1;
}

int page_run_read(struct reader *r, struct vos_page_run *run)
{
	const void *raw = rd_raw(r, sizeof *run);
	if (!raw)
		return -1;
	memcpy(run, raw, sizeof *run);
	return 0;
}

int image_load(struct image *img, int fd, const char *name, struct err *e)
{
	memset(img, 0, sizeof *img);
	img->fd = fd;
	img->name = name;
	struct image_reader ir;
	ir_init(&ir, fd, name);
	struct record rec;
	int rc;
	while ((rc = ir_next(&ir, &rec, e)) == 1) {
		if (rec.type == VOS_REC_PRECOPY) {
			uint32_t head[2];
			if (rec.length < sizeof head || pread_full(fd, head, sizeof head, rec.offset) < 0)
				return damaged(e, &rec, "%s: a %s record is too short", name, record_type_name(rec.type));
			if (head[0] != 0)
				return damaged(e, &rec, "%s: pages sent ahead must belong to a process", name);
			img->precopy = xrealloc(img->precopy, (size_t)(img->nprecopy + 1) * sizeof *img->precopy);
			img->precopy[img->nprecopy++] = (struct img_precopy){(pid_t)head[1], rec};
			continue;
		}
		if (rec.type == VOS_REC_PAGES || rec.type == VOS_REC_OBJDATA || rec.type == VOS_REC_FILEDATA) {
			/* Only the head now; the bulk is read when it is restored. */
			uint32_t head[2];
			if (rec.length < sizeof head || pread_full(fd, head, sizeof head, rec.offset) < 0)
				return damaged(e, &rec, "%s: a %s record is too short", name, record_type_name(rec.type));
			if (rec.type == VOS_REC_PAGES) {
				if (head[0] == 0) {
					struct img_process *p = image_process(img, (pid_t)head[1]);
					if (!p)
						return damaged(e, &rec, "%s: memory of unknown process %u", name, head[1]);
					add_record(&p->pages, &p->npages, &rec);
				} else {
					if (head[1] > 1 << 20)
						return damaged(e, &rec, "%s: shared memory object %u is out of range", name, head[1]);
					struct img_shm *s = shm_by_id(img, head[1]);
					add_record(&s->pages, &s->npages, &rec);
				}
			} else if (rec.type == VOS_REC_OBJDATA) {
				struct img_object *o = object_by_id(img, head[0]);
				if (!o)
					return damaged(e, &rec, "%s: data for unknown object %u", name, head[0]);
				o->has_data = 1;
				o->messages = head[1];
				o->data = rec;
			} else {
				if (head[0] > 1 << 20)
					return damaged(e, &rec, "%s: file %u is out of range", name, head[0]);
				struct img_file *f = file_by_id(img, head[0]);
				add_record(&f->data, &f->ndata, &rec);
			}
			continue;
		}
		if (rec.type != VOS_REC_HEADER && rec.type != VOS_REC_POD && rec.type != VOS_REC_OBJECTS &&
		    rec.type != VOS_REC_PROCESS && rec.type != VOS_REC_FILE)
			continue; /* SESSION (the agent's), TRAILER */
		void *payload;
		if (ir_load(fd, &rec, &payload, e) < 0)
			return -1;
		struct reader r;
		reader_init(&r, payload, (size_t)rec.length);
		int bad = 0;
		switch (rec.type) {
		case VOS_REC_HEADER:
			if (load_header(img, &r, e) < 0) {
				free(payload);
				return -1;
			}
			break;
		case VOS_REC_POD:
			bad = load_pod(img, &r) < 0;
			break;
		case VOS_REC_OBJECTS:
			bad = load_objects(img, &r) < 0;
			break;
		case VOS_REC_PROCESS:
			bad = load_process(img, &r) < 0;
			break;
		case VOS_REC_FILE:
			bad = load_file(img, &r) < 0;
			break;
		}
		free(payload);
		if (bad)
			return damaged(e, &rec, "%s is damaged: its %s record cannot be read", name, record_type_name(rec.type));
	}
	if (rc < 0)
		return -1;
	if (img->nprocs == 0 || !image_process(img, img->main_pid))
		return damaged(e, NULL, "%s holds no processes to restore", name);
	return 0;
}
