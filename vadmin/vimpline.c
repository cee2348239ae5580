/*
 * vimpline - one line of a `vadmin import` file (see vimpline.h).
 */
#include "vimpline.h"

#include <errno.h>
#include <string.h>

#include "name.h"

/* field - next white-space separated field of a line, NUL-terminated */
static char *field(char **p)
{
	char *s = *p, *e;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return NULL;
	e = s;
	while (*e && *e != ' ' && *e != '\t')
		e++;
	if (*e)
		*e++ = 0;
	*p = e;
	return s;
}

/* vimp_parse - split and check one line (vimpline.h) */
int vimp_parse(char *line, size_t n, struct vimp_line *l, struct str *local,
	       struct str *domain, const char **why)
{
	char *p = line;

	*why = "";
	l->q = (struct quota){0, 0};
	if (memchr(line, 0, n))
		return VIMP_NUL;
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = 0;
	l->addr = field(&p);
	if (!l->addr || *l->addr == '#')
		return VIMP_SKIP;
	l->secret = field(&p);
	l->qs = field(&p);
	if (!l->secret || field(&p))
		return VIMP_FIELDS;
	if (name_addr(l->addr, local, domain, why) < 0 ||
	    (*why = name_receivable(local->s, local->len)) != NULL)
		return VIMP_ADDR;
	if (l->qs && quota_parse(l->qs, &l->q) < 0)
		return VIMP_QUOTA;
	return VIMP_USER;
}
