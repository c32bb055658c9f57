/*
 * The checks of an image as image_load reads it, so that the restorer can trust what it loaded:
 * the order of the records (docs/image-format.md, "Record order"), a budget for the memory its
 * counts may make the restorer allocate, and once every record is read, every id, every
 * reference between records and every run of pages (inside its record, and inside the memory
 * area it fills). A failure is bad_image naming the record.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../common/u64map.h"
#include "image.h"
#include "vos-image.h"

void *image_grant(struct image *img, uint64_t n, size_t size)
{
	if (size && n > (VOS_MAX_METADATA - img->granted) / size) {
		img->over_budget = 1;
		return NULL;
	}
	img->granted += n * size;
	return xcalloc(n ? (size_t)n : 1, size);
}

void *image_grow(struct image *img, void *list, int n, size_t size)
{
	if (n > 0 && (n & (n - 1)) != 0)
		return list; /* room left: the capacity is the next power of two */
	uint64_t cap = n ? 2 * (uint64_t)n : 1;
	if ((cap - (uint64_t)n) > (VOS_MAX_METADATA - img->granted) / size) {
		img->over_budget = 1;
		return NULL;
	}
	img->granted += (cap - (uint64_t)n) * size;
	char *grown = xrealloc(list, (size_t)cap * size);
	memset(grown + (size_t)n * size, 0, (size_t)(cap - (uint64_t)n) * size);
	return grown;
}

/* Where each record type stands in the order; the phase of an image is the rank of its latest
 * record. 0: a type this vOS does not know (passed over, anywhere between HEADER and TRAILER). */
static int rank(uint32_t type)
{
	switch (type) {
	case VOS_REC_HEADER: return 1;
	case VOS_REC_PRECOPY: return 2;
	case VOS_REC_POD: return 3;
	case VOS_REC_OBJECTS: return 4;
	case VOS_REC_OBJDATA:
	case VOS_REC_LOCKS:
	case VOS_REC_SYSV_IPC: return 5;
	case VOS_REC_PROCESS:
	case VOS_REC_PAGES: return 6;
	case VOS_REC_FILEDATA:
	case VOS_REC_FILE:
	case VOS_REC_FILEREF: return 7;
	case VOS_REC_SESSION: return 8;
	case VOS_REC_TRAILER: return 9;
	default: return 0;
	}
}

int record_in_order(uint32_t type, int *phase, uint32_t seen_process)
{
	int r = rank(type);
	int once = type == VOS_REC_HEADER || type == VOS_REC_POD || type == VOS_REC_OBJECTS || type == VOS_REC_SESSION ||
		   type == VOS_REC_TRAILER;
	int ok;
	if (type == VOS_REC_CHAIN)
		return *phase == 1 || *phase == 2; /* after HEADER (and pages sent ahead), before POD */
	if (*phase == 0)
		ok = type == VOS_REC_HEADER;
	else if (r == 0)
		ok = *phase < 9;
	else if (r < *phase || (once && r == *phase))
		ok = 0;
	else if (type == VOS_REC_POD || type == VOS_REC_SESSION || type == VOS_REC_TRAILER)
		ok = 1;
	else if (type == VOS_REC_OBJECTS)
		ok = *phase == 3;
	else if (type == VOS_REC_PAGES)
		ok = *phase == 6 && seen_process > 0;
	else
		ok = type == VOS_REC_PRECOPY || *phase >= 4; /* the pod's records come after OBJECTS */
	if (ok && r)
		*phase = r;
	return ok;
}

static int bad(struct err *e, const struct image *img, const struct record *rec, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(struct err *e, const struct image *img, const struct record *rec, const char *fmt, ...)
{
	char what[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	fail(e, "%s is damaged: %s", img->name, what);
	return err_bad_record(e, rec);
}

/* An inotify object's watches (its OBJDATA): each one well formed. */
static int check_inotify(struct image *img, const struct img_object *o, struct err *e)
{
	void *payload;
	if (o->data.length < 8)
		return bad(e, img, &o->data, "inotify object %u has no watches", o->id);
	if (ir_load(img->fd, &o->data, &payload, e) < 0)
		return -1;
	struct img_watch *ws = NULL;
	uint32_t n = 0;
	struct err why;
	int rc = inotify_watches_read(o, (char *)payload + 8, (size_t)o->data.length - 8, &ws, &n, &why);
	free(payload);
	free(ws);
	return rc < 0 ? bad(e, img, &o->data, "%s", why.msg) : 0;
}

int tcp_pair_addresses(const struct img_object *o, struct sockaddr_storage *local, struct sockaddr_storage *peer)
{
	int domain = o->p[1] == AF_INET ? AF_INET : o->p[1] == AF_INET6 ? AF_INET6 : -1;
	size_t n = strnlen(o->path, sizeof o->path);
	const char *space = memchr(o->path, ' ', n);
	if (domain < 0 || !space || o->p[2] > UINT32_MAX)
		return -1;
	char text[2][INET6_ADDRSTRLEN];
	size_t l0 = (size_t)(space - o->path), l1 = n - l0 - 1;
	if (l0 == 0 || l1 == 0 || l0 >= sizeof text[0] || l1 >= sizeof text[1])
		return -1;
	memcpy(text[0], o->path, l0);
	text[0][l0] = 0;
	memcpy(text[1], space + 1, l1);
	text[1][l1] = 0;
	struct sockaddr_storage *out[2] = {local, peer};
	for (int k = 0; k < 2; k++) {
		memset(out[k], 0, sizeof *out[k]);
		uint16_t port = (uint16_t)(o->p[2] >> (16 * k));
		if (domain == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)out[k];
			in->sin_family = AF_INET;
			in->sin_port = htons(port);
			if (inet_pton(AF_INET, text[k], &in->sin_addr) != 1)
				return -1;
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out[k];
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons(port);
			if (inet_pton(AF_INET6, text[k], &in6->sin6_addr) != 1)
				return -1;
		}
	}
	return 0;
}

static int check_objects(struct image *img, struct u64map *ids, struct err *e)
{
	for (int i = 0; i < img->nobjects; i++) {
		const struct img_object *o = &img->objects[i];
		uint64_t seen;
		if (u64map_get(ids, o->id, &seen))
			return bad(e, img, &img->objects_rec, "object %u is described twice", o->id);
		u64map_put(ids, o->id, (uint64_t)i);
		if (o->kind < VOS_OBJ_FILE || o->kind > VOS_OBJ_RELAYED)
			return bad(e, img, &img->objects_rec, "object %u is of unknown kind %u", o->id, o->kind);
		if ((o->kind == VOS_OBJ_DELETED || o->kind == VOS_OBJ_MEMFD) && o->p[1] > VOS_MAX_FILE_SIZE)
			return bad(e, img, &img->objects_rec, "object %u claims %llu bytes", o->id, (unsigned long long)o->p[1]);
		if (o->kind == VOS_OBJ_INOTIFY && (o->p[1] > VOS_MAX_INOTIFY_WATCHES || (o->p[1] > 0 && !o->has_data)))
			return bad(e, img, &img->objects_rec, "inotify object %u claims %llu watches", o->id, (unsigned long long)o->p[1]);
	}
	for (int i = 0; i < img->nobjects; i++) {
		const struct img_object *o = &img->objects[i];
		if (o->kind == VOS_OBJ_INOTIFY && o->has_data && check_inotify(img, o, e) < 0)
			return -1;
	}
	for (int i = 0; i < img->nobjects; i++) {
		const struct img_object *o = &img->objects[i];
		uint64_t at;
		if (o->kind == VOS_OBJ_SOCKETPAIR && o->p[3] != ~0ull && (o->p[3] > UINT32_MAX || !u64map_get(ids, o->p[3], &at)))
			return bad(e, img, &img->objects_rec, "socket %u names a peer that is not there", o->id);
		if (o->kind == VOS_OBJ_QUEUED_CLIENT &&
		    (o->p[0] > UINT32_MAX || !u64map_get(ids, o->p[0], &at) || img->objects[at].kind != VOS_OBJ_LISTEN_SOCKET ||
		     img->objects[at].p[1] != AF_UNIX || o->p[3] >= (uint64_t)img->nobjects))
			return bad(e, img, &img->objects_rec, "waiting connection %u names no Unix listener of the image", o->id);
		if (o->kind == VOS_OBJ_TCP_PAIR) {
			struct sockaddr_storage l, p;
			if (o->p[0] > UINT32_MAX || o->p[0] == o->id || !u64map_get(ids, o->p[0], &at) ||
			    img->objects[at].kind != VOS_OBJ_TCP_PAIR || img->objects[at].p[0] != o->id)
				return bad(e, img, &img->objects_rec, "TCP connection end %u names no other end of the image", o->id);
			if (tcp_pair_addresses(o, &l, &p) < 0 || (o->p[3] & ~VOS_TCP_FLAGS) != 0 || (o->has_data && o->messages != 0))
				return bad(e, img, &img->objects_rec, "TCP connection end %u has addresses or flags that cannot be", o->id);
		}
		if (o->kind == VOS_OBJ_RELAYED && ((o->p[1] != AF_INET && o->p[1] != AF_INET6 && o->p[1] != AF_UNIX) ||
						   o->p[2] != SOCK_STREAM ||
						   (o->p[3] & ~(uint64_t)(VOS_TCP_NODELAY | VOS_TCP_KEEPALIVE)) != 0))
			return bad(e, img, &img->objects_rec, "relayed connection %u is of family %llu, type %llu, flags %#llx",
				   o->id, (unsigned long long)o->p[1], (unsigned long long)o->p[2], (unsigned long long)o->p[3]);
		if (o->kind == VOS_OBJ_LISTEN_SOCKET && (o->p[1] > UINT16_MAX || o->p[2] > UINT16_MAX))
			return bad(e, img, &img->objects_rec, "listening socket %u is of family %llu, type %llu", o->id,
				   (unsigned long long)o->p[1], (unsigned long long)o->p[2]);
	}
	return 0;
}

/* The areas of p, checked: each inside the user address space, page-aligned, in order and apart,
 * of a known kind, naming a file or shared memory object the image has. */
static int check_areas(struct image *img, const struct img_process *p, struct err *e)
{
	for (uint32_t i = 0; i < p->nvmas; i++) {
		const struct img_vma *v = &p->vmas[i];
		/* The vsyscall page lies above user space; it is not restored. */
		uint64_t top = v->kind == VOS_VMA_VSYSCALL ? UINT64_MAX : VOS_MAX_ADDRESS;
		if (v->start >= v->end || v->end > top || v->start % PAGE || v->end % PAGE || v->pgoff % PAGE ||
		    v->pgoff > VOS_MAX_FILE_SIZE)
			return bad(e, img, &p->rec, "process %d has an area %#llx-%#llx", (int)p->pid, (unsigned long long)v->start,
				   (unsigned long long)v->end);
		if (i > 0 && v->start < p->vmas[i - 1].end)
			return bad(e, img, &p->rec, "process %d has areas out of order at %#llx", (int)p->pid, (unsigned long long)v->start);
		if (v->kind < VOS_VMA_ANON || v->kind > VOS_VMA_VSYSCALL)
			return bad(e, img, &p->rec, "process %d has an area of unknown kind %u", (int)p->pid, v->kind);
		if (v->kind == VOS_VMA_FILE && v->file_id >= (uint32_t)img->nfiles)
			return bad(e, img, &p->rec, "process %d maps file %u, which the image does not describe", (int)p->pid, v->file_id);
		if (v->kind == VOS_VMA_SHMEM && v->file_id >= img->shm_areas)
			return bad(e, img, &p->rec, "process %d maps shared memory object %u, which is out of range", (int)p->pid, v->file_id);
	}
	return 0;
}

static int check_processes(struct image *img, const struct u64map *objects, struct err *e)
{
	struct u64map pids = {0};
	int rc = 0;
	for (int i = 0; i < img->nprocs && rc == 0; i++) {
		const struct img_process *p = &img->procs[i];
		uint64_t seen;
		if (p->pid <= 0 || u64map_get(&pids, (uint64_t)p->pid, &seen))
			rc = bad(e, img, &p->rec, "process %d is not a valid pid, or is there twice", (int)p->pid);
		else if (p->nthreads == 0)
			rc = bad(e, img, &p->rec, "process %d has no threads", (int)p->pid);
		else
			rc = check_areas(img, p, e);
		u64map_put(&pids, (uint64_t)p->pid, 1);
		for (uint32_t k = 0; k < p->nfds && rc == 0; k++) {
			const struct img_fd *fd = &p->fds[k];
			if (fd->fd < 0 || (uint32_t)fd->fd >= VOS_MAX_FD || !u64map_get(objects, fd->object, &seen))
				rc = bad(e, img, &p->rec, "process %d has fd %d on object %u, which is not there", (int)p->pid, fd->fd, fd->object);
		}
	}
	u64map_free(&pids);
	return rc;
}

/* Each lock: a known kind and type, a range in order, through an object of the image that can be
 * locked; a POSIX lock's process is in the image and has an fd on that object. */
static int check_locks(struct image *img, const struct u64map *objects, struct err *e)
{
	for (uint32_t i = 0; i < img->nlocks; i++) {
		const struct vos_lock_rec *l = &img->locks[i];
		uint64_t at;
		if (l->kind < VOS_LOCK_FLOCK || l->kind > VOS_LOCK_OFD || (l->type != VOS_LOCK_READ && l->type != VOS_LOCK_WRITE))
			return bad(e, img, &img->locks_rec, "lock %u is of unknown kind %u or type %u", i, l->kind, l->type);
		if (l->start > l->end || l->start > (uint64_t)INT64_MAX || (l->end != VOS_LOCK_TO_EOF && l->end >= (uint64_t)INT64_MAX))
			return bad(e, img, &img->locks_rec, "lock %u has the range %llu-%llu", i, (unsigned long long)l->start,
				   (unsigned long long)l->end);
		if (!u64map_get(objects, l->object, &at))
			return bad(e, img, &img->locks_rec, "lock %u is on object %u, which is not there", i, l->object);
		uint32_t kind = img->objects[at].kind;
		if (kind != VOS_OBJ_FILE && kind != VOS_OBJ_DELETED && kind != VOS_OBJ_MEMFD)
			return bad(e, img, &img->locks_rec, "lock %u is on object %u, which is not a file", i, l->object);
		if (l->kind != VOS_LOCK_POSIX) {
			if (l->pid != 0)
				return bad(e, img, &img->locks_rec, "lock %u of an open file names process %d", i, (int)l->pid);
			continue;
		}
		struct img_process *p = image_process(img, l->pid);
		int through = 0;
		for (uint32_t k = 0; p && k < p->nfds && !through; k++)
			through = p->fds[k].object == l->object;
		if (!through)
			return bad(e, img, &img->locks_rec, "lock %u belongs to process %d, which has no fd on object %u", i, (int)l->pid,
				   l->object);
		p->nlocks++;
	}
	return 0;
}

/* Each semaphore set: an id the kernel can give (0 to 2^31-1, once), semaphores and values within
 * the kernel's limits. */
static int check_sysv_ipc(struct image *img, struct err *e)
{
	struct u64map ids = {0};
	int rc = 0;
	for (uint32_t i = 0; i < img->nsems && rc == 0; i++) {
		const struct img_sem_set *s = &img->sems[i];
		uint64_t seen;
		if (s->id < 0 || u64map_get(&ids, (uint64_t)s->id, &seen))
			rc = bad(e, img, &img->sysv_rec, "semaphore set %d is not a valid id, or is there twice", (int)s->id);
		else if (s->nsems == 0 || s->mode > 0777)
			rc = bad(e, img, &img->sysv_rec, "semaphore set %d has %u semaphores and mode %o", (int)s->id, s->nsems, s->mode);
		u64map_put(&ids, (uint64_t)s->id, 1);
		for (uint32_t k = 0; k < s->nsems && rc == 0; k++)
			if (s->values[k] > VOS_MAX_SEM_VALUE)
				rc = bad(e, img, &img->sysv_rec, "semaphore %u of set %d has the value %u", k, (int)s->id, s->values[k]);
	}
	u64map_free(&ids);
	return rc;
}

static int check_files(struct image *img, struct err *e)
{
	for (int i = 0; i < img->nfiles; i++) {
		const struct img_file *f = &img->files[i];
		if (!f->present)
			return bad(e, img, f->ndata ? &f->data[0] : NULL, "mapped file %d has no description", i);
		if (f->size > VOS_MAX_FILE_SIZE)
			return bad(e, img, &f->rec, "mapped file %d claims %llu bytes", i, (unsigned long long)f->size);
		if (f->kind > VOS_FILE_THERE)
			return bad(e, img, &f->rec, "mapped file %d is of unknown kind %u", i, f->kind);
		/* A FILEREF's content is a parent's: none here, and a file deleted has no parent's copy. */
		if (f->in_parent && (f->ndata || f->kind != VOS_FILE_ON_DISK || !image_needs_parent(img)))
			return bad(e, img, &f->rec, "mapped file %d refers to its parent image for its content, but %s", i,
				   f->ndata ? "has data of its own" : f->kind == VOS_FILE_DELETED ? "was deleted" : "is left to a move's target");
		/* One left to the target has no content here. */
		if (f->kind == VOS_FILE_THERE && f->ndata)
			return bad(e, img, &f->rec, "mapped file %d is left to the target's copy, but has data of its own", i);
		for (uint32_t k = 0; k < f->nranges; k++)
			if (f->ranges[k][0] > VOS_MAX_FILE_SIZE || f->ranges[k][1] > VOS_MAX_FILE_SIZE)
				return bad(e, img, &f->rec, "mapped file %d has a range at %llu", i, (unsigned long long)f->ranges[k][0]);
		for (int k = 0; k < f->ndata; k++) {
			const struct record *rec = &f->data[k];
			uint64_t off;
			errno = 0;
			if (pread_full(img->fd, &off, sizeof off, rec->offset + 8) < 0)
				return errno ? fail(e, "%s: cannot read: %s", img->name, strerror(errno)) : bad(e, img, rec, "a file's data is cut short");
			if (off > f->size || rec->length - 16 > f->size - off)
				return bad(e, img, rec, "data of mapped file %d lies outside it (%llu bytes at %llu)", i,
					   (unsigned long long)(rec->length - 16), (unsigned long long)off);
		}
	}
	return 0;
}

/* The area of p holding addr, from *hint on (areas are in order). */
static const struct img_vma *area_at(const struct img_process *p, uint64_t addr, uint32_t *hint)
{
	for (uint32_t i = *hint < p->nvmas && p->vmas[*hint].start <= addr ? *hint : 0; i < p->nvmas; i++) {
		if (addr < p->vmas[i].start)
			return NULL;
		if (addr < p->vmas[i].end) {
			*hint = i;
			return &p->vmas[i];
		}
	}
	return NULL;
}

/* Whether [addr, addr + len) lies in areas of p that follow each other without a gap (a run may
 * span neighbouring areas). */
static int inside_areas(const struct img_process *p, uint64_t addr, uint64_t len, uint32_t *hint)
{
	const struct img_vma *v = area_at(p, addr, hint);
	if (!v || len > VOS_MAX_ADDRESS || addr + len > VOS_MAX_ADDRESS)
		return 0;
	for (uint32_t i = *hint; addr + len > v->end; v = &p->vmas[i]) {
		if (++i >= p->nvmas || p->vmas[i].start != v->end)
			return 0;
	}
	return 1;
}

/* Every run of a PAGES or PRECOPY record: inside the record (run_next), of a kind the record may
 * hold, page-aligned, and inside the memory it fills: the areas of process p, or the first
 * `extent` bytes of a shared memory object (p NULL). *pages counts the pages. */
static int check_runs(struct image *img, const struct record *rec, const struct img_process *p, uint64_t extent, uint32_t max_kind,
		      uint64_t *pages, struct err *e)
{
	struct run_cursor cur;
	run_cursor_init(&cur, img->fd, rec);
	struct page_run h;
	uint32_t hint = 0;
	int rc;
	while ((rc = run_next(&cur, &h, e)) == 1) {
		uint64_t len = (uint64_t)h.npages * PAGE;
		if (h.kind > max_kind)
			return bad(e, img, rec, "a run of pages is of kind %u", h.kind);
		if (h.addr % PAGE || h.npages == 0)
			return bad(e, img, rec, "a run of pages at %#llx is not a whole number of pages", (unsigned long long)h.addr);
		int inside = p ? inside_areas(p, h.addr, len, &hint) : h.addr <= extent && len <= extent - h.addr;
		if (!inside)
			return bad(e, img, rec, "a run of %u pages at %#llx lies outside the memory it fills", h.npages,
				   (unsigned long long)h.addr);
		*pages += h.npages;
	}
	return rc;
}

static int check_pages(struct image *img, struct err *e)
{
	uint64_t pages = 0;
	for (int i = 0; i < img->nprocs; i++) {
		const struct img_process *p = &img->procs[i];
		for (int k = 0; k < p->npages; k++)
			if (check_runs(img, &p->pages[k], p, 0, image_needs_parent(img) ? VOS_RUN_PARENT : VOS_RUN_KEPT, &pages, e) < 0)
				return -1;
	}
	for (int s = 0; s < img->nshms; s++) {
		uint64_t extent = 0; /* the shared memory object reaches as far as the areas mapping it */
		for (int i = 0; i < img->nprocs; i++)
			for (uint32_t k = 0; k < img->procs[i].nvmas; k++) {
				const struct img_vma *v = &img->procs[i].vmas[k];
				if (v->kind == VOS_VMA_SHMEM && v->file_id == (uint32_t)s && v->pgoff + (v->end - v->start) > extent)
					extent = v->pgoff + (v->end - v->start);
			}
		for (int k = 0; k < img->shms[s].npages; k++)
			if (check_runs(img, &img->shms[s].pages[k], NULL, extent, VOS_RUN_ZERO, &pages, e) < 0)
				return -1;
	}
	/* Pages sent ahead go into an index (precopy.c) before any is used: bound it. Those of a
	 * process the image does not name are never read. */
	uint64_t ahead = 0;
	for (int k = 0; k < img->nprecopy; k++) {
		const struct img_process *p = image_process(img, img->precopy[k].pid);
		if (p && check_runs(img, &img->precopy[k].rec, p, 0, VOS_RUN_ZERO, &ahead, e) < 0)
			return -1;
		if (ahead > VOS_MAX_PRECOPY_PAGES)
			return bad(e, img, &img->precopy[k].rec, "more than %u pages were sent ahead", VOS_MAX_PRECOPY_PAGES);
	}
	return 0;
}

int image_needs_parent(const struct image *img)
{
	return img->have_chain && img->chain.depth > 0;
}

void chain_id_text(const uint8_t id[VOS_CHAIN_ID], char out[2 * VOS_CHAIN_ID + 1])
{
	for (int i = 0; i < VOS_CHAIN_ID; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static int check_chain(struct image *img, struct err *e)
{
	if (!img->have_chain)
		return 0;
	int whole = 1, unnamed = 1;
	for (int i = 0; i < VOS_CHAIN_ID; i++) {
		whole &= img->chain.parent[i] == 0;
		unnamed &= img->chain.id[i] == 0;
	}
	if (unnamed || img->chain.depth >= VOS_MAX_CHAIN || whole != (img->chain.depth == 0))
		return bad(e, img, NULL, "its chain record names no id, or a parent that does not fit its depth %u", img->chain.depth);
	return 0;
}

int image_check(struct image *img, struct err *e)
{
	if (check_chain(img, e) < 0)
		return -1;
	struct u64map objects = {0};
	int rc = check_objects(img, &objects, e);
	if (rc == 0)
		rc = check_processes(img, &objects, e);
	if (rc == 0)
		rc = check_locks(img, &objects, e);
	if (rc == 0)
		rc = check_sysv_ipc(img, e);
	u64map_free(&objects);
	if (rc == 0)
		rc = check_files(img, e);
	if (rc == 0)
		rc = check_pages(img, e);
	return rc;
}
