/* Writes the runtime's status line for a failure read from standard input (code, message, path
 * and record, separated by NUL bytes) into a buffer of argv[1] bytes (default 4000), for the
 * test that feeds the encoder hostile strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

static void field(char *out, size_t size, const char **p, const char *end)
{
	size_t n = strnlen(*p, (size_t)(end - *p));
	if (n >= size)
		n = size - 1;
	memcpy(out, *p, n);
	out[n] = 0;
	*p += strnlen(*p, (size_t)(end - *p)) + 1;
	if (*p > end)
		*p = end;
}

int main(int argc, char **argv)
{
	static char in[1 << 16];
	size_t len = fread(in, 1, sizeof in - 1, stdin);
	in[len] = 0;
	const char *p = in, *end = in + len;
	struct err e;
	char code[ERR_CODE_LEN];
	field(code, sizeof code, &p, end);
	field(e.msg, sizeof e.msg, &p, end);
	field(e.path, sizeof e.path, &p, end);
	field(e.record, sizeof e.record, &p, end);
	e.code[0] = 0;
	if (code[0])
		snprintf(e.code, sizeof e.code, "%s", code);
	size_t size = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : STATUS_LINE_MAX;
	char *out = malloc(size + 16);
	memset(out, 'X', size + 16);
	size_t n = status_error_json(out, size, "restore_failed", &e);
	/* Nothing past the buffer, and the length it says. */
	for (size_t i = size; i < size + 16; i++)
		if (out[i] != 'X')
			return 3;
	if (strlen(out) != n || n >= size)
		return 4;
	fwrite(out, 1, n, stdout);
	putchar('\n');
	free(out);
	return 0;
}
