/* What both libFuzzer targets do with their input before the reader sees it. */
#ifndef VOS_FUZZ_INPUT_H
#define VOS_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* Makes each record's header and payload CRC right, as far as the framing reads. */
void fuzz_fix_crcs(uint8_t *p, size_t size);
/* The bytes as an image file (a memfd, named `name`); aborts if it cannot be made. */
int fuzz_image_file(const char *name, const uint8_t *data, size_t size);

#endif
