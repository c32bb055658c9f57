/*
 * Whether the runtime can stop a process, asked of every process of the pod before any of them
 * is sent VOS_SIGNAL (dump/freeze.c): a process the signal cannot park would make the freeze
 * wait for an acknowledgement that never comes, and the signal would reach it (or its tracer)
 * as a visible event. Refused up front, with the reason:
 *   - a traced process (gdb, strace): its tracer would see VOS_SIGNAL ("Program received signal
 *     SIG62") and decide what to do with it;
 *   - a Go program: its runtime installs its own handler for every signal with raw system calls
 *     (libvos's sigaction wrapper never sees it), VOS_SIGNAL included;
 *   - a process without the runtime loaded (static, setuid, started with a cleared environment);
 *   - a process in a seccomp sandbox (man's formatters: preconv, tbl, nroff): its filter may forbid
 *     the runtime's acknowledgement (man's does: rt_sigqueueinfo fails, and the process sat
 *     stopped while the freeze waited 5 s for it), and no restore could put the filter back
 *     (reading it needs CAP_SYS_ADMIN over the machine), so a restored program would run
 *     unsandboxed. Such processes are usually short-lived: the freeze waits for them to end.
 * Limit: a program other than Go that takes VOS_SIGNAL over with a raw rt_sigaction is not seen
 * here (the kernel does not say whose handler it is); the freeze then times out naming it.
 */
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dump.h"

/* The tracer's pid (as this pid namespace sees it), 0 if none. */
static pid_t tracer_of(pid_t pid)
{
	char v[32];
	if (status_field(pid, "TracerPid", v, sizeof v) < 0)
		return 0;
	pid_t tracer = (pid_t)strtol(v, NULL, 10);
	return tracer > 0 ? tracer : 0;
}

/* Whether the process runs under a seccomp filter (or strict mode). */
int in_seccomp_sandbox(pid_t pid)
{
	char v[32];
	return status_field(pid, "Seccomp", v, sizeof v) == 0 && strtol(v, NULL, 10) != 0;
}

/* Whether the ELF file open on fd has a section named `name`. Every offset and size read from
 * the file is checked against the file's size (it is the program's, not ours). */
static int has_section(int fd, const Elf64_Ehdr *eh, off_t file_size, const char *name)
{
	if (eh->e_shoff == 0 || eh->e_shnum == 0 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    eh->e_shstrndx >= eh->e_shnum || eh->e_shnum > 4096 ||
	    eh->e_shoff > (uint64_t)file_size || (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > (uint64_t)file_size - eh->e_shoff)
		return 0;
	Elf64_Shdr strtab;
	if (pread_full(fd, &strtab, sizeof strtab, eh->e_shoff + (uint64_t)eh->e_shstrndx * sizeof(Elf64_Shdr)) < 0 ||
	    strtab.sh_size == 0 || strtab.sh_size > (1 << 20) || strtab.sh_offset > (uint64_t)file_size ||
	    strtab.sh_size > (uint64_t)file_size - strtab.sh_offset)
		return 0;
	char *names = xmalloc(strtab.sh_size + 1);
	int found = 0;
	if (pread_full(fd, names, strtab.sh_size, strtab.sh_offset) == 0) {
		names[strtab.sh_size] = 0;
		for (uint16_t i = 0; i < eh->e_shnum && !found; i++) {
			Elf64_Shdr sh;
			if (pread_full(fd, &sh, sizeof sh, eh->e_shoff + (uint64_t)i * sizeof(Elf64_Shdr)) < 0)
				break;
			found = sh.sh_name < strtab.sh_size && strcmp(names + sh.sh_name, name) == 0;
		}
	}
	free(names);
	return found;
}

/* Whether the program a process runs was built by Go (its linker writes .go.buildinfo, and a
 * .note.go.buildid note, into every executable, static or dynamic, cgo or not). */
static int is_go_program(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	Elf64_Ehdr eh;
	off_t size = lseek(fd, 0, SEEK_END);
	int go = 0;
	if (size > 0 && pread_full(fd, &eh, sizeof eh, 0) == 0 && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
	    eh.e_ident[EI_CLASS] == ELFCLASS64)
		go = has_section(fd, &eh, size, ".go.buildinfo") || has_section(fd, &eh, size, ".note.go.buildid");
	close(fd);
	return go;
}

/* Whether libvos.so is mapped into the process (it is loaded before any constructor runs); with
 * at != 0, whether address at is in it. */
int runtime_mapped_at(pid_t pid, uint64_t at)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	char *text = read_text_file(path, NULL);
	if (!text)
		return 0;
	int found = 0;
	for (char *line = text; line && *line && !found;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		unsigned long long start, stop;
		char *slash = strrchr(line, '/');
		found = slash && strcmp(slash, "/libvos.so") == 0 &&
			(!at || (sscanf(line, "%llx-%llx", &start, &stop) == 2 && at >= start && at < stop));
		line = end ? end + 1 : NULL;
	}
	free(text);
	return found;
}

/* Whether the process's environment preloads the runtime (LD_PRELOAD names libvos.so). An
 * environment that reads empty counts as yes: in the middle of an exec the new memory has none
 * yet (a loop's `sleep`, caught on a loaded machine, was refused as "started without the
 * runtime"); a program really started with an empty one is refused after the wait instead. */
static int preloads_runtime(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	size_t len = 0;
	char *env = read_text_file(path, &len);
	if (!env)
		return 0;
	if (len == 0) {
		free(env);
		return 1;
	}
	int found = 0;
	for (size_t at = 0; at < len && !found; at += strlen(env + at) + 1)
		found = strncmp(env + at, "LD_PRELOAD=", 11) == 0 && strstr(env + at, "/libvos.so") != NULL;
	free(env);
	return found;
}

int runtime_on_its_way(pid_t pid)
{
	return !tracer_of(pid) && !is_go_program(pid) && preloads_runtime(pid) && runtime_can_load(pid);
}

/* Why a process without the runtime has none, in a few words (for the checkpoint's result). */
static void short_reason(pid_t pid, char *why, size_t size)
{
	char exe[4096], path[64];
	snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
	struct stat st;
	if (read_link(path, exe, sizeof exe) >= 0 && stat(exe, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)))
		snprintf(why, size, "a set-user-ID program");
	else if (read_link(path, exe, sizeof exe) >= 0 && !runtime_can_load(pid))
		snprintf(why, size, "statically linked");
	else
		snprintf(why, size, "started without the vOS runtime");
}

enum stop_method stop_method_of(pid_t pid, char *why, size_t size)
{
	char who[128], tracer[128];
	pid_t t = tracer_of(pid);
	if (t) {
		snprintf(why, size,
			 "%s is being traced by %s: vOS would have to take it from its tracer; "
			 "detach the debugger or tracer first",
			 describe_pid(pid, who, sizeof who), describe_pid(t, tracer, sizeof tracer));
		return STOP_REFUSED;
	}
	if (in_seccomp_sandbox(pid)) {
		snprintf(why, size,
			 "%s runs in a seccomp sandbox, which a restore could not put back (and which may keep "
			 "vOS's runtime from answering); checkpoint again once it has ended",
			 describe_pid(pid, who, sizeof who));
		return STOP_REFUSED;
	}
	if (is_go_program(pid)) {
		snprintf(why, size, "a Go program");
		return STOP_BY_PTRACE;
	}
	if (!runtime_mapped_at(pid, 0) || !has_runtime(pid)) {
		short_reason(pid, why, size);
		return STOP_BY_PTRACE;
	}
	return STOP_BY_RUNTIME;
}
