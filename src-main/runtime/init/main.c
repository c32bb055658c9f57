/*
 * vos-init: the native side of a vOS session.
 *
 *   vos-init [launch] [--control SOCKET] [--runtime LIBVOS] [--no-pod] -- PROGRAM [ARGS...]
 *       Start PROGRAM in a new pod on this terminal (what the agent runs on a session's pty).
 *   vos-init checkpoint --control SOCKET [--stop | --hold] [--precopy] [--wait-screen] [--write-header | --records N --bytes N --chain N]
 *       Ask a pod for a checkpoint written to fd 3; print the pod's reply line. The agent writes
 *       the image's first records itself and passes their count, size and CRC chain; with
 *       --write-header vos-init writes a minimal header instead. Between "frozen" and the
 *       reply, --wait-screen waits for a line on stdin (the agent's screen is saved). With
 *       --hold (a migration) the pod stays frozen after "held ...": the next line on stdin,
 *       "commit" or anything else, ends it or lets it run again. --precopy (live migration):
 *       first send the memory while the pod runs, in rounds ("precopy ..." lines), then freeze
 *       and send only what changed since; falls back to a plain checkpoint where the kernel
 *       cannot track written pages ("precopy unavailable ...").
 *   vos-init restore --control SOCKET (--image FILE | --image-socket PATH) [--hold] [--runtime LIBVOS] [--cache DIR]
 *       Bring an image back to life on this terminal, in a new pod. --image-socket: receive
 *       the image from a Unix socket (a migration streams it) into memory first. --hold: the
 *       restored processes wait at the barrier until "go" (or "abort") on the control socket.
 *   vos-init verify FILE
 *       Check an image's integrity (every checksum, the trailer) without restoring it.
 *   vos-init host --socket PATH [--cols N] [--rows N] -- PROGRAM [ARGS...]
 *       The terminal host of a session (host.c): detached, it keeps PROGRAM's pty for agents.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/syscall.h>
#include <sys/utsname.h>

#include "../common/buf.h"
#include "../common/image-io.h"
#include "../common/util.h"
#include "control.h"
#include "host.h"
#include "pod.h"
#include "restore.h"

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fprintf(stderr, "usage: vos-init [launch] [--control SOCKET] [--runtime LIB] [--no-pod] -- PROGRAM [ARGS...]\n"
			"       vos-init checkpoint --control SOCKET [--stop | --hold] [--precopy] [--write-header | --records N --bytes N --chain N]\n"
			"       vos-init restore --control SOCKET (--image FILE | --image-socket PATH) [--hold] [--runtime LIB] [--cache DIR]\n"
			"       vos-init verify FILE\n"
			"       vos-init host --socket PATH [--cols N] [--rows N] -- PROGRAM [ARGS...]\n");
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

/* An image's first record, for images made without the agent (which writes its own). */
static int write_header(int fd, struct image_writer *w)
{
	struct utsname u;
	uname(&u);
	struct buf b;
	buf_init(&b);
	char magic[16] = VOS_IMAGE_MAGIC;
	buf_put(&b, magic, sizeof magic);
	buf_u32(&b, VOS_IMAGE_VERSION);
	buf_u32(&b, (uint32_t)sysconf(_SC_PAGESIZE));
	buf_u64(&b, (uint64_t)now_ms());
	buf_str(&b, "vos-init");
	buf_str(&b, u.release);
	buf_str(&b, u.machine);
	iw_init(w, fd, 0, 0, 0);
	struct err e;
	int rc = iw_record1(w, VOS_REC_HEADER, b.data, b.len, &e);
	buf_free(&b);
	return rc;
}

static int cmd_checkpoint(int argc, char **argv)
{
	const char *control = NULL;
	char request[CONTROL_LINE_MAX] = "checkpoint";
	int header = 0, wait_screen = 0;
	for (int i = 0; i < argc; i++) {
		const char *key = NULL;
		if (strcmp(argv[i], "--control") == 0)
			control = option_value(argc, argv, &i);
		else if (strcmp(argv[i], "--write-header") == 0)
			header = 1;
		else if (strcmp(argv[i], "--wait-screen") == 0)
			wait_screen = 1;
		else if (strcmp(argv[i], "--stop") == 0)
			strcat(request, " stop=1");
		else if (strcmp(argv[i], "--hold") == 0)
			strcat(request, " hold=1");
		else if (strcmp(argv[i], "--precopy") == 0)
			strcat(request, " precopy=1");
		else if (strcmp(argv[i], "--records") == 0)
			key = "records";
		else if (strcmp(argv[i], "--bytes") == 0)
			key = "bytes";
		else if (strcmp(argv[i], "--chain") == 0)
			key = "chain";
		else
			usage();
		if (key) {
			const char *value = option_value(argc, argv, &i);
			size_t len = strlen(request);
			snprintf(request + len, sizeof request - len, " %s=%s", key, value);
		}
	}
	if (!control)
		usage();
	if (fcntl(3, F_GETFD) < 0) {
		printf("error the image stream (fd 3) is not open\n");
		return 1;
	}
	if (header) {
		struct image_writer w;
		if (write_header(3, &w) < 0) {
			printf("error cannot write the image header: %s\n", strerror(errno));
			return 1;
		}
		size_t len = strlen(request);
		snprintf(request + len, sizeof request - len, " records=%u bytes=%llu chain=%u", w.records,
			 (unsigned long long)w.bytes, w.chain);
	}
	int sock = control_connect(control);
	if (sock < 0) {
		printf("error cannot reach the session's pod at %s: %s\n", control, strerror(errno));
		return 1;
	}
	if (control_send(sock, request, 3) < 0) {
		printf("error cannot talk to the session's pod: %s\n", strerror(errno));
		return 1;
	}
	/* The pod has its own copy now; ours would keep the stream's reader from seeing its end. */
	if (!header && close(3) < 0)
		printf("warning cannot close the image stream: %s\n", strerror(errno));
	char reply[CONTROL_LINE_MAX];
	int fd;
	for (;;) {
		/* A checkpoint of a large process takes a while; the pod answers when it is done. */
		if (control_recv(sock, reply, sizeof reply, &fd, 3600 * 1000) < 0) {
			printf("error the session's pod did not answer: %s\n", strerror(errno));
			return 1;
		}
		printf("%s\n", reply);
		fflush(stdout);
		if (strncmp(reply, "precopy", 7) == 0)
			continue; /* live migration's progress: a round of pages sent ahead */
		if (strncmp(reply, "held", 4) == 0) {
			/* The agent gives the verdict on our stdin; if it goes away, the pod runs again. */
			char verdict[64] = "abort";
			ssize_t n = read(STDIN_FILENO, verdict, sizeof verdict - 1);
			verdict[n > 0 ? n : 5] = 0;
			verdict[strcspn(verdict, "\n")] = 0;
			control_send(sock, strcmp(verdict, "commit") == 0 ? "commit" : "abort", -1);
			continue;
		}
		if (strcmp(reply, "frozen") != 0)
			break;
		/* The pod waits until the screen is saved: the agent says so on our stdin. */
		if (wait_screen) {
			struct pollfd p = {STDIN_FILENO, POLLIN, 0};
			char ack[64];
			if (poll(&p, 1, 2000) > 0 && read(STDIN_FILENO, ack, sizeof ack) < 0) {
				/* no acknowledgement: go on */
			}
		}
		control_send(sock, "screen-saved", -1);
	}
	if (strncmp(reply, "ok", 2) != 0)
		return 1;
	if (header) {
		/* No agent to finish the image: close it with its trailer. */
		char v[32];
		struct image_writer w;
		iw_init(&w, 3, (uint32_t)strtoul(control_arg(reply, "records", v, sizeof v) ? v : "0", NULL, 10),
			strtoull(control_arg(reply, "bytes", v, sizeof v) ? v : "0", NULL, 10),
			(uint32_t)strtoul(control_arg(reply, "chain", v, sizeof v) ? v : "0", NULL, 10));
		struct err e;
		if (iw_trailer(&w, &e) < 0) {
			printf("error %s\n", e.msg);
			return 1;
		}
	}
	return 0;
}

static int cmd_verify(int argc, char **argv)
{
	if (argc != 1)
		usage();
	int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "vos-init: cannot open %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	struct err e;
	if (image_verify(fd, argv[0], &e) < 0) {
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
	return cmd_launch(argc - 1, argv + 1);
}
