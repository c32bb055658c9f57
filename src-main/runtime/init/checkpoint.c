/*
 * A checkpoint, from pod init's side: freeze the pod at the barrier, write the image while it is
 * frozen (the pod and process records, open files, memory), then either let it run again or end
 * it, and finally write what does not depend on the frozen state (the content of mapped files).
 * The image's frame is the requester's (checkpoint-request.c): it wrote HEADER before us and
 * adds SESSION and TRAILER after. Nothing is left frozen or half-written on failure: the pod is
 * resumed and the reply says why.
 *
 * A migration holds the pod instead (hold=1): everything is written while it is frozen, the
 * requester is told "held ...", and the pod stays frozen until the requester says "commit" (the
 * session runs elsewhere now: end it) or "abort" (or goes away, or HOLD_TIMEOUT_MS passes: let
 * it run again, exactly where it was). So a session never runs in two places at once.
 */
#include "checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/image-io.h"
#include "../common/status.h"
#include "../dump/dump.h"
#include "control.h"
#include "pod.h"

static void put_terminal(struct pod *pod, struct buf *b)
{
	struct termios t;
	struct winsize ws = {24, 80, 0, 0};
	memset(&t, 0, sizeof t);
	pid_t fg = -1;
	uint32_t have = 0;
	if (pod->tty_fd >= 0 && tcgetattr(pod->tty_fd, &t) == 0) {
		have = 1;
		ioctl(pod->tty_fd, TIOCGWINSZ, &ws);
		fg = tcgetpgrp(pod->tty_fd);
	}
	/* An adopted session's terminal is its leader's controlling one, not ours: its foreground
	 * group as the leader's /proc shows it. */
	struct proc_stat st;
	struct err ignore;
	if (have && pod->adopted_sid && read_proc_stat(pod->main_pid, &st, &ignore) == 0 && st.tpgid > 0)
		fg = st.tpgid;
	buf_u32(b, have);
	buf_i32(b, fg);
	buf_u32(b, t.c_iflag);
	buf_u32(b, t.c_oflag);
	buf_u32(b, t.c_cflag);
	buf_u32(b, t.c_lflag);
	buf_u8(b, t.c_line);
	buf_u32(b, NCCS);
	buf_put(b, t.c_cc, NCCS);
	buf_u32(b, (uint32_t)cfgetispeed(&t));
	buf_u32(b, (uint32_t)cfgetospeed(&t));
	buf_u16(b, ws.ws_row);
	buf_u16(b, ws.ws_col);
	buf_u16(b, ws.ws_xpixel);
	buf_u16(b, ws.ws_ypixel);
}

static int write_pod(struct pod *pod, const struct freeze *f, struct image_writer *w, struct err *e)
{
	struct buf b;
	buf_init(&b);
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	buf_u64(&b, ((uint64_t)hi << 32) | lo); /* the CPU state components the threads' frames hold */
	buf_i32(&b, pod->main_pid);
	put_terminal(pod, &b);
	buf_u32(&b, (uint32_t)f->nprocs);
	for (int i = 0; i < f->nprocs; i++) {
		struct proc_stat st;
		if (read_proc_stat(f->procs[i].pid, &st, e) < 0) {
			buf_free(&b);
			return -1;
		}
		dump_pod_view(&st.ppid, &st.sid);
		buf_i32(&b, st.pid);
		buf_i32(&b, st.ppid);
		buf_i32(&b, st.pgid);
		buf_i32(&b, st.sid);
		buf_u32(&b, f->procs[i].ctl->nthreads);
	}
	buf_u32(&b, (uint32_t)f->nzombies);
	for (int i = 0; i < f->nzombies; i++) {
		pid_t ppid = f->zombies[i].ppid, sid = f->zombies[i].sid;
		dump_pod_view(&ppid, &sid);
		buf_i32(&b, f->zombies[i].pid);
		buf_i32(&b, ppid);
		buf_i32(&b, f->zombies[i].pgid);
		buf_i32(&b, sid);
		buf_i32(&b, f->zombies[i].exit_status);
	}
	/* The clocks as the pod sees them: a restore elsewhere keeps its monotonic clocks going on
	 * from here (a time namespace), instead of jumping to that machine's. */
	static const clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME};
	for (size_t i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
		struct timespec ts = {0, 0};
		clock_gettime(clocks[i], &ts);
		buf_i64(&b, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
	}
	int rc = iw_record1(w, VOS_REC_POD, b.data, b.len, e);
	buf_free(&b);
	return rc;
}

/* The smaps of the processes an incremental checkpoint expects, read before the freeze: the page
 * walk that reading smaps costs (the kernel counts every present page: for 256 MiB about as much
 * as the rest of an incremental image) is then outside the frozen time. While frozen, a process
 * whose areas are still the same (/proc/PID/maps, no walk) is described from it. What it cannot
 * see: advice given to a whole area (madvise: huge pages, fork, dump) in the moment between this
 * read and the freeze; the next image has it. */
struct early_smaps {
	pid_t *pids;
	char **texts;
	int n;
};

static void early_read(const struct dirty_tracker *t, struct early_smaps *es)
{
	es->pids = xcalloc((size_t)t->nprocs + 1, sizeof *es->pids);
	es->texts = xcalloc((size_t)t->nprocs + 1, sizeof *es->texts);
	for (int i = 0; i < t->nprocs; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/smaps", (int)dirty_pid(t, i));
		char *text = read_text_file(path, NULL);
		if (!text)
			continue; /* gone, or not readable: read while frozen, as without */
		es->pids[es->n] = dirty_pid(t, i);
		es->texts[es->n++] = text;
	}
}

static const char *early_of(const struct early_smaps *es, pid_t pid)
{
	for (int i = 0; i < es->n; i++)
		if (es->pids[i] == pid)
			return es->texts[i];
	return NULL;
}

static void early_free(struct early_smaps *es)
{
	for (int i = 0; i < es->n; i++)
		free(es->texts[i]);
	free(es->texts);
	free(es->pids);
	memset(es, 0, sizeof *es);
}

static int write_process(const struct frozen *fz, const char *early, struct mem_dump *md, struct files_dump *files,
			 struct dirty_tracker *t, struct image_writer *w, uint64_t tty_rdev, struct err *e)
{
	struct vma_list vmas;
	if (collect_vmas_early(fz->pid, early, md, &vmas, e) < 0)
		return -1;
	struct buf b;
	buf_init(&b);
	int rc = dump_process_state(fz->pid, fz, tty_rdev, &b, e);
	if (rc == 0) {
		put_vmas(&vmas, &b);
		put_fd_table(files, fz->pid, &b);
		rc = iw_record1(w, VOS_REC_PROCESS, b.data, b.len, e);
	}
	buf_free(&b);
	if (rc == 0)
		rc = dump_pages(fz->pid, md, &vmas, t, w, e);
	vma_list_free(&vmas);
	return rc;
}

/* Which processes were stopped from outside (ptrace: no runtime in them) and why: "outside WHO:
 * WHY" lines, for the checkpoint's result. */
static void say_stopped_outside(const struct freeze *f, int conn)
{
	for (int i = 0; i < f->nprocs; i++) {
		if (!f->procs[i].pt)
			continue;
		char who[128], line[CONTROL_LINE_MAX];
		snprintf(line, sizeof line, "outside %s: %s", describe_pid(f->procs[i].pid, who, sizeof who), f->procs[i].why_pt);
		control_send(conn, line, -1);
	}
}

static void end_pod(const struct pod *pod, const struct freeze *f)
{
	if (pod->adopted_sid) {
		/* Outside namespaces: the adopted session's processes, and nothing else of the
		 * user's; we follow when its leader ends. */
		for (int i = 0; i < f->nprocs; i++)
			kill(f->procs[i].pid, SIGKILL);
		return;
	}
	/* Everything but us; we follow when the program's end is reaped. */
	kill(-1, SIGKILL);
}

/* How long the frozen pod waits for the requester's word that the screen is saved. The
 * requester itself gives the agent 2 s from "frozen" and then says "abort": this bound only
 * matters for a requester that hangs, and is longer so that the requester's word comes first. */
#define SCREEN_WAIT_MS 5000

/* How long a held pod waits for the requester's verdict before it runs again. */
#define HOLD_TIMEOUT_MS (10 * 60 * 1000)

/* Held: tells the requester, waits for its verdict (answering "sockets" meanwhile). 1: commit,
 * 0: anything else. */
static int await_verdict(int conn, const char *held, const struct files_dump *files)
{
	if (control_send(conn, held, -1) < 0)
		return 0;
	for (;;) {
		char line[CONTROL_LINE_MAX];
		int fd = -1;
		if (control_recv(conn, line, sizeof line, &fd, HOLD_TIMEOUT_MS) < 0)
			return 0;
		if (fd >= 0)
			close(fd);
		if (strcmp(line, "sockets") == 0) {
			if (send_relayed_sockets(files, conn) < 0)
				return 0;
			continue;
		}
		return strcmp(line, "commit") == 0;
	}
}

/* ---- incremental checkpoints ----
 *
 * A checkpoint that asks for it (incremental=1) leaves write tracking on after it (pod->inc: a
 * userfaultfd per process, as live migration's, kept by pod init) and names itself with a random
 * CHAIN id. The next one that names that id as its parent (parent=HEX: the agent's latest image
 * of the session) writes only the pages written since; the others are PARENT runs. Anything else
 * (no tracking yet, another parent, a failed checkpoint in between, a migration) gives a whole
 * image, and the requester is told why ("full <why>"). */

void incremental_forget(struct pod *pod, const char *why)
{
	if (pod->inc) {
		dirty_stop(pod->inc);
		free(pod->inc);
		pod->inc = NULL;
	}
	snprintf(pod->inc_lost, sizeof pod->inc_lost, "%.500s", why);
}

static int hex_id(const char *text, uint8_t id[VOS_CHAIN_ID])
{
	if (strlen(text) != 2 * VOS_CHAIN_ID)
		return -1;
	for (int i = 0; i < VOS_CHAIN_ID; i++) {
		unsigned v;
		if (sscanf(text + 2 * i, "%2x", &v) != 1)
			return -1;
		id[i] = (uint8_t)v;
	}
	return 0;
}

static void id_hex(const uint8_t id[VOS_CHAIN_ID], char out[2 * VOS_CHAIN_ID + 1])
{
	for (int i = 0; i < VOS_CHAIN_ID; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* What this checkpoint does about the chain, decided before the freeze. */
struct chain_plan {
	int on;               /* incremental=1 was asked */
	int refer;            /* pages of the parent become PARENT runs */
	struct vos_chain rec; /* the CHAIN record */
	char full[600];       /* why the image is whole, when asked for incremental */
};

static void plan_chain(struct pod *pod, const char *request, struct chain_plan *cp)
{
	memset(cp, 0, sizeof *cp);
	char v[80];
	cp->on = control_arg(request, "incremental", v, sizeof v) && strcmp(v, "1") == 0;
	if (!cp->on)
		return;
	if (getrandom(cp->rec.id, sizeof cp->rec.id, 0) != (ssize_t)sizeof cp->rec.id) {
		for (int i = 0; i < VOS_CHAIN_ID; i++) /* no randomness: time and pid still tell images apart */
			cp->rec.id[i] = (uint8_t)((uint64_t)now_monotonic_us() >> (i % 8 * 8)) ^ (uint8_t)getpid();
	}
	uint8_t parent[VOS_CHAIN_ID];
	int named = control_arg(request, "parent", v, sizeof v) && hex_id(v, parent) == 0;
	if (!pod->inc)
		snprintf(cp->full, sizeof cp->full, "%.590s", pod->inc_lost[0] ? pod->inc_lost : "the first checkpoint since the session started or was restored that tracks written pages");
	else if (!named)
		snprintf(cp->full, sizeof cp->full, "no previous image was named as its parent");
	else if (memcmp(parent, pod->inc_id, VOS_CHAIN_ID) != 0)
		snprintf(cp->full, sizeof cp->full, "the previous image is not the one this session's tracking started from (a checkpoint in between was not kept)");
	else if (pod->inc_depth + 1 >= VOS_MAX_CHAIN)
		snprintf(cp->full, sizeof cp->full, "a whole image every %u checkpoints bounds the chain", VOS_MAX_CHAIN);
	else {
		cp->refer = 1;
		memcpy(cp->rec.parent, parent, VOS_CHAIN_ID);
		cp->rec.depth = pod->inc_depth + 1;
	}
}

/* While frozen, before the image: tracking on (started here if need be), for the processes it
 * still follows; or off, cp->full saying why. */
static void arm_chain(struct pod *pod, struct freeze *f, struct chain_plan *cp)
{
	struct err e;
	if (!pod->inc) {
		if (dirty_available(&e) < 0) {
			incremental_forget(pod, e.msg);
			snprintf(cp->full, sizeof cp->full, "%.590s", e.msg);
			return;
		}
		pod->inc = xcalloc(1, sizeof *pod->inc);
		pod->inc->incremental = 1;
	}
	pod->inc->refer = cp->refer;
	dirty_prune(f, pod->inc);
}

/* After the image, still frozen: the processes not followed yet are from now on. A failure
 * loses tracking (the next image is whole and says why), not this image. */
static void follow_new(struct pod *pod, struct freeze *f)
{
	struct err e;
	if (pod->inc && dirty_adopt(pod, f, pod->inc, &e) < 0) {
		char why[600];
		snprintf(why, sizeof why, "written pages could not be tracked after the previous checkpoint: %.500s", e.msg);
		incremental_forget(pod, why);
	}
}

/* Live migration's rounds: stop when a round sends little, after PRECOPY_MAX_ROUNDS, or when
 * the pod writes about as fast as the rounds send (more rounds would not shorten the pause). */
#define PRECOPY_MAX_ROUNDS 8
#define PRECOPY_ENOUGH_PAGES 1024 /* 4 MiB: what the frozen pod sends quickly */

/* Sends the pod's memory while it runs (PRECOPY records). 1: the tracker watches the pod now;
 * 0: this kernel cannot track writes (the requester is told, the checkpoint goes on without);
 * -1: the image stream failed. */
static int precopy(struct pod *pod, int conn, struct dirty_tracker *t, struct image_writer *w, struct err *e)
{
	char line[CONTROL_LINE_MAX];
	incremental_forget(pod, "a live migration was tried since the previous checkpoint (its write tracking replaced this one's)");
	if (dirty_start(pod, t, e) < 0) {
		snprintf(line, sizeof line, "precopy unavailable %s", e->msg);
		control_send(conn, line, -1);
		return 0;
	}
	uint64_t previous = UINT64_MAX;
	while (t->rounds < PRECOPY_MAX_ROUNDS) {
		int64_t t0 = now_monotonic_us();
		if (dirty_round(t, w, e) < 0) {
			dirty_stop(t);
			return -1;
		}
		snprintf(line, sizeof line, "precopy round=%u pages=%" PRIu64 " sent_pages=%" PRIu64 " bytes=%" PRIu64 " us=%" PRId64,
			 t->rounds, t->round_pages, t->sent_pages, w->bytes, now_monotonic_us() - t0);
		control_send(conn, line, -1);
		if (t->round_pages <= PRECOPY_ENOUGH_PAGES)
			break;
		if (t->rounds >= 3 && t->round_pages * 10 > previous * 9)
			break; /* not converging */
		previous = t->round_pages;
	}
	return 1;
}

void checkpoint_run(struct pod *pod, int *out_fd, int conn, const char *request, char *reply, size_t size)
{
	char v[64];
	uint32_t records = control_arg(request, "records", v, sizeof v) ? (uint32_t)strtoul(v, NULL, 10) : 0;
	uint64_t bytes = control_arg(request, "bytes", v, sizeof v) ? strtoull(v, NULL, 10) : 0;
	uint32_t chain = control_arg(request, "chain", v, sizeof v) ? (uint32_t)strtoul(v, NULL, 10) : 0;
	int stop = control_arg(request, "stop", v, sizeof v) && strcmp(v, "1") == 0;
	int hold = control_arg(request, "hold", v, sizeof v) && strcmp(v, "1") == 0;
	/* A move whose requester keeps the connections to outside the pod open here (anchor.c). */
	int relay = control_arg(request, "relay", v, sizeof v) && strcmp(v, "1") == 0;

	struct image_writer w;
	iw_init(&w, *out_fd, records, bytes, chain);
	struct err e;
	struct freeze f;
	struct mem_dump md;
	struct files_dump files;
	memset(&md, 0, sizeof md);
	memset(&files, 0, sizeof files);

	uint64_t tty_rdev = 0;
	struct stat st;
	if (pod->tty_fd >= 0 && fstat(pod->tty_fd, &st) == 0)
		tty_rdev = st.st_rdev;

	struct dirty_tracker tracker;
	memset(&tracker, 0, sizeof tracker);
	struct chain_plan cp;
	plan_chain(pod, request, &cp);
	/* What will not survive, said before anything stops (the final, exact words come while frozen). */
	prescan_lost(conn, hold && relay);
	int live = 0;
	if (control_arg(request, "precopy", v, sizeof v) && strcmp(v, "1") == 0) {
		int r = precopy(pod, conn, &tracker, &w, &e);
		if (r < 0) {
			status_error_reply(reply, size, "checkpoint_failed", &e);
			return;
		}
		live = r == 1;
	}

	struct early_smaps early = {0};
	if (cp.refer && pod->inc && !live)
		early_read(pod->inc, &early);
	if (pod->inc && !live && cp.on)
		dirty_protect_before_freeze(pod->inc);

	int64_t t0 = now_monotonic_us();
	if (freeze_pod(pod, &f, &e) < 0) {
		early_free(&early);
		dirty_stop(&tracker);
		status_error_reply(reply, size, "checkpoint_failed", &e);
		return;
	}
	/* The agent takes its screen snapshot now: the program can print nothing more. */
	control_send(conn, "frozen", -1);
	say_stopped_outside(&f, conn);
	int rc = 0;
	if (cp.on && !live) {
		arm_chain(pod, &f, &cp);
		rc = iw_record1(&w, VOS_REC_CHAIN, &cp.rec, sizeof cp.rec, &e);
	}
	if (rc == 0)
		rc = write_pod(pod, &f, &w, &e);
	if (rc == 0)
		rc = dump_files(&f, &files, &md, tty_rdev, hold && relay, &e);
	if (rc == 0)
		warn_lost_sockets(&files, conn); /* what a restore will not carry, said before the image is done */
	if (rc == 0)
		rc = write_objects(&files, &w, &e);
	if (rc == 0)
		rc = write_locks(&files, &w, &e);
	if (rc == 0)
		rc = write_sysv_ipc(&f, &w, &e);
	uint32_t threads = 0;
	for (int i = 0; i < f.nprocs && rc == 0; i++) {
		threads += f.procs[i].ctl->nthreads;
		rc = write_process(&f.procs[i], early_of(&early, f.procs[i].pid), &md, &files, live ? &tracker : cp.on ? pod->inc : NULL, &w, tty_rdev, &e);
	}
	early_free(&early);
	if (rc == 0 && cp.on && !live)
		follow_new(pod, &f);
	/* The requester saves the screen while nothing can print to it; wait for it to say so
	 * (within reason: a requester that went quiet does not keep the pod frozen). "abort <why>":
	 * it has no screen, the image could not be restored, the checkpoint is called off. */
	char line[CONTROL_LINE_MAX];
	int ignored_fd;
	if (control_recv(conn, line, sizeof line, &ignored_fd, SCREEN_WAIT_MS) == 0) {
		if (ignored_fd >= 0)
			close(ignored_fd);
		if (rc == 0 && strncmp(line, "abort", 5) == 0)
			rc = fail(&e, "%s", line[5] == ' ' ? line + 6 : "the checkpoint was called off");
	}

	/* A plain checkpoint lets the pod run again before the mapped files are written (nothing
	 * depends on the frozen state any more); with stop it ends after them, and a held one
	 * (hold) waits for the requester's verdict once everything is written. */
	int resumed = 0;
	if (rc < 0 || (!stop && !hold)) {
		put_back_drained(&files);
		thaw_pod(&f);
		resumed = 1;
	}
	/* Frozen until the last process was told to run (thaw_pod notes when). */
	int64_t frozen_us = (resumed ? f.resumed_at_us : now_monotonic_us()) - t0;
	/* An incremental image leaves to its parent the mapped files the parent's chain holds; an
	 * image of the chain notes what it described for the next one (kept below if it succeeds). */
	struct file_memos described = {0};
	int chained = cp.on && !live;
	/* A move whose target said which mapped files it has (same size and mtime): the agent wrote
	 * their paths beside the control socket (files_there=1); their content stays out. */
	struct path_list there = {0};
	if (rc == 0 && hold && control_arg(request, "files_there", v, sizeof v) && strcmp(v, "1") == 0) {
		char list[4200];
		snprintf(list, sizeof list, "%s.there", pod->control_path);
		rc = path_list_load(&there, list, &e);
	}
	if (rc == 0)
		rc = dump_mapped_files(&md, &w, cp.refer ? pod->inc_files : NULL, &there, chained ? &described : NULL, &e);
	path_list_free(&there);
	if (!resumed) {
		int end = rc == 0;
		if (hold && rc == 0) {
			close(*out_fd); /* our records are all written; the requester finishes the image */
			*out_fd = -1;
			char held[CONTROL_LINE_MAX];
			snprintf(held, sizeof held,
				 "held processes=%d threads=%u zombies=%d frozen_us=%" PRId64 " records=%u bytes=%" PRIu64
				 " chain=%u files=%d there_files=%d",
				 f.nprocs, threads, f.nzombies, now_monotonic_us() - t0, w.records, w.bytes, w.chain, md.nfiles,
				 md.there_files);
			end = await_verdict(conn, held, &files);
			frozen_us = now_monotonic_us() - t0;
		}
		if (end) {
			end_pod(pod, &f);
			stop = 1;
		} else {
			put_back_drained(&files);
			thaw_pod(&f);
			frozen_us = f.resumed_at_us - t0;
			stop = 0;
		}
	}

	/* After the pod ended or runs again: its pages are no longer watched. */
	if (stop && !resumed) { /* ended */
		pod->stop_after_reply = xmalloc(sizeof tracker);
		*pod->stop_after_reply = tracker;
	} else {
		dirty_stop(&tracker);
	}
	char chain_words[160] = "";
	if (cp.on && !live) {
		if (pod->inc_files)
			file_memos_free(pod->inc_files);
		if (rc == 0 && pod->inc) {
			memcpy(pod->inc_id, cp.rec.id, VOS_CHAIN_ID);
			pod->inc_depth = cp.rec.depth;
			pod->inc_lost[0] = 0;
			if (!pod->inc_files)
				pod->inc_files = xcalloc(1, sizeof *pod->inc_files);
			*pod->inc_files = described; /* with inc_id: the files of the image it names */
			described = (struct file_memos){0};
		} else if (rc < 0) {
			incremental_forget(pod, "the previous checkpoint failed");
		}
		if (rc == 0 && !cp.refer) {
			char full[CONTROL_LINE_MAX];
			snprintf(full, sizeof full, "full %s", cp.full);
			control_send(conn, full, -1);
		}
		char id[2 * VOS_CHAIN_ID + 1];
		id_hex(cp.rec.id, id);
		snprintf(chain_words, sizeof chain_words, " image_id=%s depth=%u incremental=%d", id, cp.rec.depth, cp.refer);
	}
	if (rc == 0)
		snprintf(reply, size,
			 "ok processes=%d threads=%u zombies=%d frozen_us=%" PRId64 " records=%u bytes=%" PRIu64
			 " chain=%u pages=%" PRIu64 " zero_pages=%" PRIu64 " kept_pages=%" PRIu64 " files=%d parent_files=%d"
			 " file_bytes=%" PRIu64 " stopped=%d%s",
			 f.nprocs, threads, f.nzombies, frozen_us, w.records, w.bytes, w.chain, md.pages, md.zero_pages,
			 md.kept_pages, md.nfiles, md.parent_files, md.file_bytes, stop, chain_words);
	else
		status_error_reply(reply, size, "checkpoint_failed", &e);
	file_memos_free(&described);
	files_dump_free(&files);
	mem_dump_free(&md);
	freeze_free(&f);
}
