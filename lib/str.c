/*
 * str - growable, binary-safe byte strings (see str.h).
 * @UNSAFE: raw buffer arithmetic (realloc, memcpy at an offset). It is
 * not the only such file: the parsers (lib/queue.c, lib/hdrscan.c,
 * pop3d/proto.c, mta/smtpd/, mta/remote/ ...) index their input too, with
 * each length checked where it is read; here it is the growth of every
 * struct str, every size sum checked before it is used.
 */
#include "str.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* str_ready - make room for extra more bytes plus the terminating NUL */
int str_ready(struct str *sa, size_t extra)
{
	size_t need, ncap;
	char *p;

	if (extra > SIZE_MAX - 1 - sa->len)
		return -EOVERFLOW;
	need = sa->len + extra + 1;
	if (need <= sa->cap)
		return 0;
	ncap = sa->cap ? sa->cap : 32;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	p = realloc(sa->s, ncap);
	if (!p)
		return -ENOMEM;
	sa->s = p;
	sa->cap = ncap;
	return 0;
}

/* str_catb - append n bytes */
int str_catb(struct str *sa, const void *buf, size_t n)
{
	int r = str_ready(sa, n);

	if (r < 0)
		return r;
	if (n)
		memcpy(sa->s + sa->len, buf, n);
	sa->len += n;
	sa->s[sa->len] = 0;
	return 0;
}

/* str_cats - append a C string */
int str_cats(struct str *sa, const char *s)
{
	return str_catb(sa, s, strlen(s));
}

/* str_vcatf - append printf-style output; -EINVAL when vsnprintf cannot
 * format it (an encoding error), which str.h's list of codes omits */
int str_vcatf(struct str *sa, const char *fmt, va_list ap)
{
	va_list aq;
	int n, r;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		return -EINVAL;
	r = str_ready(sa, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(sa->s + sa->len, (size_t)n + 1, fmt, ap);
	sa->len += (size_t)n;
	return 0;
}

/* str_catf - append printf-style output */
int str_catf(struct str *sa, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = str_vcatf(sa, fmt, ap);
	va_end(ap);
	return r;
}

/* str_catu - append an unsigned decimal number, without printf's cost */
int str_catu(struct str *sa, unsigned long long u)
{
	char buf[24];
	size_t i = sizeof buf;

	do {
		buf[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	return str_catb(sa, buf + i, sizeof buf - i);
}

/* str_copyb - replace the content with n bytes */
int str_copyb(struct str *sa, const void *buf, size_t n)
{
	size_t old = sa->len;
	int r;

	sa->len = 0;
	r = str_catb(sa, buf, n);
	if (r < 0)
		sa->len = old;
	return r;
}

/* str_copys - replace the content with a C string */
int str_copys(struct str *sa, const char *s)
{
	return str_copyb(sa, s, strlen(s));
}

/* str_trunc - shorten to n bytes (no-op when already shorter) */
void str_trunc(struct str *sa, size_t n)
{
	if (n < sa->len) {
		sa->len = n;
		sa->s[n] = 0;
	}
}

/* str_cstr - the content as a C string ("" when never allocated) */
const char *str_cstr(const struct str *sa)
{
	return sa->s ? sa->s : "";
}

/* str_eqs - content equals the C string exactly */
int str_eqs(const struct str *sa, const char *s)
{
	size_t n = strlen(s);

	return sa->len == n && (n == 0 || memcmp(sa->s, s, n) == 0);
}

/* str_wipe - str_free() after overwriting the whole buffer, for strings
 * that held a password or a secret derived from one */
void str_wipe(struct str *sa)
{
	if (sa->s)
		explicit_bzero(sa->s, sa->cap);
	str_free(sa);
}

/* str_free - release the buffer; the string may be reused afterwards */
void str_free(struct str *sa)
{
	free(sa->s);
	sa->s = NULL;
	sa->len = sa->cap = 0;
}
