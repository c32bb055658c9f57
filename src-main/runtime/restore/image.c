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

/* A file by id: ids come in order, each either known or the next (the writer numbers them from
 * 0 as it meets them), so the array holds what the image describes and no more. NULL: out of
 * that order, or over the budget. */
static struct img_file *file_by_id(struct image *img, uint32_t id)
{
	if (id < (uint32_t)img->nfiles)
		return &img->files[id];
	if (id != (uint32_t)img->nfiles)
		return NULL;
	struct img_file *files = image_grow(img, img->files, img->nfiles, sizeof *img->files);
	if (!files)
		return NULL;
	img->files = files;
	img->files[img->nfiles].id = id;
	return &img->files[img->nfiles++];
}

/* A shared memory object by id: ids are below the number of shared memory areas met so far
 * (each area names one). NULL: out of range, or over the budget. */
static struct img_shm *shm_by_id(struct image *img, uint32_t id)
{
	if (id >= img->shm_areas)
		return NULL;
	while (id >= (uint32_t)img->nshms) {
		struct img_shm *shms = image_grow(img, img->shms, img->nshms, sizeof *img->shms);
		if (!shms)
			return NULL;
		img->shms = shms;
		img->nshms++;
	}
	return &img->shms[id];
}

static int add_record(struct image *img, struct record **list, int *n, const struct record *rec)
{
	struct record *grown = image_grow(img, *list, *n, sizeof **list);
	if (!grown)
		return -1;
	*list = grown;
	(*list)[(*n)++] = *rec;
	return 0;
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

/* Whether n items of at least min_each bytes each can be in what is left of r, and n is at most
 * cap; if not, r is bad. A count can ask for no more than its record holds. */
static int count_fits(struct reader *r, uint32_t n, size_t min_each, uint32_t cap)
{
	if (n > cap || (uint64_t)n * min_each > reader_left(r))
		r->bad = 1;
	return !r->bad;
}

/* n items for a record being read; NULL (r bad) when n does not fit or is over the budget. */
static void *items(struct image *img, struct reader *r, uint32_t n, size_t min_each, uint32_t cap, size_t size)
{
	if (!count_fits(r, n, min_each, cap))
		return NULL;
	void *p = image_grant(img, n, size);
	if (!p)
		r->bad = 1;
	return p;
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
	if (version < VOS_IMAGE_VERSION_OLDEST || version > VOS_IMAGE_VERSION)
		return damaged(e, NULL, "%s has image format %u; this vOS reads formats %u to %u", img->name, version,
			       VOS_IMAGE_VERSION_OLDEST, VOS_IMAGE_VERSION);
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
	if (!count_fits(r, n, 20, UINT32_MAX))
		return -1;
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		rd_i32(r), rd_i32(r), rd_i32(r), rd_i32(r), rd_u32(r); /* repeated in the PROCESS records */
	}
	uint32_t nz = rd_u32(r);
	img->zombies = items(img, r, nz, 20, UINT32_MAX, sizeof *img->zombies);
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
	img->objects = items(img, r, n, 64, UINT32_MAX, sizeof *img->objects);
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
		o->epoll = items(img, r, o->nepoll, 16, VOS_MAX_FD, sizeof *o->epoll);
		for (uint32_t k = 0; k < o->nepoll && !r->bad; k++) {
			o->epoll[k].tfd = rd_i32(r);
			o->epoll[k].events = rd_u32(r);
			o->epoll[k].data = rd_u64(r);
		}
	}
	return r->bad ? -1 : 0;
}

static int load_locks(struct image *img, struct reader *r, const struct record *rec)
{
	if (img->have_locks)
		return -1; /* once */
	img->have_locks = 1;
	img->locks_rec = *rec;
	uint32_t n = rd_u32(r);
	img->locks = items(img, r, n, sizeof(struct vos_lock_rec), VOS_MAX_LOCKS, sizeof *img->locks);
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		struct vos_lock_rec *l = &img->locks[img->nlocks++];
		l->kind = rd_u32(r);
		l->type = rd_u32(r);
		l->pid = rd_i32(r);
		l->object = rd_u32(r);
		l->start = rd_u64(r);
		l->end = rd_u64(r);
	}
	return r->bad ? -1 : 0;
}

static int load_sysv_ipc(struct image *img, struct reader *r, const struct record *rec)
{
	if (img->have_sysv)
		return -1; /* once */
	img->have_sysv = 1;
	img->sysv_rec = *rec;
	uint32_t n = rd_u32(r);
	img->sems = items(img, r, n, 24, VOS_MAX_SEM_SETS, sizeof *img->sems);
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		struct img_sem_set *s = &img->sems[img->nsems++];
		s->id = rd_i32(r);
		s->key = rd_i32(r);
		s->uid = rd_u32(r);
		s->gid = rd_u32(r);
		s->mode = rd_u32(r);
		s->nsems = rd_u32(r);
		s->values = items(img, r, s->nsems, 2, VOS_MAX_SEMS, sizeof *s->values);
		for (uint32_t k = 0; k < s->nsems && !r->bad; k++)
			s->values[k] = rd_u16(r);
	}
	return r->bad ? -1 : 0;
}

static int load_process(struct image *img, struct reader *r, const struct record *rec)
{
	struct img_process *procs = image_grow(img, img->procs, img->nprocs, sizeof *img->procs);
	if (!procs)
		return -1;
	img->procs = procs;
	struct img_process *p = &img->procs[img->nprocs];
	memset(p, 0, sizeof *p);
	img->nprocs++; /* counted now, so that image_free frees what it holds whatever follows */
	p->rec = *rec;
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
	p->auxv = image_grant(img, p->auxv_len, 1);
	if (auxv && p->auxv)
		memcpy(p->auxv, auxv, p->auxv_len);
	else
		r->bad = 1;
	p->nrlimits = rd_u32(r);
	count_fits(r, p->nrlimits, 16, VOS_MAX_RLIMITS);
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
	p->threads = items(img, r, p->nthreads, 60, VOS_MAX_IMG_THREADS, sizeof *p->threads);
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
	p->timers = items(img, r, p->ntimers, 44, VOS_MAX_IMG_THREADS, sizeof *p->timers);
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
	p->vmas = items(img, r, p->nvmas, 44, UINT32_MAX, sizeof *p->vmas);
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
		if (v->kind == VOS_VMA_SHMEM)
			img->shm_areas++;
	}
	p->nfds = rd_u32(r);
	p->fds = items(img, r, p->nfds, 12, VOS_MAX_FD, sizeof *p->fds);
	for (uint32_t i = 0; i < p->nfds && !r->bad; i++) {
		p->fds[i].fd = rd_i32(r);
		p->fds[i].cloexec = rd_u32(r);
		p->fds[i].object = rd_u32(r);
	}
	return r->bad ? -1 : 0;
}

static int load_file(struct image *img, struct reader *r, const struct record *rec)
{
	uint32_t id = rd_u32(r);
	struct img_file *f = r->bad ? NULL : file_by_id(img, id);
	if (!f || f->present)
		return -1; /* out of order, or described twice */
	f->present = 1;
	f->rec = *rec;
	f->in_parent = rec->type == VOS_REC_FILEREF;
	f->kind = rd_u32(r);
	f->size = rd_u64(r);
	f->mtime = rd_i64(r);
	f->hash = rd_u64(r);
	rd_str(r, f->path, sizeof f->path);
	f->nranges = rd_u32(r);
	f->ranges = items(img, r, f->nranges, 16, UINT32_MAX, sizeof *f->ranges);
	for (uint32_t i = 0; i < f->nranges && !r->bad; i++) {
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

/* The head of a record whose bulk stays in the file: PRECOPY, PAGES, OBJDATA (8 bytes), FILEDATA
 * (16: id, pad, offset). */
static int read_head(struct image *img, const struct record *rec, void *head, size_t size, struct err *e)
{
	if (rec->length < size) {
		return damaged(e, rec, "%s is damaged: a %s record is too short (%llu bytes)", img->name, record_type_name(rec->type),
			       (unsigned long long)rec->length);
	}
	errno = 0;
	if (pread_full(img->fd, head, size, rec->offset) < 0) {
		if (errno)
			return fail(e, "%s: cannot read: %s", img->name, strerror(errno));
		return damaged(e, rec, "%s is truncated inside a %s record", img->name, record_type_name(rec->type));
	}
	return 0;
}

/* A record whose bulk is read when it is restored: only its head now. */
static int load_bulk(struct image *img, const struct record *rec, struct err *e)
{
	const char *name = img->name;
	uint32_t head[4];
	if (read_head(img, rec, head, rec->type == VOS_REC_FILEDATA ? 16 : 8, e) < 0)
		return -1;
	int added = 0;
	switch (rec->type) {
	case VOS_REC_PRECOPY: {
		if (head[0] != 0)
			return damaged(e, rec, "%s is damaged: pages sent ahead must belong to a process", name);
		struct img_precopy *list = image_grow(img, img->precopy, img->nprecopy, sizeof *img->precopy);
		if (list) {
			img->precopy = list;
			img->precopy[img->nprecopy++] = (struct img_precopy){(pid_t)head[1], *rec};
			added = 1;
		}
		break;
	}
	case VOS_REC_PAGES:
		if (head[0] == 0) {
			struct img_process *p = image_process(img, (pid_t)head[1]);
			if (!p)
				return damaged(e, rec, "%s is damaged: memory of unknown process %u", name, head[1]);
			added = add_record(img, &p->pages, &p->npages, rec) == 0;
		} else if (head[0] == 1) {
			struct img_shm *s = shm_by_id(img, head[1]);
			if (!s && !img->over_budget)
				return damaged(e, rec, "%s is damaged: shared memory object %u is not mapped by any process", name, head[1]);
			added = s && add_record(img, &s->pages, &s->npages, rec) == 0;
		} else {
			return damaged(e, rec, "%s is damaged: pages of an owner of kind %u", name, head[0]);
		}
		break;
	case VOS_REC_OBJDATA: {
		struct img_object *o = object_by_id(img, head[0]);
		if (!o)
			return damaged(e, rec, "%s is damaged: data for unknown object %u", name, head[0]);
		if (o->has_data)
			return damaged(e, rec, "%s is damaged: object %u has its data twice", name, head[0]);
		o->has_data = 1;
		o->messages = head[1];
		o->data = *rec;
		added = 1;
		break;
	}
	default: { /* FILEDATA */
		struct img_file *f = file_by_id(img, head[0]);
		if (!f && !img->over_budget)
			return damaged(e, rec, "%s is damaged: file %u is out of order", name, head[0]);
		if (f && f->present)
			return damaged(e, rec, "%s is damaged: data of file %u after its description", name, head[0]);
		added = f && add_record(img, &f->data, &f->ndata, rec) == 0;
	}
	}
	if (!added)
		return damaged(e, rec, "%s is damaged: its records would need more than %u MiB of memory to restore", name,
			       VOS_MAX_METADATA >> 20);
	return 0;
}

/* A record whose whole payload is metadata: read and parsed now. */
static int load_meta(struct image *img, const struct record *rec, struct err *e)
{
	void *payload;
	if (ir_load(img->fd, rec, &payload, e) < 0)
		return -1;
	struct reader r;
	reader_init(&r, payload, (size_t)rec->length);
	int rc = 0;
	switch (rec->type) {
	case VOS_REC_HEADER:
		rc = load_header(img, &r, e);
		break;
	case VOS_REC_POD:
		rc = load_pod(img, &r);
		break;
	case VOS_REC_OBJECTS:
		img->objects_rec = *rec;
		rc = load_objects(img, &r);
		break;
	case VOS_REC_PROCESS:
		rc = load_process(img, &r, rec);
		break;
	case VOS_REC_LOCKS:
		rc = load_locks(img, &r, rec);
		break;
	case VOS_REC_SYSV_IPC:
		rc = load_sysv_ipc(img, &r, rec);
		break;
	case VOS_REC_FILE:
	case VOS_REC_FILEREF:
		rc = load_file(img, &r, rec);
		break;
	}
	free(payload);
	if (rc == 0 || rec->type == VOS_REC_HEADER)
		return rc;
	if (img->over_budget)
		return damaged(e, rec, "%s is damaged: its %s record would need more than %u MiB of memory to restore", img->name,
			       record_type_name(rec->type), VOS_MAX_METADATA >> 20);
	return damaged(e, rec, "%s is damaged: its %s record cannot be read", img->name, record_type_name(rec->type));
}

int image_load(struct image *img, int fd, const char *name, struct err *e)
{
	memset(img, 0, sizeof *img);
	img->fd = fd;
	img->name = name;
	struct image_reader ir;
	ir_init(&ir, fd, name);
	struct record rec;
	int rc, phase = 0;
	while ((rc = ir_next(&ir, &rec, e)) == 1) {
		if (!record_in_order(rec.type, &phase, (uint32_t)img->nprocs))
			return damaged(e, &rec, "%s is damaged: its %s record is out of place (record %u)", name, record_type_name(rec.type),
				       rec.index);
		switch (rec.type) {
		case VOS_REC_PRECOPY:
		case VOS_REC_PAGES:
		case VOS_REC_OBJDATA:
		case VOS_REC_FILEDATA:
			rc = load_bulk(img, &rec, e);
			break;
		case VOS_REC_CHAIN:
			if (img->have_chain || rec.length != sizeof img->chain)
				return damaged(e, &rec, "%s is damaged: its chain record is %s", name, img->have_chain ? "there twice" : "of the wrong size");
			{
				void *payload;
				if (ir_load(fd, &rec, &payload, e) < 0)
					return -1;
				memcpy(&img->chain, payload, sizeof img->chain);
				free(payload);
			}
			img->have_chain = 1;
			rc = 0;
			break;
		case VOS_REC_HEADER:
		case VOS_REC_POD:
		case VOS_REC_OBJECTS:
		case VOS_REC_PROCESS:
		case VOS_REC_LOCKS:
		case VOS_REC_SYSV_IPC:
		case VOS_REC_FILE:
		case VOS_REC_FILEREF:
			rc = load_meta(img, &rec, e);
			break;
		default:
			rc = 0; /* SESSION (the agent's), TRAILER, a type this vOS does not know */
		}
		if (rc < 0)
			return -1;
		if (rec.type == VOS_REC_TRAILER)
			break; /* nothing may follow it (image_verify says so) */
	}
	if (rc < 0)
		return -1;
	if (phase < 4) /* HEADER, POD and OBJECTS */
		return damaged(e, NULL, "%s is damaged: it lacks its %s record", name, phase < 1 ? "header" : phase < 3 ? "pod" : "objects");
	if (img->nprocs == 0 || !image_process(img, img->main_pid))
		return damaged(e, NULL, "%s holds no processes to restore", name);
	return image_check(img, e);
}

static void free_process(struct img_process *p)
{
	free(p->auxv);
	free(p->threads);
	free(p->timers);
	free(p->vmas);
	free(p->fds);
	free(p->pages);
}

void image_free(struct image *img)
{
	for (int i = 0; i < img->nprocs; i++)
		free_process(&img->procs[i]);
	free(img->procs);
	free(img->zombies);
	for (int i = 0; i < img->nobjects; i++)
		free(img->objects[i].epoll);
	free(img->objects);
	for (int i = 0; i < img->nfiles; i++) {
		free(img->files[i].ranges);
		free(img->files[i].data);
	}
	free(img->files);
	for (int i = 0; i < img->nshms; i++)
		free(img->shms[i].pages);
	free(img->shms);
	free(img->precopy);
	free(img->locks);
	for (uint32_t i = 0; i < img->nsems; i++)
		free(img->sems[i].values);
	free(img->sems);
	memset(img, 0, sizeof *img);
	img->fd = -1;
}
