/*
 * dmarc - DMARC (RFC 7489) over lib/dns and the Public Suffix List: see
 * dmarc.h for the API, docs/authentication.md for the choices.
 *
 * The list is kept as one sorted array of strings, each a kind byte
 * ('R' a rule, 'W' the parent of a "*." rule, 'E' an exception) and the
 * folded name; a lookup is a binary search per label of the domain, so a
 * domain of at most 127 labels costs at most 3 x 127 searches.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "dmarc.h"
#include "dns.h"
#include "idna.h"

struct psl {
	char **rule;
	size_t n;
};

/* cmp - qsort/bsearch order of two rule strings */
static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* psl_free - the rules and P */
void psl_free(struct psl *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->n; i++)
		free(p->rule[i]);
	free(p->rule);
	free(p);
}

/* add_one - KIND and the folded NAME (LEN bytes) as a rule */
static int add_one(struct psl *p, size_t *cap, char kind, const char *w,
		   size_t len)
{
	char *s;
	size_t i;

	if (!len || len > 253)
		return 0;	/* not a name: ignored */
	if (p->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 1024;
		char **nr;

		if (nc > PSL_RULES_MAX)
			return -E2BIG;
		nr = reallocarray(p->rule, nc, sizeof *nr);
		if (!nr)
			return -ENOMEM;
		p->rule = nr;
		*cap = nc;
	}
	if (!(s = malloc(len + 2)))
		return -ENOMEM;
	s[0] = kind;
	for (i = 0; i < len; i++)	/* ASCII folding; UTF-8 kept as is */
		s[i + 1] = (char)tolower((unsigned char)w[i]);
	s[len + 1] = 0;
	p->rule[p->n++] = s;
	return 0;
}

/* add - one rule of LEN bytes (the line's first word); an IDN rule also
 * in A-labels, which is how mail spells the names it is asked about */
static int add(struct psl *p, size_t *cap, const char *w, size_t len)
{
	struct str a = STR_INIT;
	char kind = 'R';
	size_t i;
	int r;

	if (w[0] == '!') {
		kind = 'E';
		w++, len--;
	} else if (len > 2 && w[0] == '*' && w[1] == '.') {
		kind = 'W';	/* "*.ck": every child of ck is a suffix */
		w += 2, len -= 2;
	}
	r = add_one(p, cap, kind, w, len);
	for (i = 0; i < len && !((unsigned char)w[i] & 0x80); i++)
		;
	if (r < 0 || i == len)
		return r;
	r = idna_to_ascii(w, len, &a);
	if (r == 0)
		r = add_one(p, cap, kind, a.s, a.len);
	str_free(&a);
	return r == -EINVAL ? 0 : r;	/* not UTF-8: the raw rule only */
}

/* psl_parse - the rules of a list text */
int psl_parse(const char *text, size_t len, struct psl **out)
{
	struct psl *p = calloc(1, sizeof *p);
	size_t pos = 0, cap = 0;
	int r = 0;

	if (!p)
		return -ENOMEM;
	while (r == 0 && pos < len) {
		size_t b = pos, e;

		while (pos < len && text[pos] != '\n')
			pos++;
		e = b;		/* the first word: up to white space */
		while (e < pos && text[e] != ' ' && text[e] != '\t' &&
		       text[e] != '\r' && text[e] != 0)
			e++;
		if (e > b && !(e - b >= 2 && text[b] == '/' && text[b + 1] == '/'))
			r = add(p, &cap, text + b, e - b);
		pos++;
	}
	if (r < 0) {
		psl_free(p);
		return r;
	}
	if (p->n)
		qsort(p->rule, p->n, sizeof *p->rule, cmp);
	*out = p;
	return 0;
}

/* psl_load - the list in PATH, bounded */
int psl_load(const char *path, struct psl **out)
{
	struct str t = STR_INIT;
	char buf[65536];
	ssize_t n;
	int r = 0, fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (r == 0 && (n = read(fd, buf, sizeof buf)) != 0) {
		if (n < 0)
			r = errno == EINTR ? 0 : -errno;
		else if (t.len + (size_t)n > PSL_FILE_MAX)
			r = -EFBIG;
		else
			r = str_catb(&t, buf, (size_t)n);
	}
	close(fd);
	if (r == 0)
		r = psl_parse(t.s ? t.s : "", t.len, out);
	str_free(&t);
	return r;
}

/* psl_default - the system list, read at the first use in a process (a
 * pre-forked mta-smtpd child keeps it for all its sessions) */
int psl_default(const struct psl **out)
{
	static struct psl *psl;
	static int err;

	if (!psl && !err)
		err = psl_load(PSL_PATH, &psl);
	*out = psl;
	return psl ? 0 : err;
}

/* has - does P hold KIND NAME (NAME of LEN bytes, folded)? */
static int has(const struct psl *p, char kind, const char *name, size_t len,
	       struct str *key)
{
	const char *k;

	if (!p->n)
		return 0;	/* bsearch wants an array, even empty */
	str_trunc(key, 0);
	if (str_catb(key, &kind, 1) < 0 || str_catb(key, name, len) < 0)
		return -ENOMEM;
	k = key->s;
	return bsearch(&k, p->rule, p->n, sizeof *p->rule, cmp) != NULL;
}

/* labels - the start offsets of DOMAIN's labels into OFF (at most 128);
 * -EINVAL for an empty label or a name too long */
static int labels(const char *d, size_t len, size_t *off, size_t *n)
{
	size_t i;

	*n = 0;
	if (!len || len > 253)
		return -EINVAL;
	off[(*n)++] = 0;
	for (i = 0; i < len; i++)
		if (d[i] == '.') {
			if (i + 1 == len || i == off[*n - 1])
				return -EINVAL;
			off[(*n)++] = i + 1;
		}
	return d[len - 1] == '.' ? -EINVAL : 0;
}

/* suffix_at - the index of DOMAIN's first label of the public suffix */
static int suffix_at(const struct psl *p, const char *d, size_t len,
		     const size_t *off, size_t n, size_t *at)
{
	struct str key = STR_INIT;
	size_t i;
	int r = 0;

	*at = n - 1;	/* no rule: "*", the last label */
	for (i = 0; r == 0 && i < n; i++)	/* an exception wins */
		if ((r = has(p, 'E', d + off[i], len - off[i], &key)) == 1) {
			*at = i + 1 < n ? i + 1 : i;
			goto out;
		}
	for (i = 0; r == 0 && i < n; i++)	/* then the longest rule */
		if ((r = has(p, 'R', d + off[i], len - off[i], &key)) == 1 ||
		    (r == 0 && i + 1 < n &&
		     (r = has(p, 'W', d + off[i + 1], len - off[i + 1], &key))
		     == 1)) {
			*at = i;
			break;
		}
out:
	str_free(&key);
	return r < 0 ? r : 0;
}

/* psl_registrable - the public suffix of DOMAIN and one label more */
int psl_registrable(const struct psl *p, const char *domain, struct str *out)
{
	struct str d = STR_INIT;
	size_t off[128], n, at, i;
	int r;

	for (i = 0; domain[i]; i++)
		if (str_catb(&d, &(char){(char)tolower((unsigned char)
						       domain[i])}, 1) < 0) {
			str_free(&d);
			return -ENOMEM;
		}
	r = i > 253 ? -EINVAL : labels(d.s, d.len, off, &n);
	if (r == 0)
		r = suffix_at(p, d.s, d.len, off, n, &at);
	if (r == 0 && at == 0)
		r = -ENOENT;	/* the domain is a public suffix */
	if (r == 0) {
		str_trunc(out, 0);
		r = str_cats(out, d.s + off[at - 1]);
	}
	str_free(&d);
	return r;
}

/* dmarc_org - the organizational domain (RFC 7489 3.2) */
int dmarc_org(const struct psl *p, const char *domain, struct str *out)
{
	int r = psl_registrable(p, domain, out);

	if (r == -ENOENT) {	/* a public suffix is its own */
		str_trunc(out, 0);
		r = str_cats(out, domain);
	}
	return r;
}

/* dmarc_aligned - A and B aligned: equal (strict) or same org (relaxed) */
int dmarc_aligned(const struct psl *p, const char *a, const char *b,
		  int strict)
{
	struct str oa = STR_INIT, ob = STR_INIT;
	int r;

	if (!strcasecmp(a, b))
		return 1;
	if (strict)
		return 0;
	r = dmarc_org(p, a, &oa);
	if (r == 0)
		r = dmarc_org(p, b, &ob);
	if (r == 0)
		r = !strcasecmp(oa.s, ob.s);
	str_free(&oa);
	str_free(&ob);
	return r == -EINVAL ? 0 : r;
}

/* policy - a p= or sp= value; -EINVAL if none of the three */
static int policy(const char *v, size_t n)
{
	if (n == 4 && !strncasecmp(v, "none", 4))
		return DMARC_P_NONE;
	if (n == 10 && !strncasecmp(v, "quarantine", 10))
		return DMARC_P_QUARANTINE;
	if (n == 6 && !strncasecmp(v, "reject", 6))
		return DMARC_P_REJECT;
	return -EINVAL;
}

/* tag - one "name=value" of the record: sets OUT's field, or BAD */
static void tag(struct dmarc_record *out, const char *t, size_t tn,
		const char *v, size_t vn, int *bad_p, int *rua)
{
	int x;

	if (tn == 1 && *t == 'p') {
		if ((x = policy(v, vn)) < 0)
			*bad_p = 1;
		else
			out->p = (enum dmarc_policy)x;
	} else if (tn == 2 && !strncmp(t, "sp", 2)) {
		if ((x = policy(v, vn)) < 0)
			*bad_p = 1;	/* RFC 7489 6.6.3: like a bad p= */
		else {
			out->sp = (enum dmarc_policy)x;
			out->has_sp = 1;
		}
	} else if (tn == 3 && !strncmp(t, "pct", 3)) {
		unsigned long n = 0;
		size_t i;

		for (i = 0; i < vn && i < 4 && isdigit((unsigned char)v[i]); i++)
			n = n * 10 + (unsigned long)(v[i] - '0');
		if (vn && i == vn && n <= 100)
			out->pct = (unsigned)n;	/* otherwise: 100 */
	} else if (tn == 5 && !strncmp(t, "adkim", 5)) {
		if (vn == 1 && (*v == 's' || *v == 'r'))
			out->adkim_strict = *v == 's';
	} else if (tn == 4 && !strncmp(t, "aspf", 4)) {
		if (vn == 1 && (*v == 's' || *v == 'r'))
			out->aspf_strict = *v == 's';
	} else if (tn == 3 && !strncmp(t, "rua", 3)) {
		*rua = vn > 0;
	}
}

/* trim - SPAN without the white space around it */
static void trim(const char **s, size_t *n)
{
	while (*n && (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n'))
		(*s)++, (*n)--;
	while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' ||
		      (*s)[*n - 1] == '\r' || (*s)[*n - 1] == '\n'))
		(*n)--;
}

/* dmarc_parse - one TXT record; -EINVAL when it is no (usable) record */
int dmarc_parse(const char *txt, size_t len, struct dmarc_record *out)
{
	size_t pos = 0, k = 0;
	int bad_p = 0, has_p = 0, rua = 0;

	memset(out, 0, sizeof *out);
	out->pct = 100;
	if (len > DMARC_TXT_MAX)
		return -EINVAL;
	while (pos <= len) {
		const char *t = txt + pos, *eq;
		size_t n = 0, tn, vn;

		while (pos + n < len && txt[pos + n] != ';')
			n++;
		pos += n + 1;
		trim(&t, &n);
		if (!n && pos > len)
			break;		/* the last ";" may end the record */
		eq = memchr(t, '=', n);
		if (!eq)
			return -EINVAL;
		tn = (size_t)(eq - t);
		vn = n - tn - 1;
		eq++;
		trim(&t, &tn);
		trim(&eq, &vn);
		/* v=DMARC1 must come first (RFC 7489 6.4) */
		if (k++ == 0) {
			if (tn != 1 || *t != 'v' || vn != 6 ||
			    strncmp(eq, "DMARC1", 6))
				return -EINVAL;
			continue;
		}
		if (tn == 1 && *t == 'p')
			has_p = 1;
		tag(out, t, tn, eq, vn, &bad_p, &rua);
	}
	if (k == 0)
		return -EINVAL;
	if (!has_p || bad_p) {	/* RFC 7489 6.6.3 */
		if (!rua)
			return -EINVAL;
		memset(out, 0, sizeof *out);
		out->pct = 100;
	}
	return 0;
}

/* lookup - the one DMARC record at _dmarc.DOMAIN: 1 found, 0 none,
 * -EAGAIN for a DNS failure */
static int lookup(struct dns *d, const char *domain, struct dmarc_record *rec)
{
	struct str name = STR_INIT, *txt = NULL;
	size_t n = 0, i, found = 0;
	int r;

	if (str_cats(&name, "_dmarc.") < 0 || str_cats(&name, domain) < 0) {
		str_free(&name);
		return -ENOMEM;
	}
	r = dns_txt(d, name.s, &txt, &n);
	str_free(&name);
	if (r == -ENOENT || r == -ENODATA || r == -EINVAL)
		return 0;
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return -EAGAIN;
	for (i = 0; i < n; i++) {
		struct dmarc_record one;

		if (dmarc_parse(txt[i].s ? txt[i].s : "", txt[i].len, &one) == 0)
			if (found++ == 0)
				*rec = one;
	}
	dns_txt_free(txt, n);
	return found == 1;	/* several: no DMARC processing (6.6.3) */
}

/* aligned_any - does a passing identifier align with the From: domain? */
static int aligned_any(const struct psl *p, const struct dmarc_in *in,
		       const struct dmarc_record *rec)
{
	size_t i;
	int r;

	if (in->spf_domain &&
	    (r = dmarc_aligned(p, in->spf_domain, in->from, rec->aspf_strict)))
		return r;
	for (i = 0; i < in->ndkim; i++)
		if ((r = dmarc_aligned(p, in->dkim_d[i], in->from,
				       rec->adkim_strict)))
			return r;
	return 0;
}

/* aligned_temp - might an identifier that could not be checked for
 * now have aligned? Then a fail is no verdict (a DNS timeout must never
 * lead to a permanent refusal); relaxed unless both modes are strict:
 * in doubt, no refusal */
static int aligned_temp(const struct psl *p, const struct dmarc_in *in,
			const struct dmarc_record *rec)
{
	size_t i;
	int r;

	for (i = 0; i < in->ntemp; i++)
		if ((r = dmarc_aligned(p, in->temp_d[i], in->from,
				       rec->adkim_strict && rec->aspf_strict)))
			return r;
	return 0;
}

/* find - the record for IN's From: domain, its own or its org's */
static int find(struct dns *d, const struct psl *p, const char *from,
		struct dmarc_record *rec, int *sub)
{
	struct str org = STR_INIT;
	int r;

	*sub = 0;
	r = lookup(d, from, rec);
	if (r == 0 && (r = dmarc_org(p, from, &org)) == 0 &&
	    strcasecmp(org.s, from)) {
		r = lookup(d, org.s, rec);
		*sub = 1;
	}
	str_free(&org);
	return r;
}

/* dmarc_check - the verdict on one message (dmarc.h) */
int dmarc_check(struct dns *d, const struct psl *p, const struct dmarc_in *in,
		int64_t deadline_ms, struct dmarc_result *out)
{
	struct dmarc_record rec;
	int r, sub;

	memset(out, 0, sizeof *out);
	if (!d) {
		out->res = DMARC_TEMPERROR;
		out->why = "no resolver";
		return 0;
	}
	dns_deadline(d, deadline_ms);
	r = find(d, p, in->from, &rec, &sub);
	dns_deadline(d, 0);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		out->res = r == -EAGAIN ? DMARC_TEMPERROR : DMARC_PERMERROR;
		out->why = r == -EAGAIN ? "DNS timeout or error" :
			   "bad From: domain";
		return 0;
	}
	if (r == 0)
		return 0;	/* none */
	out->policy = sub && rec.has_sp ? rec.sp : rec.p;
	r = aligned_any(p, in, &rec);
	if (r < 0)
		return r;
	out->res = r ? DMARC_PASS : DMARC_FAIL;
	if (out->res == DMARC_FAIL && (r = aligned_temp(p, in, &rec))) {
		if (r < 0)
			return r;
		out->res = DMARC_TEMPERROR;
		out->why = "SPF or DKIM temperror";
		return 0;
	}
	out->applied = out->policy;
	/* pct=: the policy for that share of failures, the next milder one
	 * for the others (RFC 7489 6.6.4) */
	if (out->res == DMARC_FAIL && rec.pct < 100 &&
	    arc4random_uniform(100) >= rec.pct && out->applied)
		out->applied = (enum dmarc_policy)(out->applied - 1);
	return 0;
}

/* dmarc_res_name - the RFC 8601 result word */
const char *dmarc_res_name(enum dmarc_res r)
{
	static const char *const n[] = {"none", "pass", "fail", "temperror",
					"permerror"};

	return (unsigned)r < sizeof n / sizeof *n ? n[r] : "permerror";
}

/* dmarc_policy_name - p='s word */
const char *dmarc_policy_name(enum dmarc_policy p)
{
	return p == DMARC_P_REJECT ? "reject" :
	       p == DMARC_P_QUARANTINE ? "quarantine" : "none";
}
