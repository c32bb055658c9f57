/*
 * query SEQ FINAL: asks the terminal something the way a REPL does at start. Puts the terminal
 * in raw mode, writes SEQ (with \e for ESC), reads the answer up to its final byte FINAL and
 * prints it as "reply=..." (ESC shown as ^[). Then reads on up to an 'X' and prints what came
 * before it as "extra=...": a second answer to the same question shows there.
 */
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static void show(const char *label, const char *s, size_t n)
{
	printf("%s=", label);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == 0x1b)
			printf("^[");
		else if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			printf("^%c", s[i] ^ 0x40);
		else
			putchar(s[i]);
	}
	printf("\r\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc != 3 || strlen(argv[2]) != 1) {
		fprintf(stderr, "usage: query SEQ FINAL\n");
		return 2;
	}
	struct termios old, raw;
	if (tcgetattr(0, &old) < 0) {
		perror("tcgetattr");
		return 2;
	}
	raw = old;
	cfmakeraw(&raw);
	if (tcsetattr(0, TCSANOW, &raw) < 0) {
		perror("tcsetattr");
		return 2;
	}
	char seq[256];
	size_t n = 0;
	for (const char *p = argv[1]; *p && n < sizeof seq; p++) {
		if (p[0] == '\\' && p[1] == 'e') {
			seq[n++] = 0x1b;
			p++;
		} else {
			seq[n++] = *p;
		}
	}
	printf("asking\r\n");
	fflush(stdout);
	if (write(1, seq, n) != (ssize_t)n)
		return 2;
	char buf[4096];
	size_t got = 0;
	char c;
	while (got < sizeof buf && read(0, &c, 1) == 1) {
		buf[got++] = c;
		if (c == argv[2][0] && got > 1)
			break;
	}
	show("reply", buf, got);
	got = 0;
	while (got < sizeof buf && read(0, &c, 1) == 1 && c != 'X')
		buf[got++] = c;
	show("extra", buf, got);
	tcsetattr(0, TCSANOW, &old);
	return 0;
}
