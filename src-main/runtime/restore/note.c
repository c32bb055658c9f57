/*
 * The restore's note: what it could not carry as it was (dropped, come back disconnected or on
 * other addresses), each part saying so itself, for the user (the status line's `note`, shown as
 * the session's restoreNote). Its own file: the fuzz targets link the parts that write it
 * (restore/inotify.c) without the rest of the object restore.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "restore.h"

void restore_note(struct restore_ctx *c, const char *fmt, ...)
{
	size_t len = strlen(c->note);
	if (len + 8 >= sizeof c->note)
		return;
	if (len)
		len += (size_t)snprintf(c->note + len, sizeof c->note - len, "; ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->note + len, sizeof c->note - len, fmt, ap);
	va_end(ap);
}
