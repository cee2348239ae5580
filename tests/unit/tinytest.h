/*
 * tinytest.h - the result-line protocol of tests/run.py.
 *
 * Every check prints exactly one line on stdout: "ok NAME" or
 * "FAIL NAME: why". tt_exit() returns the exit code: 0 when every check
 * passed, else 1. Names are built with tt_name() and never hold a space or
 * an unprintable byte, so the runner can read them back.
 */
#ifndef FACTEUR_TINYTEST_H
#define FACTEUR_TINYTEST_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tt_failed;
static unsigned tt_checks;

/* tt_vcheck - print the line for one check; returns cond */
static inline __attribute__((format(printf, 3, 0)))
int tt_vcheck(int cond, const char *name, const char *fmt, va_list ap)
{
	tt_checks++;
	if (cond) {
		printf("ok %s\n", name);
	} else {
		tt_failed++;
		printf("FAIL %s: ", name);
		vprintf(fmt, ap);
		putchar('\n');
	}
	fflush(stdout);
	return cond;
}

/* tt_check - one check with a printf-style reason used when it fails */
static inline __attribute__((format(printf, 3, 4)))
int tt_check(int cond, const char *name, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tt_vcheck(cond, name, fmt, ap);
	va_end(ap);
	return r;
}

/* tt_name - a check name from a format; printable, no spaces (static buffer) */
static inline __attribute__((format(printf, 1, 2)))
const char *tt_name(const char *fmt, ...)
{
	static char buf[256];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	for (i = 0; buf[i]; i++)
		if ((unsigned char)buf[i] <= ' ' || (unsigned char)buf[i] >= 0x7f)
			buf[i] = '_';
	return buf;
}

/* tt_show - a byte string made printable for a message (static buffer) */
static inline const char *tt_show(const void *p, size_t n)
{
	static char buf[4][512];
	static unsigned k;
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = p;
	char *o = buf[k = (k + 1) % 4];
	size_t i, j = 0;

	if (!p)
		return "(null)";
	for (i = 0; i < n && j + 8 < sizeof buf[0]; i++) {
		if (s[i] >= ' ' && s[i] < 0x7f && s[i] != '\\') {
			o[j++] = (char)s[i];
		} else {
			o[j++] = '\\';
			o[j++] = 'x';
			o[j++] = hex[s[i] >> 4];
			o[j++] = hex[s[i] & 15];
		}
	}
	if (i < n) {
		memcpy(o + j, "...", 3);
		j += 3;
	}
	o[j] = 0;
	return o;
}

#define CHECK(name, cond) tt_check((cond), (name), "%s", #cond)

#define CHECK_INT(name, got, want) do { \
	long long got_ = (long long)(got), want_ = (long long)(want); \
	tt_check(got_ == want_, (name), "got %lld, want %lld (%s)", \
		 got_, want_, #got); \
} while (0)

#define CHECK_U64(name, got, want) do { \
	unsigned long long got_ = (got), want_ = (want); \
	tt_check(got_ == want_, (name), "got %llu, want %llu (%s)", \
		 got_, want_, #got); \
} while (0)

#define CHECK_MEM(name, got, gotlen, want, wantlen) do { \
	const void *gotp_ = (got), *wantp_ = (want); \
	size_t gotn_ = (gotlen), wantn_ = (wantlen); \
	tt_check(gotn_ == wantn_ && (gotn_ == 0 || \
		 (gotp_ && memcmp(gotp_, wantp_, gotn_) == 0)), (name), \
		 "got \"%s\" (%zu bytes), want \"%s\" (%zu bytes)", \
		 tt_show(gotp_, gotn_), gotn_, tt_show(wantp_, wantn_), \
		 wantn_); \
} while (0)

#define CHECK_STR(name, got, want) do { \
	const char *gots_ = (got), *wants_ = (want); \
	tt_check(gots_ && wants_ && strcmp(gots_, wants_) == 0, (name), \
		 "got \"%s\", want \"%s\"", \
		 gots_ ? tt_show(gots_, strlen(gots_)) : "(null)", \
		 wants_ ? tt_show(wants_, strlen(wants_)) : "(null)"); \
} while (0)

/* tt_exit - the program's exit code */
static inline int tt_exit(void)
{
	return tt_failed ? 1 : 0;
}

#endif
