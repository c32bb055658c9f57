/*
 * Restoring on another kernel (or another build of it): the image's vdso code is not this
 * kernel's, and glibc in the restored processes holds pointers into it. The old vdso's pages go
 * back at their old address (from the image), and each of its exported functions is overwritten
 * with a jump to the same function of this kernel's vdso, which lives on elsewhere ("proxy").
 */
#include <elf.h>
#include <string.h>

#include "restore.h"

struct vdso_symbol {
	char name[64];
	uint64_t offset;
	uint64_t size;
};

/* The exported functions of a vdso image (an ELF shared object): names and offsets. */
static int vdso_functions(const uint8_t *image, uint64_t len, struct vdso_symbol *out, int max)
{
	if (len < sizeof(Elf64_Ehdr) || memcmp(image, ELFMAG, SELFMAG) != 0)
		return 0;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)image;
	if (eh->e_shoff == 0 || eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > len)
		return 0;
	uint64_t bias = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(const void *)(image + eh->e_phoff + (uint64_t)i * eh->e_phentsize);
		if ((const uint8_t *)(ph + 1) > image + len)
			return 0;
		if (ph->p_type == PT_LOAD) {
			bias = ph->p_vaddr - ph->p_offset;
			break;
		}
	}
	const Elf64_Shdr *sh = (const Elf64_Shdr *)(const void *)(image + eh->e_shoff);
	int n = 0;
	for (int i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= eh->e_shnum)
			continue;
		const Elf64_Shdr *str = &sh[sh[i].sh_link];
		if (sh[i].sh_offset + sh[i].sh_size > len || str->sh_offset + str->sh_size > len)
			return 0;
		const Elf64_Sym *sym = (const Elf64_Sym *)(const void *)(image + sh[i].sh_offset);
		for (uint64_t k = 0; k < sh[i].sh_size / sizeof *sym && n < max; k++) {
			if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC || sym[k].st_shndx == SHN_UNDEF ||
			    sym[k].st_name >= str->sh_size)
				continue;
			const char *name = (const char *)image + str->sh_offset + sym[k].st_name;
			size_t l = strnlen(name, str->sh_size - sym[k].st_name);
			if (l == 0 || l >= sizeof out[n].name)
				continue;
			memcpy(out[n].name, name, l);
			out[n].name[l] = 0;
			out[n].offset = sym[k].st_value - bias;
			out[n].size = sym[k].st_size;
			n++;
		}
	}
	return n;
}

int vdso_proxy_pokes(const uint8_t *old_vdso, uint64_t old_len, uint64_t old_addr, const uint8_t *new_vdso,
		     uint64_t new_len, uint64_t new_addr, struct blob_poke *out, int max)
{
	struct vdso_symbol olds[64], news[64];
	int no = vdso_functions(old_vdso, old_len, olds, 64);
	int nn = vdso_functions(new_vdso, new_len, news, 64);
	int n = 0;
	for (int i = 0; i < no && n < max; i++) {
		if (olds[i].size < 12 || olds[i].offset + 12 > old_len)
			continue; /* too small to hold the jump */
		for (int k = 0; k < nn; k++) {
			if (strcmp(olds[i].name, news[k].name) != 0)
				continue;
			uint64_t target = new_addr + news[k].offset;
			struct blob_poke *p = &out[n++];
			p->addr = old_addr + olds[i].offset;
			p->len = 12;
			p->bytes[0] = 0x48; /* movabs $target, %rax */
			p->bytes[1] = 0xB8;
			memcpy(&p->bytes[2], &target, 8);
			p->bytes[10] = 0xFF; /* jmp *%rax */
			p->bytes[11] = 0xE0;
			break;
		}
	}
	return n;
}
