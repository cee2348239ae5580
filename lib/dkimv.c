/*
 * dkimv - DKIM verification (dkimv.h).
 *
 * Every byte here came from the network or from DNS: counts are bounded
 * (signatures, tags, h= names, the header), numbers saturate, and no
 * value is used before it is checked.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "dkimv.h"
#include "dns.h"
#include "qsign.h"
#include "sasl.h"

#define IS_FWS(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')

enum { V_HEAD, V_BODY, V_DONE };

/* dkimv_res_name - the RFC 8601 result word */
const char *dkimv_res_name(int res)
{
	static const char *const names[] = {
		"none", "pass", "fail", "neutral", "temperror", "permerror"};

	return res >= 0 && res <= DKIMV_PERMERROR ? names[res] : "permerror";
}

/* tag_name - the tag at *P: ALPHA *(ALNUM / "_") (RFC 6376 3.2) */
static int tag_name(const char *v, size_t n, size_t *p, struct dkimv_tag *t)
{
	size_t s = *p, k;

	if (s >= n || !((v[s] | 32) >= 'a' && (v[s] | 32) <= 'z'))
		return -EINVAL;
	while (*p < n && (v[*p] == '_' || (v[*p] >= '0' && v[*p] <= '9') ||
			  ((v[*p] | 32) >= 'a' && (v[*p] | 32) <= 'z')))
		(*p)++;
	k = *p - s < sizeof t->name ? *p - s : sizeof t->name - 1;
	memcpy(t->name, v + s, k);
	t->name[k] = 0;
	return 0;
}

/* dkimv_tags - the tag=value list V (see dkimv.h) */
int dkimv_tags(const char *v, size_t n, struct dkimv_tag *t, size_t *n_r)
{
	size_t p = 0, k = 0, j, e;

	for (;;) {
		while (p < n && IS_FWS(v[p]))
			p++;
		if (p == n)
			break;
		if (k == DKIMV_TAGS_MAX)
			return -E2BIG;
		if (tag_name(v, n, &p, &t[k]) < 0)
			return -EINVAL;
		while (p < n && IS_FWS(v[p]))
			p++;
		if (p == n || v[p++] != '=')
			return -EINVAL;
		while (p < n && IS_FWS(v[p]))
			p++;
		for (e = p; e < n && v[e] != ';'; e++)
			if ((unsigned char)v[e] < 32 && !IS_FWS(v[e]))
				return -EINVAL;
		t[k].off = p;
		for (t[k].len = e - p; t[k].len && IS_FWS(v[p + t[k].len - 1]);
		     t[k].len--)
			;
		for (j = 0; j < k; j++)
			if (!strcmp(t[j].name, t[k].name))
				return -EINVAL;	/* 3.2: a repeated tag */
		k++;
		p = e < n ? e + 1 : e;
	}
	*n_r = k;
	return 0;
}

/* tag_get - the value of tag NAME, or NULL */
static const struct dkimv_tag *tag_get(const struct dkimv_tag *t, size_t n,
				       const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return &t[i];
	return NULL;
}

/* is - does the value of tag T in V equal S (case-insensitively) */
static int is(const char *v, const struct dkimv_tag *t, const char *s)
{
	return t->len == strlen(s) && !strncasecmp(v + t->off, s, t->len);
}

/* b64_fws - base64 with folding white space in it, decoded */
static int b64_fws(const char *v, size_t n, struct str *out)
{
	struct str c = STR_INIT;
	size_t i;
	int r = 0;

	for (i = 0; i < n && r == 0; i++)
		if (!IS_FWS(v[i]))
			r = str_catc(&c, v[i]);
	str_trunc(out, 0);
	if (r == 0 && c.len)
		r = b64_decode(c.s, c.len, out) < 0 ? -EINVAL : 0;
	str_free(&c);
	return r;
}

/* number - decimal digits, saturating (l= may have 76 digits) */
static int number(const char *v, size_t n, uint64_t *out)
{
	size_t i;

	*out = 0;
	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		*out = *out > (UINT64_MAX - 9) / 10 ? UINT64_MAX :
		       *out * 10 + (uint64_t)(v[i] - '0');
	}
	return 0;
}

/* lower_name - a DNS name tag's value, folded, checked; a value that is
 * no name is not kept, so that a signature's d= and s= are names or
 * nothing (what reports and DMARC read of a failed signature) */
static int lower_name(const char *v, const struct dkimv_tag *t,
		      struct str *out)
{
	size_t i;

	if (!t || !t->len || t->len > 253 || str_copyb(out, v + t->off,
						       t->len) < 0)
		goto bad;
	for (i = 0; i < out->len; i++)
		if (out->s[i] >= 'A' && out->s[i] <= 'Z')
			out->s[i] = (char)(out->s[i] + 32);
	if (dns_name_ok(out->s))
		return 0;
bad:
	str_free(out);
	return -EINVAL;
}

/* dkimv_sig_init - an empty parsed signature */
void dkimv_sig_init(struct dkimv_sig *s)
{
	memset(s, 0, sizeof *s);
}

/* dkimv_sig_free - release a parsed signature */
void dkimv_sig_free(struct dkimv_sig *s)
{
	str_free(&s->d);
	str_free(&s->s);
	str_free(&s->i);
	str_free(&s->h);
	str_free(&s->bh);
	str_free(&s->b);
}

/* sig_algo - a= and c= */
static int sig_algo(struct dkimv_sig *s, const char *v,
		    const struct dkimv_tag *a, const struct dkimv_tag *c)
{
	const char *slash;

	if (is(v, a, "rsa-sha256"))
		s->type = DKIM_RSA;
	else if (is(v, a, "ed25519-sha256"))
		s->type = DKIM_ED25519;
	else if (is(v, a, "rsa-sha1"))
		s->type = DKIM_RSA, s->sha1 = 1;
	else
		return -EINVAL;
	s->hsimple = s->bsimple = 1;
	if (!c)
		return 0;
	slash = memchr(v + c->off, '/', c->len);
	if (slash) {
		struct dkimv_tag h = *c, b = *c;

		h.len = (size_t)(slash - (v + c->off));
		b.off = c->off + h.len + 1;
		b.len = c->len - h.len - 1;
		s->hsimple = is(v, &h, "simple");
		s->bsimple = is(v, &b, "simple");
		return (s->hsimple || is(v, &h, "relaxed")) &&
		       (s->bsimple || is(v, &b, "relaxed")) ? 0 : -EINVAL;
	}
	s->hsimple = is(v, c, "simple");
	return s->hsimple || is(v, c, "relaxed") ? 0 : -EINVAL;
}

/* sig_ids - d=, s=, i= (default @d; its domain d= or under it) */
static int sig_ids(struct dkimv_sig *s, const char *v,
		   const struct dkimv_tag *t, size_t nt)
{
	const struct dkimv_tag *i = tag_get(t, nt, "i");
	const char *at;
	size_t dl;

	if (lower_name(v, tag_get(t, nt, "d"), &s->d) < 0 ||
	    lower_name(v, tag_get(t, nt, "s"), &s->s) < 0 ||
	    s->s.len + s->d.len + 12 > 253)
		return -EINVAL;
	if (!i)
		return str_copys(&s->i, "@") ? -ENOMEM :
		       str_catb(&s->i, s->d.s, s->d.len);
	if (str_copyb(&s->i, v + i->off, i->len) < 0)
		return -ENOMEM;
	at = memchr(s->i.s, '@', s->i.len);
	if (!at)
		return -EINVAL;
	at++;
	dl = s->i.len - (size_t)(at - s->i.s);
	if (dl < s->d.len || strcasecmp(at + dl - s->d.len, s->d.s) ||
	    (dl > s->d.len && at[dl - s->d.len - 1] != '.'))
		return -EINVAL;
	return 0;
}

/* a name of h= as written ([s, s + len)), or a field's name */
struct span {
	const char *s;
	size_t len;
};

/* name_cmp - order of two names, ASCII case ignored */
static int name_cmp(struct span a, struct span b)
{
	size_t i, n = a.len < b.len ? a.len : b.len;

	for (i = 0; i < n; i++) {
		int x = (unsigned char)a.s[i], y = (unsigned char)b.s[i];

		x += x >= 'A' && x <= 'Z' ? 'a' - 'A' : 0;
		y += y >= 'A' && y <= 'Z' ? 'a' - 'A' : 0;
		if (x != y)
			return x - y;
	}
	return a.len < b.len ? -1 : a.len > b.len;
}

/* field_name - the name of field F: up to ':' or white space */
static struct span field_name(const char *f, size_t n)
{
	struct span k = {f, 0};

	while (k.len < n && f[k.len] != ':' && f[k.len] != ' ' &&
	       f[k.len] != '\t')
		k.len++;
	return k;
}

/* name_is - is field F named NAME[0..NL) */
static int name_is(const char *f, size_t n, const char *name, size_t nl)
{
	return name_cmp(field_name(f, n), (struct span){name, nl}) == 0;
}

/* h_names - the names of h= (the first DKIMV_HNAMES_MAX into NM) and
 * how many there are */
static size_t h_names(const struct str *h, struct span *nm)
{
	size_t p = 0, e, a, b, n = 0;

	while (p <= h->len) {
		for (e = p; e < h->len && h->s[e] != ':'; e++)
			;
		for (a = p; a < e && IS_FWS(h->s[a]); a++)
			;
		for (b = e; b > a && IS_FWS(h->s[b - 1]); b--)
			;
		if (n < DKIMV_HNAMES_MAX)
			nm[n] = (struct span){h->s + a, b - a};
		n++;
		p = e + 1;
	}
	return n;
}

/* h_has_from - does the h= list name From: (RFC 6376 5.4); *COUNT its
 * names */
static int h_has_from(const struct str *h, size_t *count)
{
	struct span nm[DKIMV_HNAMES_MAX];
	size_t i;

	*count = h_names(h, nm);
	for (i = 0; i < *count && i < DKIMV_HNAMES_MAX; i++)
		if (name_cmp(nm[i], (struct span){"from", 4}) == 0)
			return 1;
	return 0;
}

/* sig_values - v=, h=, bh=, b=, l=, t=, x=, q= */
static int sig_values(struct dkimv_sig *s, const char *v,
		      const struct dkimv_tag *t, size_t nt)
{
	const struct dkimv_tag *x = tag_get(t, nt, "v"),
	    *h = tag_get(t, nt, "h"), *bh = tag_get(t, nt, "bh"),
	    *b = tag_get(t, nt, "b"), *l = tag_get(t, nt, "l"),
	    *ts = tag_get(t, nt, "t"), *xs = tag_get(t, nt, "x"),
	    *q = tag_get(t, nt, "q");
	size_t nh;

	if (!x || !is(v, x, "1") || !h || !bh || !b)
		return -EINVAL;
	if (q && (q->len < 7 || strncasecmp(v + q->off, "dns/txt", 7)))
		return -EINVAL;
	if (str_copyb(&s->h, v + h->off, h->len) < 0 || !h_has_from(&s->h, &nh)
	    || nh > DKIMV_HNAMES_MAX)
		return -EINVAL;
	if (b64_fws(v + bh->off, bh->len, &s->bh) < 0 ||
	    s->bh.len != (s->sha1 ? 20u : DKIM_HASH_LEN) ||
	    b64_fws(v + b->off, b->len, &s->b) < 0 || !s->b.len)
		return -EINVAL;
	s->b_off = b->off;
	s->b_len = b->len;
	s->has_l = l != NULL;
	s->has_x = xs != NULL;
	if ((l && number(v + l->off, l->len, &s->l) < 0) ||
	    (ts && number(v + ts->off, ts->len, &s->t) < 0) ||
	    (xs && number(v + xs->off, xs->len, &s->x) < 0) ||
	    (ts && xs && s->x < s->t))
		return -EINVAL;
	return 0;
}

/* dkimv_sig_parse - the DKIM-Signature field F (name, value, LF): 0,
 * -EINVAL (permerror, *WHY_R says why) or -ETIME (x= has passed) */
int dkimv_sig_parse(struct dkimv_sig *s, const char *f, size_t n, time_t now,
		    const char **why_r)
{
	struct dkimv_tag t[DKIMV_TAGS_MAX];
	const char *colon = memchr(f, ':', n), *v;
	size_t nt = 0, vo;
	int r;

	*why_r = "malformed signature";
	if (!colon)
		return -EINVAL;
	v = colon + 1;
	vo = (size_t)(v - f);
	if (dkimv_tags(v, n - vo, t, &nt) < 0)
		return -EINVAL;
	if (!tag_get(t, nt, "a") ||
	    sig_algo(s, v, tag_get(t, nt, "a"), tag_get(t, nt, "c")) < 0) {
		*why_r = "unknown algorithm";
		return -EINVAL;
	}
	r = sig_ids(s, v, t, nt);
	if (r == 0)
		r = sig_values(s, v, t, nt);
	if (r < 0)
		return r == -ENOMEM ? r : -EINVAL;
	s->b_off += vo;
	if (s->has_x && now >= 0 && s->x < (uint64_t)now) {
		*why_r = "signature expired";
		return -ETIME;
	}
	*why_r = NULL;
	return 0;
}

/* dkimv_key_free - release a parsed key record */
void dkimv_key_free(struct dkimv_key *k)
{
	str_free(&k->p);
}

/* has_word - is W one of the ':'-separated words of tag T in V */
static int has_word(const char *v, const struct dkimv_tag *t, const char *w)
{
	size_t p = t->off, e = t->off + t->len, a, b;

	while (p <= e) {
		struct dkimv_tag one;

		for (b = p; b < e && v[b] != ':'; b++)
			;
		for (a = p; a < b && IS_FWS(v[a]); a++)
			;
		one.off = a;
		for (one.len = b - a; one.len && IS_FWS(v[a + one.len - 1]);
		     one.len--)
			;
		if (is(v, &one, w))
			return 1;
		p = b + 1;
	}
	return 0;
}

/* dkimv_key_parse - the key record TXT (3.6.1): 0 or -EINVAL */
int dkimv_key_parse(struct dkimv_key *k, const char *txt, size_t n,
		    const char **why_r)
{
	struct dkimv_tag t[DKIMV_TAGS_MAX];
	const struct dkimv_tag *v, *kt, *h, *p, *ts, *sv;
	size_t nt = 0;

	*why_r = "malformed key record";
	memset(k, 0, sizeof *k);
	if (dkimv_tags(txt, n, t, &nt) < 0)
		return -EINVAL;
	v = tag_get(t, nt, "v");
	kt = tag_get(t, nt, "k");
	h = tag_get(t, nt, "h");
	p = tag_get(t, nt, "p");
	ts = tag_get(t, nt, "t");
	sv = tag_get(t, nt, "s");
	if ((v && (v != &t[0] || !is(txt, v, "DKIM1"))) || !p)
		return -EINVAL;
	k->type = !kt || is(txt, kt, "rsa") ? DKIM_RSA :
		  is(txt, kt, "ed25519") ? DKIM_ED25519 : -1;
	if (k->type < 0) {
		*why_r = "unknown key type";
		return -EINVAL;
	}
	if ((h && !has_word(txt, h, "sha256")) ||
	    (sv && !has_word(txt, sv, "*") && !has_word(txt, sv, "email"))) {
		*why_r = "key not for this use";
		return -EINVAL;
	}
	k->strict = ts && has_word(txt, ts, "s");
	if (b64_fws(txt + p->off, p->len, &k->p) < 0)
		return -EINVAL;
	*why_r = NULL;
	return 0;
}

/* canon_simple - a field as it is, each LF made CR LF (3.4.1) */
static int canon_simple(struct str *out, const char *f, size_t n)
{
	size_t i;
	int r = 0;

	for (i = 0; i < n && r == 0; i++) {
		if (f[i] == '\n' && (i == 0 || f[i - 1] != '\r'))
			r = str_catc(out, '\r');
		if (r == 0)
			r = str_catc(out, f[i]);
	}
	return r;
}

/* canon - one field, as the signature says */
static int canon(const struct dkimv_sig *s, struct str *out, const char *f,
		 size_t n)
{
	return s->hsimple ? canon_simple(out, f, n) :
	       dkim_canon_header(out, f, n);
}

/* lower_bound - the first of ORD (indexes into NM, sorted by name) whose
 * name is not below K */
static size_t lower_bound(const struct span *nm, const size_t *ord, size_t n,
			  struct span k)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (name_cmp(nm[ord[mid]], k) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* pick_fields - the fields h= names, each from the bottom up, once
 * (RFC 6376 5.4.2), canonical into C; FLD the header's (off, len). The
 * names are sorted (stable: equal names keep the order of h=), and one
 * pass over the header from the bottom gives each field to the first
 * name of its run that has none yet, so the cost is the header's length
 * times log2 of the names, not times the names (five signatures of 100
 * absent names over a header of 333,000 fields took 0.34 s). */
static int pick_fields(const struct dkimv_sig *s, const char *hdr,
		       const size_t *fld, size_t nf, struct str *c)
{
	struct span nm[DKIMV_HNAMES_MAX];
	size_t ord[DKIMV_HNAMES_MAX], taken[DKIMV_HNAMES_MAX];
	size_t pick[DKIMV_HNAMES_MAX];
	size_t n = h_names(&s->h, nm), left, i, j, lb;
	int r = 0;

	n = n < DKIMV_HNAMES_MAX ? n : DKIMV_HNAMES_MAX;	/* sig_values */
	left = n;
	for (i = 0; i < n; i++) {	/* insertion sort: stable, n <= 100 */
		for (j = i; j > 0 && name_cmp(nm[ord[j - 1]], nm[i]) > 0; j--)
			ord[j] = ord[j - 1];
		ord[j] = i;
		taken[i] = 0;
		pick[i] = SIZE_MAX;
	}
	for (j = nf; left && j-- > 0;) {
		struct span k = field_name(hdr + fld[2 * j], fld[2 * j + 1]);

		lb = lower_bound(nm, ord, n, k);
		if (lb < n && lb + taken[lb] < n &&
		    name_cmp(nm[ord[lb + taken[lb]]], k) == 0) {
			pick[ord[lb + taken[lb]]] = j;
			taken[lb]++;
			left--;
		}
	}
	for (i = 0; r == 0 && i < n; i++)
		if (pick[i] != SIZE_MAX)
			r = canon(s, c, hdr + fld[2 * pick[i]],
				  fld[2 * pick[i] + 1]);
	return r;
}

/* header_hash - SHA-256 of the signed fields and of the signature field
 * SELF with b= emptied, without its final CR LF (3.7) */
static int header_hash(struct dkimv_one *o, const char *hdr,
		       const size_t *fld, size_t nf, const char *self,
		       size_t n)
{
	struct str c = STR_INIT, me = STR_INIT;
	unsigned int hl = 0;
	int r = pick_fields(&o->sig, hdr, fld, nf, &c);

	if (r == 0)
		r = str_catb(&me, self, o->sig.b_off) ? -ENOMEM :
		    str_catb(&me, self + o->sig.b_off + o->sig.b_len,
			     n - o->sig.b_off - o->sig.b_len);
	if (r == 0)
		r = canon(&o->sig, &c, me.s, me.len);
	if (r == 0 && c.len >= 2 && !memcmp(c.s + c.len - 2, "\r\n", 2))
		c.len -= 2;
	if (r == 0 && (EVP_Digest(c.s, c.len, o->hh, &hl, dkim_sha256(), NULL)
		       != 1 || hl != DKIM_HASH_LEN))
		r = -EIO;
	str_free(&c);
	str_free(&me);
	return r;
}

/* one_sig - parse signature field F, start its hashes */
static int one_sig(struct dkimv *v, const char *hdr, const size_t *fld,
		   size_t nf, const char *f, size_t n)
{
	struct dkimv_one *o = &v->sig[v->nsig++];
	int r;

	dkimv_sig_init(&o->sig);
	r = dkimv_sig_parse(&o->sig, f, n, v->now, &o->why);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		o->res = r == -ETIME ? DKIMV_FAIL : DKIMV_PERMERROR;
		return 0;
	}
	if (o->sig.sha1) {	/* RFC 8301 3.1: never valid */
		o->res = DKIMV_FAIL;
		o->why = "rsa-sha1";
		return 0;
	}
	r = header_hash(o, hdr, fld, nf, f, n);
	if (r == 0)
		r = dkim_body_init_v(&o->body, o->sig.bsimple, o->sig.has_l ?
				     o->sig.l : UINT64_MAX);
	return r;
}

/* header_end - the header (N bytes of fields) is complete */
static int header_end(struct dkimv *v, size_t n)
{
	struct str fld = STR_INIT;
	const char *f;
	size_t pos = 0, flen, o[2], nf, i;
	int r;

	while ((r = dkim_hdr_next(v->head.s, n, &pos, &f, &flen)) == 1) {
		o[0] = (size_t)(f - v->head.s);
		o[1] = flen;
		if (str_catb(&fld, o, sizeof o) < 0) {
			r = -ENOMEM;
			break;
		}
	}
	nf = fld.len / sizeof o;
	/* a line that is no field: what we hash might not be what was
	 * signed; the fields before it are still checked */
	r = r == -ENOMEM ? r : 0;
	for (i = 0; r == 0 && i < nf && v->nsig < DKIMV_SIGS_MAX; i++) {
		size_t *p = (size_t *)(void *)fld.s + 2 * i;

		if (name_is(v->head.s + p[0], p[1], "dkim-signature", 14))
			r = one_sig(v, v->head.s, (size_t *)(void *)fld.s, nf,
				    v->head.s + p[0], p[1]);
	}
	str_free(&fld);
	v->from_r = qsign_from_domain(v->head.s ? v->head.s : "", n, &v->from);
	if (v->from_r == -ENOMEM && r == 0)
		r = -ENOMEM;
	str_free(&v->head);
	v->state = V_BODY;
	return r;
}

/* dkimv_start - an empty verifier */
void dkimv_start(struct dkimv *v)
{
	memset(v, 0, sizeof *v);
	v->bol = 1;
	v->from_r = -ENODATA;
	v->now = time(NULL);
}

/* body - body bytes into every signature's hash */
static int body(struct dkimv *v, const char *b, size_t n)
{
	size_t i;
	int r = 0;

	for (i = 0; i < v->nsig && r == 0; i++)
		if (v->sig[i].body.md)
			r = dkim_body_feed(&v->sig[i].body, b, n);
	return r;
}

/* dkimv_put - N more bytes of the message */
int dkimv_put(struct dkimv *v, const void *buf, size_t n)
{
	const char *b = buf;
	size_t i;
	int r;

	if (v->state == V_BODY)
		return body(v, b, n);
	if (v->state == V_DONE)
		return 0;
	for (i = 0; i < n; i++) {
		if (v->bol && b[i] == '\n')
			break;		/* the empty line */
		v->bol = b[i] == '\n';
	}
	if (v->head.len + i >= DKIMV_HEAD_MAX) {
		v->toobig = 1;
		v->from_r = -E2BIG;
		v->state = V_DONE;
		str_free(&v->head);
		return 0;
	}
	if (i == n)
		return str_catb(&v->head, b, n);
	if (str_catb(&v->head, b, i + 1) < 0)
		return -ENOMEM;
	r = header_end(v, v->head.len - 1);
	return r == 0 && i + 1 < n ? body(v, b + i + 1, n - i - 1) : r;
}

/* dkimv_in_header - see dkimv.h */
int dkimv_in_header(const struct dkimv *v)
{
	return v->state == V_HEAD;
}

/* dkimv_end - the message is complete: body hashes compared */
int dkimv_end(struct dkimv *v)
{
	unsigned char bh[DKIM_HASH_LEN];
	size_t i;
	int r = 0;

	if (v->state == V_HEAD)	/* no empty line: all header */
		r = header_end(v, v->head.len);
	v->state = V_DONE;
	for (i = 0; r == 0 && i < v->nsig; i++) {
		struct dkimv_one *o = &v->sig[i];

		if (!o->body.md)
			continue;
		r = dkim_body_final(&o->body, bh);
		dkim_body_free(&o->body);
		if (r == 0 && o->res == DKIMV_NONE &&
		    memcmp(bh, o->sig.bh.s, DKIM_HASH_LEN)) {
			o->res = DKIMV_FAIL;
			o->why = "body hash mismatch";
		}
	}
	return r;
}

/* decode_key - the EVP key of a record: SubjectPublicKeyInfo (or a bare
 * PKCS#1 RSAPublicKey, which some publish) for RSA, 32 bytes for Ed25519 */
static EVP_PKEY *decode_key(const struct dkimv_key *k)
{
	const unsigned char *p = (const unsigned char *)k->p.s;
	EVP_PKEY *pk;

	if (k->type == DKIM_ED25519)
		return k->p.len == 32 ? EVP_PKEY_new_raw_public_key(
			EVP_PKEY_ED25519, NULL, p, 32) : NULL;
	if (k->p.len > 65536)
		return NULL;
	pk = d2i_PUBKEY(NULL, &p, (long)k->p.len);
	if (!pk) {
		p = (const unsigned char *)k->p.s;
		pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)k->p.len);
	}
	if (pk && EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pk);
		pk = NULL;
	}
	return pk;
}

/* The keys decoded last in this process, each with its RSA verification
 * context made ready. OpenSSL 3 decodes a DER key and sets up a context
 * through its provider machinery (fetches by name, locks), which costs
 * more than the RSA verification itself; an MX receives most of its mail
 * from a few senders' keys, and one mta-smtpd process serves many
 * messages. Keyed by the record's key bytes, so a changed record is a new
 * key: the cache never outlives DNS, it only spares the decoding. An
 * RSA context may verify again and again once initialized
 * (EVP_PKEY_verify(3)); Ed25519's one-shot context cannot. */
#define KEYS_KEPT 16

static struct kept_key {
	int type;
	struct str p;
	EVP_PKEY *pk;
	EVP_PKEY_CTX *rsa;	/* verify_init'ed, PKCS#1 v1.5, SHA-256 */
} kept[KEYS_KEPT];
static size_t kept_next;	/* the slot the next new key takes */

/* rsa_ctx - a context ready to verify rsa-sha256 signatures with PK */
static EVP_PKEY_CTX *rsa_ctx(EVP_PKEY *pk)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);

	if (c && (EVP_PKEY_verify_init(c) != 1 ||
		  EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) != 1 ||
		  EVP_PKEY_CTX_set_signature_md(c, dkim_sha256()) != 1)) {
		EVP_PKEY_CTX_free(c);
		c = NULL;
	}
	return c;
}

/* key_of - the kept entry of K in *E, decoded and kept now if it was
 * not: 0, -EINVAL when the record holds no usable key, -ENOMEM */
static int key_of(const struct dkimv_key *k, struct kept_key **e_r)
{
	struct kept_key *e;
	EVP_PKEY *pk;
	size_t i;
	int r;

	for (i = 0; i < KEYS_KEPT; i++) {
		e = &kept[i];
		if (e->pk && e->type == k->type && e->p.len == k->p.len &&
		    memcmp(e->p.s, k->p.s, k->p.len) == 0) {
			*e_r = e;
			return 0;
		}
	}
	pk = decode_key(k);
	if (!pk)
		return -EINVAL;
	e = &kept[kept_next];
	EVP_PKEY_CTX_free(e->rsa);
	EVP_PKEY_free(e->pk);
	e->rsa = NULL;
	e->pk = pk;
	e->type = k->type;
	str_trunc(&e->p, 0);
	r = str_catb(&e->p, k->p.s, k->p.len);
	if (r == 0 && k->type == DKIM_RSA && !(e->rsa = rsa_ctx(pk)))
		r = -EINVAL;	/* OpenSSL cannot verify with it */
	if (r < 0) {
		EVP_PKEY_free(e->pk);
		e->pk = NULL;	/* a free slot again */
		return r;
	}
	kept_next = (kept_next + 1) % KEYS_KEPT;
	*e_r = e;
	return 0;
}

/* sig_ok - does the signature verify with the kept key E: 1, 0 */
static int sig_ok(const struct dkimv_one *o, const struct kept_key *e)
{
	const unsigned char *b = (const unsigned char *)o->sig.b.s;
	EVP_MD_CTX *m;
	int ok;

	if (o->sig.type == DKIM_RSA)
		return EVP_PKEY_verify(e->rsa, b, o->sig.b.len, o->hh,
				       DKIM_HASH_LEN) == 1;
	m = EVP_MD_CTX_new();
	ok = m && EVP_DigestVerifyInit(m, NULL, NULL, NULL, e->pk) == 1 &&
	     EVP_DigestVerify(m, b, o->sig.b.len, o->hh, DKIM_HASH_LEN) == 1;
	EVP_MD_CTX_free(m);
	return ok;
}

/* verdict - O's result with the parsed key K */
static void verdict(struct dkimv_one *o, const struct dkimv_key *k)
{
	const char *at = strchr(o->sig.i.s, '@');
	struct kept_key *e;
	int r;

	o->res = DKIMV_PERMERROR;
	if (!k->p.len) {
		o->res = DKIMV_FAIL;
		o->why = "key revoked";
		return;
	}
	if (k->type != o->sig.type) {
		o->why = "key type mismatch";
		return;
	}
	if (k->strict && (!at || strcasecmp(at + 1, o->sig.d.s))) {
		o->why = "i= not d= under t=s";
		return;
	}
	r = key_of(k, &e);
	if (r == -ENOMEM) {	/* ours, not the sender's: try again later */
		o->res = DKIMV_TEMPERROR;
		o->why = "out of memory";
		return;
	}
	if (r < 0) {
		o->why = "key record is not a key";
		return;
	}
	o->res = DKIMV_FAIL;
	if (o->sig.type == DKIM_RSA && EVP_PKEY_get_bits(e->pk) < 1024)
		o->why = "key under 1024 bits";
	else if (sig_ok(o, e))
		o->res = DKIMV_PASS, o->why = NULL;
	else
		o->why = "signature mismatch";
}

/* dkimv_check - O's verdict from its key record TXT (lookup result DNSR) */
void dkimv_check(struct dkimv_one *o, const char *txt, size_t n, int dnsr)
{
	struct dkimv_key k;

	if (o->res != DKIMV_NONE)
		return;		/* decided without the key */
	if (dnsr == -EAGAIN || dnsr == -ETIMEDOUT || dnsr == -ENOMEM) {
		o->res = DKIMV_TEMPERROR;
		o->why = "key lookup failed";
		return;
	}
	if (dnsr < 0) {	/* RFC 6376 6.1.2: no key is a permanent failure */
		o->res = DKIMV_PERMERROR;
		o->why = "no key";
		return;
	}
	if (dkimv_key_parse(&k, txt, n, &o->why) < 0)
		o->res = DKIMV_PERMERROR;
	else
		verdict(o, &k);
	dkimv_key_free(&k);
}

/* dkimv_finish - body hashes, then every key asked at once, verdicts;
 * DNS NULL (no resolver): temperror for all that need a key. No answer
 * by DEADLINE_MS (lib/clock's now_ms) is a temperror too */
int dkimv_finish(struct dkimv *v, struct dns *dns, int64_t deadline_ms)
{
	struct dns_q q[DKIMV_SIGS_MAX];
	struct str name[DKIMV_SIGS_MAX];
	size_t i, n = 0, idx[DKIMV_SIGS_MAX];
	int r = dkimv_end(v);

	memset(q, 0, sizeof q);
	memset(name, 0, sizeof name);
	for (i = 0; r == 0 && i < v->nsig; i++) {
		if (v->sig[i].res != DKIMV_NONE)
			continue;
		r = str_catf(&name[n], "%s._domainkey.%s", v->sig[i].sig.s.s,
			     v->sig[i].sig.d.s);
		q[n].type = DNS_Q_TXT;
		q[n].name = name[n].s;
		idx[n++] = i;
	}
	if (r == 0 && n && dns)
		r = dns_batch(dns, q, n, deadline_ms) == -ENOMEM ? -ENOMEM : 0;
	for (i = 0; r == 0 && i < n; i++)
		dkimv_check(&v->sig[idx[i]], q[i].txt.s ? q[i].txt.s : "",
			    q[i].txt.len, dns ? q[i].r : -EAGAIN);
	dns_batch_free(q, n);
	for (i = 0; i < n; i++)
		str_free(&name[i]);
	return r;
}

/* dkimv_free - release what V holds */
void dkimv_free(struct dkimv *v)
{
	size_t i;

	for (i = 0; i < v->nsig; i++) {
		dkimv_sig_free(&v->sig[i].sig);
		dkim_body_free(&v->sig[i].body);
	}
	str_free(&v->head);
	str_free(&v->from);
	v->nsig = 0;
}
