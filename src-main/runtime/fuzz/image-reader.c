/*
 * libFuzzer target: the image reader on any bytes. The input becomes an image file (a memfd);
 * image_verify checks its framing, checksums and trailer, and image_load reads and checks every
 * record as a restore would. Neither may crash, read or write outside a buffer, or allocate
 * without bound, whatever the input. The checksums stop almost every mutation at the first
 * record, so the loader is run on a copy whose record CRCs are made right first (as a damaged
 * image that passes the checksums would be): it must stand on its own.
 *
 * Built by `make -C src-main/runtime fuzz` (clang with its fuzzer runtime); run by
 * scripts/fuzz.sh and, briefly, by test/runtime/fuzz-image.test.ts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/checksum.h"
#include "../common/image-io.h"
#include "../restore/image.h"
#include "fuzz-input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e;
	int fd = fuzz_image_file("vos-fuzz-image", data, size);
	image_verify(fd, "input", &e);
	close(fd);
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	fuzz_fix_crcs(copy, size);
	fd = fuzz_image_file("vos-fuzz-image", copy, size);
	free(copy);
	struct image img;
	image_load(&img, fd, "input", &e);
	image_free(&img); /* a failed load's allocations too: LeakSanitizer checks that none is lost */
	close(fd);
	return 0;
}
