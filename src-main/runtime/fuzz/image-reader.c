/*
 * libFuzzer target: the image reader on any bytes. The input becomes an image file (a memfd);
 * image_verify checks its framing, checksums and trailer, and image_load reads and checks every
 * record as a restore would. Neither may crash, read or write outside a buffer, or allocate
 * without bound, whatever the input. The checksums stop almost every mutation at the first
 * record, so the loader is run on a copy whose record CRCs are made right first (as a damaged
 * image that passes the checksums would be): it must stand on its own.
 *
 * Built by `make -C src-main/runtime fuzz` (clang with its fuzzer runtime); run by
 * scripts/fuzz-image.sh and, briefly, by test/runtime/fuzz-image.test.ts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/checksum.h"
#include "../common/image-io.h"
#include "../restore/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Makes each record's header and payload CRC right, as far as the framing reads. */
static void fix_crcs(uint8_t *p, size_t size)
{
	for (size_t at = 0; size - at >= VOS_REC_HEADER_SIZE;) {
		struct vos_rec_header h;
		memcpy(&h, p + at, sizeof h);
		if (h.magic != VOS_REC_MAGIC || h.length > size - at - VOS_REC_HEADER_SIZE)
			return;
		h.crc = crc32c(0, &h, 20);
		memcpy(p + at, &h, sizeof h);
		size_t end = at + VOS_REC_HEADER_SIZE + (size_t)h.length;
		if (size - end < 4)
			return;
		uint32_t crc = crc32c(0, p + at + VOS_REC_HEADER_SIZE, (size_t)h.length);
		memcpy(p + end, &crc, 4);
		at = end + 4;
	}
}

static int image_file(const uint8_t *data, size_t size)
{
	int fd = memfd_create("vos-fuzz-image", MFD_CLOEXEC);
	if (fd < 0 || (size && write_full(fd, data, size) < 0))
		abort();
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e;
	int fd = image_file(data, size);
	image_verify(fd, "input", &e);
	close(fd);
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	fix_crcs(copy, size);
	fd = image_file(copy, size);
	free(copy);
	struct image img;
	image_load(&img, fd, "input", &e);
	image_free(&img); /* a failed load's allocations too: LeakSanitizer checks that none is lost */
	close(fd);
	return 0;
}
