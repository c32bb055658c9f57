/*
 * A process's memory areas, from /proc/PID/smaps: where each one is, its kind (the image's
 * area kinds, see vos-image.h), the advice it was given, and the tables of mapped files and
 * shared memory objects the areas refer to (their content is written by pages.c and
 * mapped-files.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>

#include "dump.h"
#include "vos-image.h"

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

/* The device of the pod's own tmpfs (init/pod.c), 0 while it has none. Global: set once by pod
 * init before it serves any checkpoint and only read afterwards, also by the children it forks. */
static uint64_t private_mount_dev;

void dump_note_private_mount(uint64_t dev)
{
	private_mount_dev = dev;
}

int dump_on_private_mount(uint64_t dev)
{
	return private_mount_dev != 0 && dev == private_mount_dev;
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
		/* A file of the pod's own tmpfs is gone with the pod: its content goes into the image. */
		if (dump_on_private_mount(v->dev))
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

/* Parses smaps `text` (read from `path`; taken, freed here) into out. */
static int parse_smaps(char *text, const char *path, struct mem_dump *md, struct vma_list *out, struct err *e)
{
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

int collect_vmas(pid_t pid, struct mem_dump *md, struct vma_list *out, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
	char *text = read_text_file(path, NULL);
	if (!text)
		return fail(e, "cannot read %s: %s", path, strerror(errno));
	return parse_smaps(text, path, md, out, e);
}

/* Whether the areas of smaps `smaps` are those of maps `maps`: smaps's lines that are not
 * fields are maps's lines, written by the same code. */
static int same_areas(const char *smaps, const char *maps)
{
	const char *m = maps;
	for (const char *line = smaps; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		int field = 0;
		size_t token = strcspn(line, " \n");
		if (token > 0 && token <= len && line[token - 1] == ':')
			field = 1;
		if (!field) {
			if (strncmp(line, m, len) != 0 || (m[len] != '\n' && m[len] != 0))
				return 0;
			m += len + (m[len] == '\n');
		}
		line += len + (end != NULL);
	}
	return *m == 0;
}

int collect_vmas_early(pid_t pid, const char *early, struct mem_dump *md, struct vma_list *out, struct err *e)
{
	if (early) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
		char *maps = read_text_file(path, NULL);
		if (maps && same_areas(early, maps)) {
			free(maps);
			snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
			return parse_smaps(xstrdup(early), path, md, out, e);
		}
		free(maps);
	}
	return collect_vmas(pid, md, out, e);
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
