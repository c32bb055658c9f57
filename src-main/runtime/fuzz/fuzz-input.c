/* What both libFuzzer targets do with their input before the reader sees it (fuzz-input.h). */
#include "fuzz-input.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../common/checksum.h"
#include "../common/image-io.h"
#include "../common/util.h"

void fuzz_fix_crcs(uint8_t *p, size_t size)
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

int fuzz_image_file(const char *name, const uint8_t *data, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0 || (size && write_full(fd, data, size) < 0))
		abort();
	return fd;
}
