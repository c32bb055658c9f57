/* Process state read from the pod's /proc while the process is stopped. */
#include <ctype.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dump.h"

int read_proc_stat(pid_t pid, struct proc_stat *st, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	char *text = read_text_file(path, NULL);
	if (!text)
		return fail(e, "cannot read %s: %s", path, strerror(errno));
	memset(st, 0, sizeof *st);
	st->pid = pid;
	char *open = strchr(text, '('), *close = strrchr(text, ')');
	if (!open || !close || close < open) {
		free(text);
		return fail(e, "cannot parse %s", path);
	}
	size_t clen = (size_t)(close - open - 1);
	if (clen >= sizeof st->comm)
		clen = sizeof st->comm - 1;
	memcpy(st->comm, open + 1, clen);
	/* Fields from 3 on, after the command name. */
	unsigned long long f[60] = {0};
	char state = '?';
	char *p = close + 2;
	if (sscanf(p, "%c", &state) != 1) {
		free(text);
		return fail(e, "cannot parse %s", path);
	}
	p += 2;
	int i = 4;
	while (*p && i < 60) {
		f[i++] = strtoull(p, &p, 10);
		while (*p == ' ')
			p++;
	}
	free(text);
	st->state = state;
	st->ppid = (pid_t)f[4];
	st->pgid = (pid_t)f[5];
	st->sid = (pid_t)f[6];
	st->tty_nr = (int)f[7];
	st->tpgid = (int)(long long)f[8];
	st->flags = (unsigned)f[9];
	st->start_code = f[26];
	st->end_code = f[27];
	st->start_stack = f[28];
	st->start_data = f[45];
	st->end_data = f[46];
	st->start_brk = f[47];
	st->arg_start = f[48];
	st->arg_end = f[49];
	st->env_start = f[50];
	st->env_end = f[51];
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

/* The adopted terminal session a pod init outside namespaces serves (0: none). Global: set once
 * by that pod init (init/adopt.c) before it serves any checkpoint, only read afterwards. */
static pid_t adopted_session;

void dump_note_adopted_session(pid_t sid)
{
	adopted_session = sid;
}

/* Whether pid belongs to the pod: with an adopted session, whether it is in that session. */
static int in_pod(pid_t pid)
{
	if (!adopted_session)
		return 1;
	struct proc_stat st;
	struct err ignore;
	return read_proc_stat(pid, &st, &ignore) == 0 && st.sid == adopted_session;
}

void dump_pod_view(pid_t *ppid, pid_t *sid)
{
	if (!adopted_session)
		return;
	if (*sid == adopted_session)
		*sid = 1;
	if (!in_pod(*ppid))
		*ppid = 1;
}

int list_pod_pids(pid_t **out, int *n, struct err *e)
{
	DIR *d = opendir("/proc");
	if (!d)
		return fail(e, "cannot list /proc: %s", strerror(errno));
	int cap = 32, count = 0;
	pid_t *pids = xmalloc((size_t)cap * sizeof *pids);
	struct dirent *de;
	pid_t self = getpid();
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid == self || !in_pod(pid))
			continue;
		if (count == cap) {
			cap *= 2;
			pids = xrealloc(pids, (size_t)cap * sizeof *pids);
		}
		pids[count++] = pid;
	}
	closedir(d);
	qsort(pids, (size_t)count, sizeof *pids, cmp_pid);
	*out = pids;
	*n = count;
	return 0;
}

const char *describe_pid(pid_t pid, char *buf, size_t size)
{
	char path[64], comm[64] = "?";
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	char *text = read_text_file(path, NULL);
	if (text) {
		snprintf(comm, sizeof comm, "%s", text);
		comm[strcspn(comm, "\n")] = 0;
		free(text);
	}
	snprintf(buf, size, "process %d (%s)", (int)pid, comm);
	return buf;
}

int status_field(pid_t pid, const char *name, char *out, size_t size)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	char *text = read_text_file(path, NULL);
	if (!text)
		return -1;
	size_t nlen = strlen(name);
	int rc = -1;
	for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, name, nlen) == 0 && line[nlen] == ':') {
			char *v = line + nlen + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t l = strcspn(v, "\n");
			if (l >= size)
				l = size - 1;
			memcpy(out, v, l);
			out[l] = 0;
			rc = 0;
			break;
		}
	}
	free(text);
	if (rc < 0)
		errno = ENODATA; /* read, but no such field */
	return rc;
}

int has_runtime(pid_t pid)
{
	char v[32];
	if (status_field(pid, "SigCgt", v, sizeof v) < 0)
		return 0;
	unsigned long long mask = strtoull(v, NULL, 16);
	return (mask >> (VOS_SIGNAL - 1)) & 1;
}

/* Whether an executable has no program interpreter (statically linked). -1: cannot tell. */
static int is_static(const char *exe)
{
	int fd = open(exe, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	Elf64_Ehdr eh;
	int result = -1;
	if (pread_full(fd, &eh, sizeof eh, 0) == 0 && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
	    eh.e_ident[EI_CLASS] == ELFCLASS64) {
		result = 1;
		for (int i = 0; i < eh.e_phnum; i++) {
			Elf64_Phdr ph;
			if (pread_full(fd, &ph, sizeof ph, eh.e_phoff + (uint64_t)i * eh.e_phentsize) < 0)
				break;
			if (ph.p_type == PT_INTERP) {
				result = 0;
				break;
			}
		}
	}
	close(fd);
	return result;
}

int runtime_can_load(pid_t pid)
{
	char exe[4096], path[64];
	snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
	struct stat st;
	if (read_link(path, exe, sizeof exe) < 0 || stat(exe, &st) < 0)
		return 0;
	return !(st.st_mode & (S_ISUID | S_ISGID)) && is_static(exe) == 0;
}

static uint64_t parse_mask(const char *hex)
{
	return strtoull(hex, NULL, 16);
}

/*
 * A restored process has pod init's user and groups (the image has no others). Root's pod maps
 * every id (init/pod.c), so a process there may have switched to another user (su, a daemon that
 * drops privileges): refused, rather than restored as root.
 */
int same_identity(pid_t pid, struct err *e)
{
	static const char *const fields[] = {"Uid", "Gid", "Groups"};
	for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
		char mine[256], theirs[256];
		if (status_field(getpid(), fields[i], mine, sizeof mine) < 0)
			return fail(e, "cannot read our own %s: %s", fields[i], strerror(errno));
		if (status_field(pid, fields[i], theirs, sizeof theirs) < 0) {
			/* It exited since it was listed (a short sleep in a shell loop): nothing to refuse;
			 * the stop that follows finds it gone or a zombie. */
			if (errno == ESRCH || errno == ENOENT)
				return 0;
			return fail(e, "cannot read the %s of process %d: %s", fields[i], (int)pid, strerror(errno));
		}
		if (strcmp(mine, theirs) != 0) {
			char name[96];
			return fail_code(e, "unsupported", "%s runs as another user or group (%s %s; the session's: %s), which vOS cannot restore",
					 describe_pid(pid, name, sizeof name), fields[i], theirs, mine);
		}
	}
	return 0;
}

int dump_process_state(pid_t pid, const struct frozen *fz, uint64_t session_tty_rdev, struct buf *b, struct err *e)
{
	struct proc_stat st;
	if (read_proc_stat(pid, &st, e) < 0)
		return -1;
	char path[64], link[4096];

	dump_pod_view(&st.ppid, &st.sid);
	buf_i32(b, pid);
	buf_i32(b, st.ppid);
	buf_i32(b, st.pgid);
	buf_i32(b, st.sid);
	/* A controlling terminal that is a pty of the pod's own (not the session's): its index. */
	unsigned tty_major = ((unsigned)st.tty_nr >> 8) & 0xfff, tty_minor = ((unsigned)st.tty_nr & 0xff) | (((unsigned)st.tty_nr >> 12) & 0xfff00);
	int32_t inner = -1;
	if (tty_major >= 136 && tty_major <= 143 && (uint64_t)makedev(tty_major, tty_minor) != session_tty_rdev)
		inner = (int32_t)((tty_major - 136) * 256 + tty_minor);
	buf_i32(b, inner);
	buf_i32(b, inner >= 0 ? st.tpgid : -1);
	buf_str(b, st.comm);

	snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
	if (read_link(path, link, sizeof link) < 0)
		link[0] = 0;
	buf_str(b, link);
	snprintf(path, sizeof path, "/proc/%d/cwd", (int)pid);
	if (read_link(path, link, sizeof link) < 0)
		return fail(e, "cannot read the working directory of process %d: %s", (int)pid, strerror(errno));
	buf_str(b, link);

	char v[64];
	unsigned umask_v = 022;
	if (status_field(pid, "Umask", v, sizeof v) == 0)
		umask_v = (unsigned)strtoul(v, NULL, 8);
	buf_u32(b, umask_v);
	unsigned nnp = 0;
	if (status_field(pid, "NoNewPrivs", v, sizeof v) == 0)
		nnp = (unsigned)atoi(v);
	buf_u32(b, nnp);

	/* memory layout for prctl(PR_SET_MM_MAP) */
	buf_u64(b, st.start_code);
	buf_u64(b, st.end_code);
	buf_u64(b, st.start_data);
	buf_u64(b, st.end_data);
	buf_u64(b, st.start_brk);
	buf_u64(b, fz->ctl->brk);
	buf_u64(b, st.start_stack);
	buf_u64(b, st.arg_start);
	buf_u64(b, st.arg_end);
	buf_u64(b, st.env_start);
	buf_u64(b, st.env_end);

	snprintf(path, sizeof path, "/proc/%d/auxv", (int)pid);
	size_t auxv_len = 0;
	char *auxv = read_text_file(path, &auxv_len);
	if (!auxv)
		return fail(e, "cannot read %s: %s", path, strerror(errno));
	buf_bytes(b, auxv, (uint32_t)auxv_len);
	free(auxv);

	buf_u32(b, RLIM_NLIMITS);
	for (int r = 0; r < RLIM_NLIMITS; r++) {
		struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
		prlimit(pid, (__rlimit_resource_t)r, NULL, &rl);
		buf_u64(b, rl.rlim_cur);
		buf_u64(b, rl.rlim_max);
	}

	for (int sig = 0; sig < VOS_NSIG; sig++) {
		const struct vos_ksigaction *a = &fz->ctl->sigactions[sig];
		buf_u64(b, a->handler);
		buf_u64(b, a->flags);
		buf_u64(b, a->restorer);
		buf_u64(b, a->mask);
	}
	for (int i = 0; i < 3; i++) {
		const struct vos_itimer *t = &fz->ctl->itimers[i];
		buf_i64(b, t->interval_sec);
		buf_i64(b, t->interval_usec);
		buf_i64(b, t->value_sec);
		buf_i64(b, t->value_usec);
	}
	uint64_t shared_pending = 0;
	if (status_field(pid, "ShdPnd", v, sizeof v) == 0)
		shared_pending = parse_mask(v) & ~(1ull << (VOS_SIGNAL - 1));
	buf_u64(b, shared_pending);

	buf_u64(b, fz->ctl_addr);
	uint32_t n = fz->ctl->nthreads;
	if (n > VOS_MAX_THREADS)
		return fail_code(e, "unsupported", "process %d has more than %d threads", (int)pid, VOS_MAX_THREADS);
	buf_u32(b, n);
	for (uint32_t i = 0; i < n; i++) {
		const struct vos_thread_rec *t = &fz->ctl->threads[i];
		buf_i32(b, t->tid);
		buf_u64(b, t->fs_base);
		buf_u64(b, t->gs_base);
		buf_u64(b, t->frame);
		buf_u64(b, t->clear_child_tid);
		buf_u64(b, t->robust_list);
		buf_u64(b, t->robust_len);
		uint64_t pending = 0;
		char tpath[96], tv[64];
		snprintf(tpath, sizeof tpath, "/proc/%d/task/%d/status", (int)pid, (int)t->tid);
		char *text = read_text_file(tpath, NULL);
		if (text) {
			char *p = strstr(text, "\nSigPnd:");
			if (p && sscanf(p + 8, " %63s", tv) == 1)
				pending = parse_mask(tv) & ~(1ull << (VOS_SIGNAL - 1));
			free(text);
		}
		buf_u64(b, pending);
	}
	uint32_t nt = fz->ctl->ntimers <= VOS_MAX_TIMERS ? fz->ctl->ntimers : 0;
	buf_u32(b, nt);
	for (uint32_t i = 0; i < nt; i++) {
		const struct vos_posix_timer *t = &fz->ctl->timers[i];
		buf_i32(b, t->id);
		buf_i32(b, t->clock);
		buf_i32(b, t->signo);
		buf_i32(b, t->notify);
		buf_i32(b, t->target_tid);
		buf_u64(b, t->value);
		buf_i64(b, t->interval_ns);
		buf_i64(b, t->value_ns);
	}
	return 0;
}
