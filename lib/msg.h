/*
 * msg - one diagnostics API for every program.
 *
 * msg_init() records the program name; msg_warn() prints "PROG: text" on
 * stderr; msg_die() does the same and exits with the given code;
 * msg_usage() prints the line, then the usage text, and exits 2 (every
 * program's answer to a bad command line). Library
 * code never calls msg_die: it returns a negative errno code instead.
 */
#ifndef FACTEUR_MSG_H
#define FACTEUR_MSG_H

void msg_init(const char *argv0);
const char *msg_prog(void);
void msg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void msg_die(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
_Noreturn void msg_usage(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
const char *msg_err(int negerr);

#endif
