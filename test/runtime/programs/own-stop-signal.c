/* Takes signal 62 (vOS's stop signal) over with a raw rt_sigaction, as a language runtime of
 * its own does, which the vOS runtime's sigaction wrapper never sees; then prints a counter with
 * a token fixed at start and how many times its handler ran. The checkpoint stops it from
 * outside (test/runtime/outside-runtime.test.ts). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The kernel's struct sigaction; x86-64 needs a restorer that calls rt_sigreturn. */
struct ksigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};
#define KSA_RESTORER 0x04000000
void own_restorer(void);
__asm__(".text\n.globl own_restorer\nown_restorer:\n\tmov $15, %eax\n\tsyscall\n");

static volatile sig_atomic_t got;

static void on_signal(int sig)
{
	(void)sig;
	got++;
}

int main(void)
{
	struct ksigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.handler = on_signal;
	sa.flags = KSA_RESTORER | SA_RESTART;
	sa.restorer = own_restorer;
	if (syscall(SYS_rt_sigaction, 62, &sa, NULL, 8) != 0) {
		perror("rt_sigaction");
		return 1;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	unsigned token = (unsigned)(now.tv_nsec ^ (getpid() << 16));
	for (unsigned long n = 0;; n++) {
		printf("token=%08x count=%lu got62=%d\n", token, n, (int)got);
		fflush(stdout);
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}
