/*
 * vos-init: the native side of a vOS session.
 *
 *   vos-init [launch] [--control SOCKET] [--runtime LIBVOS] [--no-pod] -- PROGRAM [ARGS...]
 *       Start PROGRAM in a new pod on this terminal (what the agent runs on a session's pty).
 *   vos-init checkpoint --control SOCKET [--stop | --hold [--relay] [--files-there]] [--precopy] [--session] [--producer TEXT]
 *       Write an image of the pod to fd 3. vos-init writes every record of it: HEADER (naming
 *       --producer), then the pod writes its own, then SESSION and TRAILER (checkpoint-request.c).
 *       Prints the pod's progress and the outcome, one line each: "frozen" when the pod is
 *       frozen; then, with --session, the agent gives SESSION's content on stdin ("session N"
 *       and N bytes of JSON, within 2 s, or the checkpoint is called off and the pod runs
 *       again); "ok processes=N threads=N frozen_us=N ... bytes=N" (bytes: the whole image)
 *       or "error {status}" (common/status.h). With --hold (a migration) the pod stays frozen after
 *       "held processes=N ... bytes=N", sent once the image is complete and fd 3 closed: the
 *       next line on stdin, "commit" or anything else, ends it or lets it run again.
 *       --precopy (live migration): first send the memory while the pod runs, in rounds
 *       ("precopy ..." lines), then freeze and send only what changed since; falls back to a
 *       plain checkpoint where the kernel cannot track written pages ("precopy unavailable ...").
 *       --relay (with --hold): the pod's connections to outside it are kept open here: once the
 *       verdict was "commit" and the pod ended, this process holds them (the outcome said
 *       relays=N) and relays their bytes with the agent over fd 4 (anchor.c) until they end.
 *       --files-there (with --hold): the mapped files listed in SOCKET.there (a path per line:
 *       the move's target has them, same size and mtime) get no FILEDATA, only their FILE
 *       record (kind VOS_FILE_THERE); "held ..." says files=N there_files=N.
 *       --incremental [--parent ID]: write a CHAIN record and keep tracking written pages after;
 *       if ID is the CHAIN id of the pod's previous such image, write only what changed since
 *       (PARENT runs for the rest). A whole image says why first: "full <why>". The outcome
 *       adds image_id=ID depth=N incremental=0|1.
 *   vos-init restore --control SOCKET (--image FILE | --image-socket PATH) [--parent FILE]... [--hold] [--status PATH] [--runtime LIBVOS] [--cache DIR]
 *       --parent: an incremental image's parents, nearest first (each checked whole, and that
 *       it is the one the image names).
 *       Bring an image back to life on this terminal, in a new pod. --image-socket: receive
 *       the image from a Unix socket (a migration streams it) into memory first. --hold: the
 *       restored processes wait at the barrier until "go" (or "abort") on the control socket.
 *       --status: connect to the agent's Unix socket at PATH first and send the outcome there
 *       as one status line (common/status.h): the failure, or {"ok":true,...} once every process
 *       is restored (held or running).
 *   vos-init verify [--list] [--parent FILE]... FILE
 *       Check an image's integrity (every checksum, the trailer) and read it as a restore would
 *       (every field, the order of the records, every run of pages) without restoring it. --list
 *       first prints its records, one a line: "OFFSET LENGTH TYPE NAME" (the offset of the
 *       record, the length of its payload, its type number and name).
 *   vos-init host --socket PATH [--cols N] [--rows N] -- PROGRAM [ARGS...]
 *       The terminal host of a session (host.c): detached, it keeps PROGRAM's pty for agents.
 *   vos-init probe
 *       Whether this machine lets a pod be made (namespaces, time namespaces) and track written
 *       pages, tried in a throw-away child (probe.c): "userns ok", "timens no ERRNO WHY", ...
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/syscall.h>

#include "../common/image-io.h"
#include "../common/status.h"
#include "../common/util.h"
#include "adopt.h"
#include "checkpoint-request.h"
#include "host.h"
#include "pod.h"
#include "probe.h"
#include "restore.h"
#include "../restore/image.h"

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fprintf(stderr, "usage: vos-init [launch] [--control SOCKET] [--runtime LIB] [--no-pod] -- PROGRAM [ARGS...]\n"
			"       vos-init checkpoint --control SOCKET [--stop | --hold [--relay] [--files-there]] [--precopy] [--incremental [--parent ID]] [--session] [--producer TEXT]\n"
			"       vos-init restore --control SOCKET (--image FILE | --image-socket PATH) [--parent FILE]... [--hold] [--status PATH] [--runtime LIB] [--cache DIR]\n"
			"       vos-init verify [--list] [--parent FILE]... FILE\n"
			"       vos-init host --socket PATH [--cols N] [--rows N] -- PROGRAM [ARGS...]\n"
			"       vos-init probe\n");
	exit(2);
}

/* The value of option `name` at argv[*i] ("--name VALUE"), advancing *i. */
static const char *option_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		usage();
	return argv[++*i];
}

static int cmd_launch(int argc, char **argv)
{
	struct launch_options o = {0};
	int i = 0;
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "--control") == 0) {
			o.control_path = option_value(argc, argv, &i);
		} else if (strcmp(argv[i], "--runtime") == 0) {
			o.runtime = option_value(argc, argv, &i);
		} else if (strcmp(argv[i], "--no-pod") == 0) {
			o.no_pod = 1;
		} else {
			usage();
		}
	}
	if (i >= argc)
		usage();
	o.argv = argv + i;
	return launch_main(&o);
}

static int cmd_checkpoint(int argc, char **argv)
{
	struct checkpoint_request o = {.producer = "vos-init"};
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--control") == 0)
			o.control = option_value(argc, argv, &i);
		else if (strcmp(argv[i], "--producer") == 0)
			o.producer = option_value(argc, argv, &i);
		else if (strcmp(argv[i], "--session") == 0)
			o.session = 1;
		else if (strcmp(argv[i], "--stop") == 0)
			o.stop = 1;
		else if (strcmp(argv[i], "--hold") == 0)
			o.hold = 1;
		else if (strcmp(argv[i], "--precopy") == 0)
			o.precopy = 1;
		else if (strcmp(argv[i], "--relay") == 0)
			o.relay = 1;
		else if (strcmp(argv[i], "--files-there") == 0)
			o.files_there = 1;
		else if (strcmp(argv[i], "--incremental") == 0)
			o.incremental = 1;
		else if (strcmp(argv[i], "--parent") == 0)
			o.parent = option_value(argc, argv, &i);
		else
			usage();
	}
	if (!o.control)
		usage();
	return checkpoint_request(&o);
}

/* Prints each record as "OFFSET LENGTH TYPE NAME" (offset of its header, payload length),
 * as far as the record headers are readable. */
static void list_records(int fd, const char *name)
{
	struct image_reader r;
	ir_init(&r, fd, name);
	struct record rec;
	struct err e;
	while (ir_next(&r, &rec, &e) == 1)
		printf("%llu %llu %u %s\n", (unsigned long long)(rec.offset - VOS_REC_HEADER_SIZE),
		       (unsigned long long)rec.length, rec.type, record_type_name(rec.type));
	fflush(stdout);
}

static int cmd_verify(int argc, char **argv)
{
	int list = 0, nparents = 0;
	const char *parents[VOS_MAX_CHAIN];
	const char *path = NULL;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--list") == 0)
			list = 1;
		else if (strcmp(argv[i], "--parent") == 0 && nparents < VOS_MAX_CHAIN)
			parents[nparents++] = option_value(argc, argv, &i);
		else if (!path && argv[i][0] != '-')
			path = argv[i];
		else
			usage();
	}
	if (!path)
		usage();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "vos-init: cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (list)
		list_records(fd, path);
	/* The checksums and the trailer, then the same full reading a restore does (every field,
	 * the order of the records, every run): what verify accepts, a restore can load. */
	struct err e;
	struct image img;
	struct image chain[VOS_MAX_CHAIN];
	int loaded = 0;
	/* An incremental image is checked with its parents: alone, it says which it needs. */
	int verified = image_verify(fd, path, &e) == 0;
	int rc = verified && image_load(&img, fd, path, &e) == 0 ? 0 : -1;
	if (rc == 0) {
		rc = chain_load(&img, parents, nparents, chain, &loaded, &e);
		for (int k = 0; k < loaded; k++) {
			close(chain[k].fd);
			image_free(&chain[k]);
		}
	}
	if (verified)
		image_free(&img); /* a failed load's allocations too (LeakSanitizer found them lost) */
	if (rc < 0) {
		if (e.record[0])
			fprintf(stderr, "%s (record %s)\n", e.msg, e.record);
		else
			fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	/* Whatever our parent leaked (node-pty leaves its pty master and a pipe open) must not
	 * reach the session's programs: only the terminal on 0, 1 and 2 (fd 3 for checkpoint). */
	if (strcmp(argv[1], "checkpoint") != 0)
		syscall(SYS_close_range, 3, ~0u, 0);
	if (strcmp(argv[1], "launch") == 0)
		return cmd_launch(argc - 2, argv + 2);
	if (strcmp(argv[1], "checkpoint") == 0)
		return cmd_checkpoint(argc - 2, argv + 2);
	if (strcmp(argv[1], "restore") == 0)
		return restore_main(argc - 2, argv + 2);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 2, argv + 2);
	if (strcmp(argv[1], "host") == 0)
		return host_main(argc - 2, argv + 2);
	if (strcmp(argv[1], "probe") == 0)
		return probe_main(argc - 2, argv + 2);
	if (strcmp(argv[1], "adopt") == 0)
		return adopt_main(argc - 2, argv + 2);
	if (strcmp(argv[1], "adopt-grant") == 0)
		return adopt_grant_main(argc - 2, argv + 2);
	return cmd_launch(argc - 1, argv + 1);
}
