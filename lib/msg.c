/*
 * msg - diagnostics (see msg.h).
 */
#include "msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsx.h"
#include "str.h"

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

/* vsay - "PROG: TEXT\n" in one write(2): stderr is unbuffered, and
 * facteur run reads the stderr of every service through one pipe, where
 * three writes could be interleaved with another program's line */
static __attribute__((format(printf, 1, 0))) void vsay(const char *fmt,
						      va_list ap)
{
	struct str line = STR_INIT;
	va_list aq;

	va_copy(aq, ap);
	if (str_catf(&line, "%s: ", prog) == 0 &&
	    str_vcatf(&line, fmt, aq) == 0 && str_catc(&line, '\n') == 0) {
		(void)fsx_write_all(2, line.s, line.len);
	} else {	/* out of memory: in pieces, as before */
		fprintf(stderr, "%s: ", prog);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(aq);
	str_free(&line);
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
