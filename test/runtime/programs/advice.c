/* Memory advice a restore must keep: areas given MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTFORK,
 * MADV_WIPEONFORK and MADV_DONTDUMP. Each line of input reports, per area, whether smaps still
 * shows the advice and whether a forked child sees what the advice says it should (a
 * wipe-on-fork area reads zero in the child, a dont-fork area is absent).
 * `advice late`: the areas (kept apart by inaccessible pages, so that none of them ever merges
 * with another or splits) get their advice only at the input line "advise" (it says "advised"):
 * what changes then is their flags alone, not the list of areas. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define AREA (4u << 20)

static const struct {
	const char *name;
	int advice;
	const char *code; /* in smaps' VmFlags */
} kinds[] = {{"huge", MADV_HUGEPAGE, "hg"},   {"nohuge", MADV_NOHUGEPAGE, "nh"}, {"dontfork", MADV_DONTFORK, "dc"},
	     {"wipe", MADV_WIPEONFORK, "wf"}, {"dontdump", MADV_DONTDUMP, "dd"}};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static char *areas[NKINDS];

/* Whether the smaps entry of the area starting at `start` lists `code` in its VmFlags. */
static int has_flag(const void *start, const char *code)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512], want[32];
	snprintf(want, sizeof want, "%lx-", (unsigned long)start);
	int inside = 0, found = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, want, strlen(want)) == 0)
			inside = 1;
		else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			char padded[8];
			snprintf(padded, sizeof padded, " %s ", code);
			found = strstr(line + 8, padded) != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

static sigjmp_buf on_fault;
static void segv(int sig)
{
	(void)sig;
	siglongjmp(on_fault, 1);
}

/* In a child: 0 = reads the pattern, 1 = reads zero, 2 = not mapped. */
static int seen_by_child(const char *area)
{
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, segv);
		if (sigsetjmp(on_fault, 1))
			_exit(2);
		_exit(area[0] == 0 ? 1 : 0);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int advise_all(void)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (madvise(areas[i], AREA, kinds[i].advice) < 0) {
			printf("cannot advise %s: %s\n", kinds[i].name, strerror(errno));
			return -1;
		}
	return 0;
}

int main(int argc, char **argv)
{
	int late = argc > 1 && strcmp(argv[1], "late") == 0;
	size_t gap = (size_t)sysconf(_SC_PAGESIZE);
	char *all = mmap(NULL, NKINDS * (AREA + gap) + gap, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (all == MAP_FAILED) {
		printf("cannot map: %s\n", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < NKINDS; i++) {
		areas[i] = all + gap + i * (AREA + gap);
		if (mprotect(areas[i], AREA, PROT_READ | PROT_WRITE) < 0) {
			printf("cannot set up %s: %s\n", kinds[i].name, strerror(errno));
			return 1;
		}
		memset(areas[i], 0x5a, AREA);
	}
	if (!late && advise_all() < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);
	static const char *child_view[] = {"data", "zero", "absent"};
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		if (late && strncmp(line, "advise", 6) == 0) {
			if (advise_all() < 0)
				return 1;
			printf("advised\n");
			fflush(stdout);
			continue;
		}
		for (size_t i = 0; i < NKINDS; i++) {
			int seen = seen_by_child(areas[i]);
			printf("%s: flag=%d child=%s data=%s\n", kinds[i].name, has_flag(areas[i], kinds[i].code),
			       seen >= 0 ? child_view[seen] : "?", areas[i][AREA - 1] == 0x5a ? "kept" : "lost");
		}
		fflush(stdout);
	}
	return 0;
}
