/*
 * ctl - control files under ROOT/control, one setting per file.
 *
 * ctl_get() returns the first line with surrounding white space removed, or
 * the default when the file is missing or empty; ctl_get_ulong() parses it
 * as a decimal number (lib/num's rule: ctl_parse_ulong()). A file that exists but cannot be read is an error,
 * never silently the default. ctl_get_lines() returns every non-empty,
 * non-comment line, each terminated by NUL. ctl_line_number() gives the
 * file's line number of one of those lines (or of ctl_get's), for the
 * messages of `facteur doctor`. ctl_me() is this host's name as every
 * program says it (greetings, Received: lines, bounces): control/me, else
 * SPEC's default, the system host name.
 *
 * The numeric settings are read by ctl_num() alone, from one table,
 * ctl_nums[]: a setting's default (SPEC.md's) and its range live there
 * and nowhere else, so that every program that reads a setting, and
 * `facteur doctor` that checks it, agree. A value outside the range is
 * held to the nearer bound (a flag, 0-1, keeps its default) and
 * ctl_num() returns 1; a file that cannot be
 * read or holds no number is a negative errno, with *out the default, so
 * that a caller that goes on uses what a missing file would give.
 * ctl_num_hold() is that range rule alone, for a value already read
 * (`facteur doctor` names what the programs use without a second read).
 * ctl_num_warn() is ctl_num() for a program that goes on with the
 * default: it returns the value to use and, for a file that cannot be
 * read or holds no number, says so through WARN (msg_warn, or a
 * program's own logger), in the same words in every program, so that
 * the fallback is never silent. vdeliver alone stays silent: its stderr
 * is the delivery's reason, not a log.
 */
#ifndef FACTEUR_CTL_H
#define FACTEUR_CTL_H

#include <stddef.h>

#include "str.h"

#define CTL_MAX (1024 * 1024)

int ctl_path(struct str *out, const char *root, const char *name);
int ctl_get(const char *root, const char *name, const char *def,
	    struct str *out);
int ctl_me(const char *root, struct str *out);
int ctl_get_ulong(const char *root, const char *name, unsigned long def,
		  unsigned long *out);
int ctl_get_lines(const char *root, const char *name, struct str *out,
		  size_t *count_r);
int ctl_line_number(const char *root, const char *name, size_t k,
		    size_t *line_r);
int ctl_parse_ulong(const char *s, unsigned long *out);

enum ctl_numid {
	CTL_DATABYTES,
	CTL_QUEUELIFETIME,
	CTL_CONCURRENCYLOCAL,
	CTL_CONCURRENCYREMOTE,
	CTL_RETRYBASE,
	CTL_REMOTEPORT,
	CTL_TIMEOUTCONNECT,
	CTL_QUOTAWARN,
	CTL_QUOTABOUNCE,
	CTL_POPBEFORESMTP,
	CTL_TIMEOUTSMTPD,
	CTL_TIMEOUTREMOTE,
	CTL_TIMEOUTPOP3,
	CTL_MAXSESSIONS,
	CTL_MAXPERIP,
	CTL_POP3MAXFAIL,
	CTL_SMTPMAXFAIL,
	CTL_POP3PLAINTEXT,
	CTL_SPFREJECT,
	CTL_DMARCREJECT,
	CTL_NUMS
};

struct ctl_numdef {
	const char *name;
	unsigned long def, min, max;
};

extern const struct ctl_numdef ctl_nums[CTL_NUMS];

int ctl_num(const char *root, enum ctl_numid id, unsigned long *out);
int ctl_num_hold(enum ctl_numid id, unsigned long v, unsigned long *out);
unsigned long ctl_num_warn(const char *root, enum ctl_numid id,
			   void (*warn)(const char *fmt, ...));

#endif
