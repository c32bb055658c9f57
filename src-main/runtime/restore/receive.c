/*
 * A migrating image arrives on a Unix socket (the agent forwards it from the link as it comes).
 * It goes into memory (a memfd: no file on disk). Records are checked as they arrive, as far as
 * HEADER and the pages sent ahead (PRECOPY) go, and those pages are staged (staging.c): by the
 * time a live migration's final records come, only those are left to check and little is left
 * to copy. The rest is checked like an image file (image_verify_from) before anything is restored.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../init/control.h"
#include "restore.h"

struct arrival {
	struct image_reader r; /* the first record not checked yet */
	uint64_t written;      /* bytes in the memfd */
	int checking;
};

/* Checks (and stages) every record that arrived whole, until one that is not HEADER first or
 * PRECOPY after it, or one that fails: from there on the full check speaks. */
static void check_arrived(struct arrival *a, int mem, struct staging *st)
{
	while (a->checking) {
		struct vos_rec_header h;
		if (a->written < a->r.offset + sizeof h)
			return;
		if (pread_full(mem, &h, sizeof h, a->r.offset) < 0 || h.length > VOS_MAX_RECORD) {
			a->checking = 0;
			return;
		}
		if (a->written < a->r.offset + sizeof h + h.length + 4)
			return;
		struct image_reader before = a->r;
		struct record rec;
		struct err e;
		int first = before.offset == 0;
		void *payload = NULL;
		if (ir_next(&a->r, &rec, &e) != 1 || rec.type != (first ? VOS_REC_HEADER : VOS_REC_PRECOPY) ||
		    ir_payload(&a->r, &rec, &payload, &e) < 0 ||
		    (first && image_check_header(payload, rec.length, "the received image", &e) < 0)) {
			free(payload);
			a->r = before;
			a->checking = 0;
			return;
		}
		if (!first)
			staging_take(st, payload, rec.length);
		free(payload);
	}
}

int receive_image(const char *path, struct staging *st, struct image_reader *checked, struct err *e)
{
	int sock = control_connect(path);
	if (sock < 0)
		return fail(e, "cannot reach the agent's image stream at %s: %s", path, strerror(errno));
	int mem = (int)syscall(SYS_memfd_create, "vos-image", MFD_CLOEXEC);
	if (mem < 0) {
		close(sock);
		return fail(e, "cannot hold the image in memory: %s", strerror(errno));
	}
	struct arrival a;
	memset(&a, 0, sizeof a);
	ir_init(&a.r, mem, "the received image");
	a.checking = 1;
	size_t cap = 1u << 20;
	char *buf = xmalloc(cap);
	int rc = 0;
	for (;;) {
		ssize_t n = read(sock, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fail(e, "the image stream broke: %s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (write_full(mem, buf, (size_t)n) < 0) {
			rc = fail(e, "cannot hold the image in memory: %s", strerror(errno));
			break;
		}
		a.written += (uint64_t)n;
		check_arrived(&a, mem, st);
	}
	free(buf);
	close(sock);
	if (rc < 0) {
		close(mem);
		return -1;
	}
	*checked = a.r;
	return mem;
}
