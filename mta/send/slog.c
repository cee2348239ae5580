/*
 * slog - mta-send's log lines, batched (send.h).
 *
 * slog() formats one line of SPEC.md "Logs" (lib/log.h) into a buffer;
 * slog_flush() writes the buffer to stderr in writes of whole lines of
 * at most PIPE_BUF bytes each, which the event loop does once a turn
 * before it sleeps: a message costs some
 * eight lines, and facteur run reads them all at once. Past 64 KiB the
 * buffer is flushed at once. A module of its own so that every part of
 * mta-send can log without depending on main.c.
 */
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "fsx.h"
#include "log.h"
#include "send.h"

#define SLOG_FLUSH_AT 65536

/* the lines of this turn, and the one being formatted */
static struct str logbuf, logline;

/* slog_flush - what this turn logged, in as few writes as keep each
 * whole: stderr is a pipe that mta-remote's diagnostics share, and only
 * a write of at most PIPE_BUF bytes is never interleaved with another's,
 * so each write is whole lines up to PIPE_BUF (a longer line alone). A
 * failed write to stderr is not worth stopping deliveries for. */
void slog_flush(void)
{
	size_t at = 0;

	while (at < logbuf.len) {
		size_t n = 0, end;

		/* whole lines while they fit; at least one line */
		while (at + n < logbuf.len) {
			const char *nl = memchr(logbuf.s + at + n, '\n',
						logbuf.len - at - n);

			end = nl ? (size_t)(nl - logbuf.s) + 1 : logbuf.len;
			if (n && end - at > PIPE_BUF)
				break;
			n = end - at;
		}
		(void)fsx_write_all(2, logbuf.s + at, n);
		at += n;
	}
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
