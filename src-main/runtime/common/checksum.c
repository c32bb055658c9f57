#include "checksum.h"

#include <string.h>

/* ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) ---- */

static uint32_t crc_table[8][256]; /* filled once by crc_init; read-only afterwards */
static int crc_ready;
static int crc_hw;

/* The hardware path runs three independent streams over three blocks of CRC_BLOCK bytes (the
 * crc32 instruction has a latency of three cycles but can start one per cycle) and joins them:
 * for the raw register, crc(A || B) = shift(crc(A)) ^ crc(B), where shift is "feed CRC_BLOCK
 * zero bytes", a linear map kept as four byte tables. Filled once by crc_init, read-only after. */
#define CRC_BLOCK 4096
static uint32_t crc_shift_table[4][256];

__attribute__((target("sse4.2"))) static uint32_t crc_hw_zeros(uint32_t crc, size_t len)
{
	uint64_t c = crc;
	for (size_t i = 0; i < len / 8; i++)
		c = __builtin_ia32_crc32di(c, 0);
	return (uint32_t)c;
}

static void crc_shift_init(void)
{
	uint32_t basis[32]; /* the shift of each single bit of the register */
	for (int b = 0; b < 32; b++)
		basis[b] = crc_hw_zeros(1u << b, CRC_BLOCK);
	for (int k = 0; k < 4; k++)
		for (uint32_t v = 0; v < 256; v++) {
			uint32_t out = 0;
			for (int b = 0; b < 8; b++)
				if (v & (1u << b))
					out ^= basis[8 * k + b];
			crc_shift_table[k][v] = out;
		}
}

static uint32_t crc_shift(uint32_t c)
{
	return crc_shift_table[0][c & 0xff] ^ crc_shift_table[1][(c >> 8) & 0xff] ^
	       crc_shift_table[2][(c >> 16) & 0xff] ^ crc_shift_table[3][c >> 24];
}

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2");
	if (crc_hw)
		crc_shift_init();
	crc_ready = 1;
}

static uint32_t crc_soft(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= crc;
		crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^ crc_table[5][(w >> 16) & 0xff] ^
		      crc_table[4][(w >> 24) & 0xff] ^ crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		      crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return crc;
}

/* The SSE4.2 crc32 instruction, 8 bytes at a time, three streams at once where there is room. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw_run(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;
	while (len >= 3 * CRC_BLOCK) {
		uint64_t c1 = 0, c2 = 0;
		for (size_t i = 0; i < CRC_BLOCK; i += 8) {
			uint64_t w0, w1, w2;
			memcpy(&w0, p + i, 8);
			memcpy(&w1, p + CRC_BLOCK + i, 8);
			memcpy(&w2, p + 2 * CRC_BLOCK + i, 8);
			c = __builtin_ia32_crc32di(c, w0);
			c1 = __builtin_ia32_crc32di(c1, w1);
			c2 = __builtin_ia32_crc32di(c2, w2);
		}
		c = crc_shift(crc_shift((uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * CRC_BLOCK;
		len -= 3 * CRC_BLOCK;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	if (!crc_ready)
		crc_init();
	crc = ~crc;
	crc = crc_hw ? crc_hw_run(crc, data, len) : crc_soft(crc, data, len);
	return ~crc;
}

/* ---- XXH64, written from its published specification ---- */

static const uint64_t P1 = 11400714785074694791ull;
static const uint64_t P2 = 14029467366897019727ull;
static const uint64_t P3 = 1609587929392839161ull;
static const uint64_t P4 = 9650029242287828579ull;
static const uint64_t P5 = 2870177450012600261ull;

static uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t read64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t read32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t lane_round(uint64_t acc, uint64_t input)
{
	acc += input * P2;
	acc = rotl64(acc, 31);
	return acc * P1;
}

static uint64_t merge_round(uint64_t acc, uint64_t val)
{
	acc ^= lane_round(0, val);
	return acc * P1 + P4;
}

void hash64_init(struct hash64 *h, uint64_t seed)
{
	memset(h, 0, sizeof *h);
	h->seed = seed;
	h->v[0] = seed + P1 + P2;
	h->v[1] = seed + P2;
	h->v[2] = seed;
	h->v[3] = seed - P1;
}

void hash64_update(struct hash64 *h, const void *data, size_t len)
{
	const uint8_t *p = data;
	h->total += len;
	if (h->buffered + len < 32) {
		memcpy(h->buf + h->buffered, p, len);
		h->buffered += len;
		return;
	}
	if (h->buffered) {
		size_t fill = 32 - h->buffered;
		memcpy(h->buf + h->buffered, p, fill);
		for (int i = 0; i < 4; i++)
			h->v[i] = lane_round(h->v[i], read64(h->buf + 8 * i));
		p += fill;
		len -= fill;
		h->buffered = 0;
	}
	while (len >= 32) {
		for (int i = 0; i < 4; i++)
			h->v[i] = lane_round(h->v[i], read64(p + 8 * i));
		p += 32;
		len -= 32;
	}
	memcpy(h->buf, p, len);
	h->buffered = len;
}

uint64_t hash64_final(const struct hash64 *h)
{
	uint64_t acc;
	if (h->total >= 32) {
		acc = rotl64(h->v[0], 1) + rotl64(h->v[1], 7) + rotl64(h->v[2], 12) + rotl64(h->v[3], 18);
		for (int i = 0; i < 4; i++)
			acc = merge_round(acc, h->v[i]);
	} else {
		acc = h->seed + P5;
	}
	acc += h->total;
	const uint8_t *p = h->buf;
	size_t len = h->buffered;
	while (len >= 8) {
		acc ^= lane_round(0, read64(p));
		acc = rotl64(acc, 27) * P1 + P4;
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		acc ^= (uint64_t)read32(p) * P1;
		acc = rotl64(acc, 23) * P2 + P3;
		p += 4;
		len -= 4;
	}
	while (len--) {
		acc ^= (*p++) * P5;
		acc = rotl64(acc, 11) * P1;
	}
	acc ^= acc >> 33;
	acc *= P2;
	acc ^= acc >> 29;
	acc *= P3;
	acc ^= acc >> 32;
	return acc;
}
