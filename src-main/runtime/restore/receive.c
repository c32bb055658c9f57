/*
 * A migrating image arrives on a Unix socket (the agent forwards it from the link as it comes).
 * It goes into memory (a memfd: no file on disk). Records are checked as they arrive, as far as
 * the trailer: each record's checksum, and the pages are staged (staging.c): the pages sent
 * ahead (PRECOPY) and the final image's (PAGES), each once its checksum holds. By the time the
 * last byte comes, only the trailer is left to check (image_verify_from, before anything is
 * restored) and the memory is in place: a stop-and-copy move restores while it arrives, and a
 * live one's final pages are staged as they come.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common/checksum.h"
#include "../init/control.h"
#include "restore.h"

struct arrival {
	struct image_reader r; /* the first record not checked yet */
	uint64_t written;      /* bytes in the memfd */
	int checking;
	int rounds_over; /* a record other than PRECOPY came: later PRECOPY records are not staged */
	uint8_t *scratch; /* one record's payload and its CRC, reused */
	size_t scratch_cap;
};

/* The record at r's offset, whole (header, payload and CRC): 1; not all there yet: 0; -1: its
 * header cannot be a record's. */
static int record_arrived(const struct arrival *a, int mem, const struct image_reader *r)
{
	struct vos_rec_header h;
	if (a->written < r->offset + sizeof h)
		return 0;
	if (pread_full(mem, &h, sizeof h, r->offset) < 0 || h.length > VOS_MAX_RECORD)
		return -1;
	return a->written >= r->offset + sizeof h + h.length + 4;
}

/* The payload of the record ir_next just read, into the scratch buffer, its CRC checked and
 * counted into the reader's chain (as ir_payload does). */
static int checked_payload(struct arrival *a, int mem, const struct record *rec)
{
	size_t need = (size_t)rec->length + 4;
	if (need > a->scratch_cap) {
		free(a->scratch);
		a->scratch = xmalloc(need);
		a->scratch_cap = need;
	}
	uint32_t stored;
	if (pread_full(mem, a->scratch, need, rec->offset) < 0)
		return -1;
	memcpy(&stored, a->scratch + rec->length, 4);
	uint32_t crc = crc32c(0, a->scratch, (size_t)rec->length);
	if (crc != stored)
		return -1;
	a->r.chain = crc32c(a->r.chain, &crc, sizeof crc);
	return 0;
}

/* Checks every record that arrived whole, while the rest is on its way: HEADER first, then each
 * record's checksum; the pages sent ahead (PRECOPY, before any other record) and the final
 * image's pages (PAGES) are staged. It stops before TRAILER (the full check ends with it), and
 * at a record that does not check: from there on the full check speaks, naming it, and no DATA
 * run is taken from staging. */
static void check_arrived(struct arrival *a, int mem, struct staging *st)
{
	while (a->checking) {
		int whole = record_arrived(a, mem, &a->r);
		if (whole == 0)
			return;
		struct image_reader before = a->r;
		struct record rec = {0};
		struct err e;
		int first = before.offset == 0;
		if (whole < 0 || ir_next(&a->r, &rec, &e) != 1 || rec.type == VOS_REC_TRAILER ||
		    (rec.type == VOS_REC_HEADER) != first || checked_payload(a, mem, &rec) < 0 ||
		    (first && image_check_header(a->scratch, rec.length, "the received image", &e) < 0)) {
			a->r = before;
			a->checking = 0;
			if (whole < 0 || rec.type != VOS_REC_TRAILER)
				st->final_off = 1;
			return;
		}
		if (first)
			continue;
		if (rec.type == VOS_REC_PRECOPY && !a->rounds_over)
			staging_take(st, a->scratch, rec.length);
		else
			a->rounds_over = 1;
		if (rec.type == VOS_REC_PAGES)
			staging_take_final(st, a->scratch, rec.length);
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
	free(a.scratch);
	close(sock);
	if (rc < 0) {
		close(mem);
		return -1;
	}
	*checked = a.r;
	return mem;
}
