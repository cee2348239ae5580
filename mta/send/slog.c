/*
 * slog - mta-send's log lines, batched (send.h).
 *
 * slog() formats one line of SPEC.md "Logs" (lib/log.h) into a buffer;
 * slog_flush() writes the buffer to stderr with one write(2), which the
 * event loop does once a turn before it sleeps: a message costs some
 * eight lines, and facteur run reads them all at once. Past 64 KiB the
 * buffer is flushed at once. A module of its own so that every part of
 * mta-send can log without depending on main.c.
 */
#include <stdarg.h>
#include <unistd.h>

#include "fsx.h"
#include "log.h"
#include "send.h"

#define SLOG_FLUSH_AT 65536

/* the lines of this turn, and the one being formatted */
static struct str logbuf, logline;

/* slog_flush - what this turn logged, in one write; a failed write to
 * stderr is not worth stopping deliveries for */
void slog_flush(void)
{
	if (logbuf.len)
		(void)fsx_write_all(2, logbuf.s, logbuf.len);
	logbuf.len = 0;
}

/* slog - one log line, into the buffer */
void slog(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = log_format(&logline, "mta-send", getpid(), fmt, ap);
	va_end(ap);
	if (r == 0 && str_catb(&logbuf, logline.s, logline.len) < 0) {
		/* out of memory: write what we have, then this line alone */
		slog_flush();
		(void)fsx_write_all(2, logline.s, logline.len);
	}
	if (logbuf.len > SLOG_FLUSH_AT)
		slog_flush();
}

/* slog_free - release the buffers (keeps the leak checker meaningful) */
void slog_free(void)
{
	str_free(&logbuf);
	str_free(&logline);
}
