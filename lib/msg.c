/*
 * msg - diagnostics (see msg.h).
 */
#include "msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "facteur";

/* msg_init - remember the basename of argv[0] */
void msg_init(const char *argv0)
{
	const char *p;

	if (!argv0 || !*argv0)
		return;
	p = strrchr(argv0, '/');
	prog = p ? p + 1 : argv0;
}

/* msg_prog - the program name used as the prefix of every diagnostic */
const char *msg_prog(void)
{
	return prog;
}

static __attribute__((format(printf, 1, 0))) void vsay(const char *fmt,
						      va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* msg_warn - print one line on stderr */
void msg_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

/* msg_die - print one line on stderr and exit with code */
void msg_die(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	exit(code);
}

/* msg_usage - one line, the usage text on stderr, exit 2 */
void msg_usage(const char *usage, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	fputs(usage, stderr);
	exit(2);
}

/* msg_err - strerror for the library's negative error codes */
const char *msg_err(int negerr)
{
	return strerror(negerr < 0 ? -negerr : negerr);
}
