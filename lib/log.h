/*
 * log - the log line of SPEC.md "Logs".
 *
 * "TIMESTAMP SERVICE[PID]: TEXT\n" with an ISO 8601 UTC timestamp with
 * microseconds. Bytes of TEXT that would break the one-line-per-event rule
 * or fool its reader (control bytes, DEL, C1 controls, bytes that are not
 * UTF-8, Unicode's line separators and bidi controls: lib/utf8's
 * utf8_mask) are written as '?', so a hostile address cannot forge a log
 * line, even for a reader that breaks lines at U+2028 or a terminal that
 * takes 0x9b for CSI. log_open() opens ROOT/log/current for appending; one
 * write(2) per line keeps concurrent writers from interleaving.
 */
#ifndef FACTEUR_LOG_H
#define FACTEUR_LOG_H

#include <stdarg.h>
#include <sys/types.h>

#include "str.h"

int log_format(struct str *out, const char *service, pid_t pid,
	       const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
int log_open(const char *root);
int log_write(int fd, const char *service, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
