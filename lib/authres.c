/*
 * authres - Authentication-Results: building ours, removing forged ones
 * (authres.h).
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "authres.h"

#define NAME "authentication-results"
#define LINE_MAX 700		/* one result's line, by construction */
#define REASON_MAX 64
#define PVAL_MAX 253
#define WORD_MAX 16		/* method, result, ptype.property */
#define COMMENT_DEPTH 16

enum { F_HOLD, F_DROP, F_PASS, F_BODY };

/* safe - may S stand as a pvalue without quoting (RFC 8601 2.2) */
static int safe(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0, i;

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
			s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      strchr(".-_@+", s[i])))
			return 0;
	return 1;
}

/* authres_add - one more result (see authres.h) */
int authres_add(struct authres *a, const char *method, const char *result,
		const char *reason, const char *p1, const char *v1,
		const char *p2, const char *v2)
{
	struct authres_one *o;

	if (a->n == AUTHRES_MAX)
		return -E2BIG;
	if (!safe(method, WORD_MAX) || !safe(result, WORD_MAX))
		return -EINVAL;
	o = &a->r[a->n++];
	o->method = method;
	o->result = result;
	o->reason = reason;
	o->ptype[0] = p1;
	o->pval[0] = v1;
	o->ptype[1] = p2;
	o->pval[1] = v2;
	return 0;
}

/* cat_reason - reason="..." with nothing that would need escaping */
static int cat_reason(struct str *out, const char *why)
{
	size_t i;
	int r = str_cats(out, " reason=\"");

	for (i = 0; why[i] && i < REASON_MAX && r == 0; i++)
		if (why[i] >= ' ' && why[i] < 127 && why[i] != '"' &&
		    why[i] != '\\')
			r = str_catc(out, why[i]);
	return r ? r : str_catc(out, '"');
}

/* cat_one - one result on its own line */
static int cat_one(struct str *out, const struct authres_one *o)
{
	size_t k;
	/* a line stays under LINE_MAX: WORD_MAX, REASON_MAX and PVAL_MAX */
	int r = str_catf(out, "\n\t%s=%s", o->method, o->result);

	if (r == 0 && o->reason)
		r = cat_reason(out, o->reason);
	for (k = 0; k < 2 && r == 0; k++)
		if (safe(o->ptype[k], WORD_MAX) && safe(o->pval[k], PVAL_MAX))
			r = str_catf(out, " %s=%s", o->ptype[k], o->pval[k]);
	return r;
}

/* authres_room - the most bytes authres_build can make for N results:
 * a line is bounded by the caps on words, reasons and values */
size_t authres_room(const char *me, size_t n)
{
	return 64 + strlen(me) + n * LINE_MAX;
}

/* authres_build - the whole field, LF ends (see authres.h) */
int authres_build(const struct authres *a, const char *me, struct str *out)
{
	size_t i;
	int r;

	str_trunc(out, 0);
	r = str_catf(out, "Authentication-Results: %s;", me);
	if (r == 0 && a->n == 0)
		r = str_cats(out, " none");
	for (i = 0; r == 0 && i < a->n; i++) {
		r = cat_one(out, &a->r[i]);
		if (r == 0 && i + 1 < a->n)
			r = str_catc(out, ';');
	}
	return r ? r : str_catc(out, '\n');
}

/* skip_cfws - white space and comments (nested, bounded) at *P */
static int skip_cfws(const char *f, size_t n, size_t *p)
{
	int depth = 0;

	for (; *p < n; (*p)++) {
		char c = f[*p];

		if (depth && c == '\\' && *p + 1 < n)
			(*p)++;
		else if (c == '(' && ++depth > COMMENT_DEPTH)
			return -EINVAL;
		else if (c == ')' && depth)
			depth--;
		else if (!depth && c != ' ' && c != '\t' && c != '\r' &&
			 c != '\n')
			return 0;
	}
	return 0;
}

/* authres_claims - does the A-R field F name ME as its authserv-id */
int authres_claims(const char *f, size_t n, const char *me)
{
	size_t p = 0, k = strlen(NAME), s;
	struct str id = STR_INIT;
	int r;

	if (n < k || strncasecmp(f, NAME, k))
		return 0;
	for (p = k; p < n && (f[p] == ' ' || f[p] == '\t'); p++)
		;
	if (p == n || f[p++] != ':' || skip_cfws(f, n, &p) < 0 || p == n)
		return 0;
	if (f[p] == '"') {
		for (p++; p < n && f[p] != '"'; p++) {
			if (f[p] == '\\' && p + 1 < n)
				p++;
			if (str_catc(&id, f[p]) < 0)
				break;
		}
	} else {
		for (s = p; p < n && f[p] != ';' && f[p] != '(' &&
		     f[p] != ' ' && f[p] != '\t' && f[p] != '\r' &&
		     f[p] != '\n'; p++)
			;
		(void)str_catb(&id, f + s, p - s);
	}
	r = id.len == strlen(me) && !strncasecmp(id.s, me, id.len);
	str_free(&id);
	return r;
}

/* authres_filter_init - a filter of the header for authserv-id ME */
void authres_filter_init(struct authres_filter *f, const char *me)
{
	memset(f, 0, sizeof *f);
	f->me = me;
	f->bol = 1;
}

/* field_done - the held field is complete: out, unless it claims ME */
static int field_done(struct authres_filter *f, struct str *out)
{
	int r = 0;

	if (f->state == F_HOLD && f->field.len &&
	    !authres_claims(f->field.s, f->field.len, f->me))
		r = str_catb(out, f->field.s, f->field.len);
	str_trunc(&f->field, 0);
	f->state = F_HOLD;
	return r;
}

/* too_long - the held field passed the bound: drop or pass the rest */
static int too_long(struct authres_filter *f, struct str *out)
{
	size_t k = strlen(NAME);
	int r = 0;

	if (f->field.len >= k && !strncasecmp(f->field.s, NAME, k)) {
		f->state = F_DROP;
	} else {
		r = str_catb(out, f->field.s, f->field.len);
		f->state = F_PASS;
	}
	str_trunc(&f->field, 0);
	return r;
}

/* authres_filter_put - N header (then body) bytes; what passes to OUT.
 * A line at a time (memchr), not a byte: the header of a signed message
 * is a few KiB, and every checked message goes through here */
int authres_filter_put(struct authres_filter *f, const char *b, size_t n,
		       struct str *out)
{
	size_t i = 0, len;
	const char *nl;
	int r = 0;

	while (i < n && r == 0) {
		if (f->state == F_BODY)
			return str_catb(out, b + i, n - i);
		if (f->bol && b[i] != ' ' && b[i] != '\t')
			r = field_done(f, out);	/* a new field, or the end */
		if (r == 0 && f->bol && b[i] == '\n') {
			f->state = F_BODY;
			r = str_catc(out, '\n');
			i++;
			continue;
		}
		/* the rest of the line, through its LF, or what there is;
		 * a held field grows only to one byte past the bound */
		nl = memchr(b + i, '\n', n - i);
		len = nl ? (size_t)(nl - (b + i)) + 1 : n - i;
		if (f->state == F_HOLD &&
		    len > AUTHRES_FIELD_MAX + 1 - f->field.len)
			len = AUTHRES_FIELD_MAX + 1 - f->field.len;
		f->bol = b[i + len - 1] == '\n';
		if (r == 0 && f->state == F_PASS)
			r = str_catb(out, b + i, len);
		else if (r == 0 && f->state == F_HOLD)
			r = str_catb(&f->field, b + i, len);
		i += len;
		if (r == 0 && f->field.len > AUTHRES_FIELD_MAX)
			r = too_long(f, out);
	}
	return r;
}

/* authres_filter_end - the end of the message: the last field out */
int authres_filter_end(struct authres_filter *f, struct str *out)
{
	return f->state == F_BODY ? 0 : field_done(f, out);
}

/* authres_filter_free - release the held field */
void authres_filter_free(struct authres_filter *f)
{
	str_free(&f->field);
}
