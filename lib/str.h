/*
 * str - growable, binary-safe byte strings.
 *
 * A struct str holds len bytes in a buffer of cap bytes and is always
 * NUL-terminated after a successful call (s[len] == 0), so str_cstr() can
 * be passed to C APIs when the content has no NUL of its own. Every size
 * sum is checked for overflow. Functions return 0 or -ENOMEM/-EOVERFLOW;
 * on failure the string keeps its previous content. str_wipe() is
 * str_free() that first zeroes the buffer, for anything password-like.
 */
#ifndef FACTEUR_STR_H
#define FACTEUR_STR_H

#include <stdarg.h>
#include <stddef.h>

struct str {
	char *s;
	size_t len;
	size_t cap;
};

#define STR_INIT {NULL, 0, 0}

int str_ready(struct str *sa, size_t extra);
int str_catb(struct str *sa, const void *buf, size_t n);
int str_cats(struct str *sa, const char *s);
int str_catf(struct str *sa, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int str_vcatf(struct str *sa, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
int str_catu(struct str *sa, unsigned long long u);
int str_copyb(struct str *sa, const void *buf, size_t n);
int str_copys(struct str *sa, const char *s);
void str_trunc(struct str *sa, size_t n);
const char *str_cstr(const struct str *sa);
int str_eqs(const struct str *sa, const char *s);
void str_free(struct str *sa);
void str_wipe(struct str *sa);

/* str_catc - append one byte. Inline: DATA's line reader and the header
 * parsers call it for every byte, and the call through str_catb and
 * str_ready cost more than the copy */
static inline int str_catc(struct str *sa, char c)
{
	if (sa->len + 2 <= sa->cap) {
		sa->s[sa->len++] = c;
		sa->s[sa->len] = 0;
		return 0;
	}
	return str_catb(sa, &c, 1);
}

#endif
