/*
 * fuzz_vimport - libFuzzer target for the lines of `vadmin import`
 * (vadmin/vimpline.c), fed one line each as getline() gives it (the
 * input up to its first LF).
 *
 * Checked against a model of the format: a NUL anywhere refuses the line;
 * without its CR and LF ends, a line of no field or whose first field
 * starts with '#' is skipped, one of other than two or three fields
 * (split at spaces and tabs only) is refused; an accepted line's address
 * is its first field up to case (a domain in U-labels: its A-labels,
 * name_domain_ascii), its local part and domain are path-safe
 * (the Maildir is domains/DOMAIN/LOCAL/Maildir: no '/', not "." or "..",
 * no control byte, a lower-case domain), its secret the second field; and
 * the user written back (LOCAL@DOMAIN SECRET QUOTA, the quota as
 * lib/quota formats it) parses to the same user.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "name.h"
#include "vimpline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* nfields - the model's split: fields between spaces and tabs */
static size_t nfields(const char *s, size_t n, const char **first)
{
	size_t i = 0, k = 0;

	*first = NULL;
	while (i < n) {
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i == n)
			break;
		if (!k)
			*first = s + i;
		k++;
		while (i < n && s[i] != ' ' && s[i] != '\t')
			i++;
	}
	return k;
}

/* path_safe - a name that can be a directory of its own below domains/ */
static int path_safe(const struct str *s, int lower)
{
	size_t i;

	if (!s->len || !strcmp(s->s, ".") || !strcmp(s->s, "..") ||
	    strlen(s->s) != s->len)
		return 0;
	for (i = 0; i < s->len; i++)
		if (s->s[i] == '/' || (unsigned char)s->s[i] < 0x20 ||
		    s->s[i] == 0x7f || (lower && s->s[i] >= 'A' &&
					s->s[i] <= 'Z'))
			return 0;
	return 1;
}

/* check_user - an accepted line against the model and its round trip */
static void check_user(const char *trimmed, size_t tn,
		       const struct vimp_line *l, const struct str *local,
		       const struct str *domain)
{
	struct str back = STR_INIT, qf = STR_INIT, lo = STR_INIT,
		   dom = STR_INIT, want = STR_INIT, given = STR_INIT;
	struct vimp_line l2;
	const char *first, *why, *at = strrchr(l->addr, '@');

	if (!path_safe(local, 0) || !path_safe(domain, 1) || !at)
		abort();
	if (str_catb(&want, local->s, local->len) || str_catc(&want, '@') ||
	    str_catb(&want, domain->s, domain->len) ||
	    str_catb(&given, l->addr, (size_t)(at - l->addr) + 1) ||
	    name_domain_ascii(at + 1, strlen(at + 1), &given) ||
	    strcasecmp(want.s, given.s))
		abort();
	if (nfields(trimmed, tn, &first) != (l->qs ? 3u : 2u) ||
	    !*l->secret || strpbrk(l->secret, " \t"))
		abort();
	if (l->qs && quota_format(&l->q, &qf) < 0)
		abort();
	if (str_catb(&back, want.s, want.len) || str_catc(&back, ' ') ||
	    str_cats(&back, l->secret) ||
	    (qf.len && (str_catc(&back, '\t') || str_catb(&back, qf.s,
							   qf.len))) ||
	    str_cats(&back, " \n"))
		abort();	/* the space keeps a secret's last CR in it */
	if (vimp_parse(back.s, back.len, &l2, &lo, &dom, &why) != VIMP_USER ||
	    !str_eqs(&lo, local->s) || !str_eqs(&dom, domain->s) ||
	    strcmp(l2.secret, l->secret) ||
	    (qf.len && (l2.q.bytes != l->q.bytes || l2.q.msgs != l->q.msgs)))
		abort();
	str_free(&back);
	str_free(&qf);
	str_free(&lo);
	str_free(&dom);
	str_free(&want);
	str_free(&given);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str line = STR_INIT, copy = STR_INIT, local = STR_INIT,
		   domain = STR_INIT;
	struct vimp_line l;
	const char *why, *first;
	const uint8_t *nl = memchr(data, '\n', size);
	size_t tn, k;
	int r;

	if (nl)
		size = (size_t)(nl - data) + 1;	/* getline's line ends there */
	tn = size;
	if (str_copyb(&line, data, size) < 0 || str_copyb(&copy, data, size))
		abort();
	r = vimp_parse(line.s, line.len, &l, &local, &domain, &why);
	while (tn && (copy.s[tn - 1] == '\n' || copy.s[tn - 1] == '\r'))
		tn--;
	k = nfields(copy.s, tn, &first);
	if (memchr(data, 0, size)) {
		if (r != VIMP_NUL)
			abort();
	} else if (!k || *first == '#') {
		if (r != VIMP_SKIP)
			abort();
	} else if (k != 2 && k != 3) {
		if (r != VIMP_FIELDS)
			abort();
	} else if (r == VIMP_USER) {
		check_user(copy.s, tn, &l, &local, &domain);
	} else if (r != VIMP_ADDR && r != VIMP_QUOTA) {
		abort();
	} else if (r == VIMP_QUOTA && !l.qs) {
		abort();	/* no quota field cannot be a bad quota */
	}
	str_free(&line);
	str_free(&copy);
	str_free(&local);
	str_free(&domain);
	return 0;
}
