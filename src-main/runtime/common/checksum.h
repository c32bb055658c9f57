/* Checksums for the image: CRC32C per record (hardware-accelerated where the CPU has SSE4.2),
 * and a 64-bit content hash (XXH64) to tell whether a file on this machine is the one the image
 * expects. */
#ifndef VOS_CHECKSUM_H
#define VOS_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC32C: start with crc = 0. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

struct hash64 {
	uint64_t v[4];
	uint64_t total;
	uint8_t buf[32];
	size_t buffered;
	uint64_t seed;
};

void hash64_init(struct hash64 *h, uint64_t seed);
void hash64_update(struct hash64 *h, const void *data, size_t len);
uint64_t hash64_final(const struct hash64 *h);

#endif
