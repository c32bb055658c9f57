/* Pages discarded with MADV_DONTNEED between two incremental images must come back as the
 * kernel gives them after the discard (zero in anonymous memory, the file's content in a private
 * file mapping), not as the parent image had them. (In a private file mapping, a discarded page
 * that was write-protected for tracking is left as a uffd-wp pte marker, which PAGEMAP_SCAN
 * reports as swapped and not written.)
 * 64 pages, each written with a pattern (private anonymous memory, or with `file PATH` a private
 * mapping of PATH, which it first fills with 0x11 bytes); prints "ready ADDRESS", then reads lines:
 *   zap    discards pages 10..19, writes page 30 and discards it too ("zapped")
 *   check  "check ok", or "check BAD page N first-word X (K pages bad)": N the first page that
 *          is not as it should be (a discarded one as after a discard, the others the pattern),
 *          X its first wrong word
 * zapper [file PATH] */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
#define PAGES 64
#define WORDS (PAGE / 8)

static uint64_t pattern(size_t page, unsigned gen)
{
	return ((uint64_t)gen << 32 | (page + 1)) * 0x9e3779b97f4a7c15ull;
}

static void fill(uint64_t *p, uint64_t v)
{
	for (size_t i = 0; i < WORDS; i++)
		p[i] = v;
}

int main(int argc, char **argv)
{
	int file = argc > 2 && strcmp(argv[1], "file") == 0;
	uint64_t gone = 0; /* what a discarded page reads */
	int fd = -1;
	if (file) {
		static uint8_t page[PAGE];
		memset(page, 0x11, sizeof page);
		memset(&gone, 0x11, sizeof gone);
		fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
		for (int i = 0; fd >= 0 && i < PAGES; i++)
			if (write(fd, page, PAGE) != PAGE)
				return 1;
	}
	uint64_t *mem = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | (file ? 0 : MAP_ANONYMOUS), fd, 0);
	if ((file && fd < 0) || mem == MAP_FAILED)
		return 1;
	static uint8_t zapped[PAGES];
	for (size_t i = 0; i < PAGES; i++)
		fill(mem + i * WORDS, pattern(i, 0));
	printf("ready %p\n", (void *)mem);
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		if (strncmp(line, "zap", 3) == 0) {
			fill(mem + 30 * WORDS, pattern(30, 1));
			if (madvise(mem + 10 * WORDS, 10 * PAGE, MADV_DONTNEED) < 0 || madvise(mem + 30 * WORDS, PAGE, MADV_DONTNEED) < 0)
				return 1;
			memset(zapped + 10, 1, 10);
			zapped[30] = 1;
			printf("zapped\n");
		} else if (strncmp(line, "check", 5) == 0) {
			size_t first = PAGES, bad = 0;
			uint64_t seen = 0;
			for (size_t i = 0; i < PAGES; i++) {
				uint64_t want = zapped[i] ? gone : pattern(i, 0), *p = mem + i * WORDS;
				size_t w = 0;
				while (w < WORDS && p[w] == want)
					w++;
				if (w == WORDS)
					continue;
				if (bad++ == 0)
					first = i, seen = p[w];
			}
			if (!bad)
				printf("check ok\n");
			else
				printf("check BAD page %zu first-word %llx (%zu pages bad)\n", first, (unsigned long long)seen, bad);
		}
		fflush(stdout);
	}
	return 0;
}
