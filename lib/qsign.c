/*
 * qsign - DKIM signing as a message is queued (qsign.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "acct.h"
#include "addrlist.h"
#include "cdbx.h"
#include "name.h"
#include "qsign.h"

enum { QS_PASS, QS_HEAD, QS_BODY };

#define CACHE_MAX 256		/* domains kept; then the cache starts over */

struct qsign_key {
	struct str sel;
	struct dkim_key k;
};

struct qsign_dom {
	struct str name;
	size_t n;
	struct qsign_key keys[DKIM_KEYS_MAX];
};

/* the keys of this process, valid while control/dkim.cdb is the same
 * file: vadmin replaces it by rename, so a new inode means new keys */
static struct {
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	struct qsign_dom *doms;
	size_t n;
} cache;

/* dom_free - one domain's keys */
static void dom_free(struct qsign_dom *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		str_free(&d->keys[i].sel);
		dkim_key_free(&d->keys[i].k);
	}
	str_free(&d->name);
	d->n = 0;
}

/* doms_free - every domain's keys; the table's identity is kept */
static void doms_free(void)
{
	size_t i;

	for (i = 0; i < cache.n; i++)
		dom_free(&cache.doms[i]);
	cache.n = 0;
}

/* qsign_cache_free - forget every key (tests; a long-lived process never
 * needs to: the cache renews itself) */
void qsign_cache_free(void)
{
	doms_free();
	free(cache.doms);
	memset(&cache, 0, sizeof cache);
}

/* load_dom - DOMAIN's keys as the table record V names them:
 * SELECTOR \0 TYPE, repeated */
static int load_dom(struct qsign_dom *d, const char *root, const struct str *v)
{
	const char *f[2 * DKIM_KEYS_MAX];
	size_t len[2 * DKIM_KEYS_MAX], k = 1, i;
	struct str path = STR_INIT;
	int r;

	for (i = 0; i < v->len; i++)
		k += v->s[i] == 0;
	if (k % 2 || k > 2 * DKIM_KEYS_MAX ||
	    acct_fields(v->s, v->len, f, len, k) < 0)
		return -EILSEQ;
	for (i = 0, r = 0; i < k && r == 0; i += 2) {
		struct qsign_key *q = &d->keys[d->n];
		int type = dkim_type_parse(f[i + 1]);

		if (type < 0 || !dkim_selector_ok(f[i]))
			r = -EILSEQ;
		if (r == 0)
			r = dkim_key_path(&path, root, d->name.s, f[i]);
		if (r == 0)
			r = dkim_key_load(&q->k, path.s, type);
		if (r == 0 && str_copys(&q->sel, f[i]) < 0) {
			dkim_key_free(&q->k);
			r = -ENOMEM;
		}
		if (r == 0)
			d->n++;
	}
	str_free(&path);
	return r;
}

/* cache_check - drop the cache if control/dkim.cdb changed; -ENOENT when
 * there is no table (no domain has a key) */
static int cache_check(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		qsign_cache_free();
		return errno == ENOENT ? -ENOENT : -errno;
	}
	if (st.st_dev != cache.dev || st.st_ino != cache.ino ||
	    st.st_mtim.tv_sec != cache.mtime.tv_sec ||
	    st.st_mtim.tv_nsec != cache.mtime.tv_nsec) {
		qsign_cache_free();
		cache.dev = st.st_dev;
		cache.ino = st.st_ino;
		cache.mtime = st.st_mtim;
	}
	return 0;
}

/* cache_add - a new entry for DOMAIN, keys not loaded yet */
static struct qsign_dom *cache_add(const char *domain)
{
	struct qsign_dom *d;

	if (cache.n == CACHE_MAX)
		doms_free();	/* many domains: start over, same table */
	if (!cache.doms) {
		cache.doms = calloc(CACHE_MAX, sizeof *cache.doms);
		if (!cache.doms)
			return NULL;
	}
	d = &cache.doms[cache.n];
	memset(d, 0, sizeof *d);
	if (str_copys(&d->name, domain) < 0)
		return NULL;
	cache.n++;
	return d;
}

/* keys_of - DOMAIN's keys (none: an entry with n == 0), from the cache or
 * the table; -EIO when a key the table names cannot be used */
static int keys_of(const char *root, const char *domain,
		   const struct qsign_dom **d_r)
{
	struct str path = STR_INIT, v = STR_INIT;
	struct qsign_dom *d;
	size_t i;
	int r;

	*d_r = NULL;
	if (str_catf(&path, "%s/control/dkim.cdb", root) < 0)
		return -ENOMEM;
	r = cache_check(path.s);
	if (r == -ENOENT) {	/* no table: no domain has a key */
		r = 0;
		goto out;
	}
	for (i = 0; r == 0 && i < cache.n; i++)
		if (str_eqs(&cache.doms[i].name, domain)) {
			*d_r = &cache.doms[i];
			goto out;
		}
	if (r == 0)
		r = cdbx_lookup(path.s, domain, strlen(domain), &v);
	if (r == -ENOENT || r == -ENODATA) {
		r = 0;
		str_trunc(&v, 0);
	}
	if (r == 0 && !(d = cache_add(domain)))
		r = -ENOMEM;
	if (r == 0 && v.len && (r = load_dom(d, root, &v)) < 0) {
		dom_free(d);	/* tried again at the next message */
		cache.n--;
		r = r == -ENOMEM ? r : -EIO;
	}
	if (r == 0)
		*d_r = d;
out:
	str_free(&path);
	str_free(&v);
	return r;
}

/* qsign_from_domain - the folded domain of the header's one From:
 * address; -EINVAL when there is no From:, two, or not one address */
int qsign_from_domain(const char *hdr, size_t n, struct str *domain)
{
	struct str val = STR_INIT, addrs = STR_INIT;
	const char *f, *from = NULL, *at, *why;
	size_t pos = 0, flen, flen1 = 0, naddr = 0;
	int r, nfrom = 0;

	while ((r = dkim_hdr_next(hdr, n, &pos, &f, &flen)) == 1)
		if (flen > 5 && !strncasecmp(f, "from", 4) &&
		    (f[4] == ':' || f[4] == ' ' || f[4] == '\t')) {
			from = f;
			flen1 = flen;
			nfrom++;
		}
	if (r < 0 || nfrom != 1)
		return -EINVAL;
	f = memchr(from, ':', flen1);
	r = str_copyb(&val, f + 1, flen1 - (size_t)(f + 1 - from));
	if (r == 0)
		r = memchr(val.s, 0, val.len) ? -EINVAL :
		    addrlist_parse(val.s, &addrs, &naddr);
	if (r == 0 && (naddr != 1 || !(at = strrchr(addrs.s, '@'))))
		r = -EINVAL;
	if (r == 0) {
		str_trunc(domain, 0);
		r = name_domain(at + 1, strlen(at + 1), domain, &why);
	}
	str_free(&val);
	str_free(&addrs);
	return r;
}

/* qsign_start - sign what passes through Q if ON and its From: has keys */
int qsign_start(struct qsign *q, struct qwriter *w, const char *root, int on)
{
	memset(q, 0, sizeof *q);
	q->w = w;
	q->root = root;
	q->state = on ? QS_HEAD : QS_PASS;
	q->bol = 1;
	dkim_sign_init(&q->sig);
	return 0;
}

/* pass - give up signing: the header as it came, then straight through */
static int pass(struct qsign *q)
{
	int r = q->head.len ? qw_body(q->w, q->head.s, q->head.len) : 0;

	q->state = QS_PASS;
	str_free(&q->head);
	return r;
}

/* decide - the header is complete (FIELDS bytes of fields, then maybe
 * the empty line): leave room for the signatures, or pass */
static int decide(struct qsign *q, size_t fields)
{
	struct str domain = STR_INIT, text = STR_INIT;
	size_t i;
	int r = qsign_from_domain(q->head.s, fields, &domain);

	if (r == -EINVAL || r == 0) {
		r = r ? 0 : keys_of(q->root, domain.s, &q->dom);
		if (r == 0 && (!q->dom || !q->dom->n ||
			       dkim_sign_header(&q->sig, q->head.s, fields,
						domain.s, time(NULL)) < 0))
			q->dom = NULL;
	}
	for (i = 0; r == 0 && q->dom && i < q->dom->n; i++) {
		r = dkim_sign_field(&q->sig, &q->dom->keys[i].k,
				    q->dom->keys[i].sel.s, NULL, &text);
		q->gap_len += text.len;
	}
	if (r == 0 && q->dom)
		r = qw_reserve(q->w, q->gap_len, &q->gap_off);
	if (r == 0 && q->dom)
		r = dkim_body_init(&q->body);
	str_free(&domain);
	str_free(&text);
	if (r < 0)
		return r;
	if (!q->dom)
		return pass(q);
	q->state = QS_BODY;
	r = qw_body(q->w, q->head.s, q->head.len);
	str_free(&q->head);
	return r;
}

/* body - body bytes: to the file and the hash */
static int body(struct qsign *q, const char *b, size_t n)
{
	int r = qw_body(q->w, b, n);

	return r < 0 ? r : dkim_body_feed(&q->body, b, n);
}

/* qsign_put - N more bytes of the message */
int qsign_put(struct qsign *q, const void *buf, size_t n)
{
	const char *b = buf;
	size_t i;
	int r;

	if (q->state == QS_PASS)
		return qw_body(q->w, buf, n);
	if (q->state == QS_BODY)
		return body(q, b, n);
	for (i = 0; i < n; i++) {
		if (q->bol && b[i] == '\n')
			break;		/* the empty line: the header ends */
		q->bol = b[i] == '\n';
	}
	if (q->head.len + i >= QSIGN_HEAD_MAX) {
		r = pass(q);
		return r < 0 ? r : qw_body(q->w, buf, n);
	}
	if (i == n)
		return str_catb(&q->head, b, n);
	if (str_catb(&q->head, b, i + 1) < 0)
		return -ENOMEM;
	r = decide(q, q->head.len - 1);
	if (r == 0 && i + 1 < n)
		r = qsign_put(q, b + i + 1, n - i - 1);
	return r;
}

/* qsign_end - the signatures into their room; 0 when there is nothing
 * to sign. The fields follow one another in the order of the keys */
int qsign_end(struct qsign *q)
{
	unsigned char bh[DKIM_HASH_LEN];
	struct str all = STR_INIT, one = STR_INIT;
	size_t i;
	int r = 0;

	if (q->state == QS_HEAD)	/* no empty line: all header */
		r = decide(q, q->head.len);
	if (r < 0 || q->state != QS_BODY)
		return r;
	r = dkim_body_final(&q->body, bh);
	for (i = 0; r == 0 && i < q->dom->n; i++) {
		r = dkim_sign_field(&q->sig, &q->dom->keys[i].k,
				    q->dom->keys[i].sel.s, bh, &one);
		if (r == 0)
			r = str_catb(&all, one.s, one.len);
	}
	/* the room was measured with placeholders of the same sizes */
	if (r == 0 && all.len != q->gap_len)
		r = -EIO;
	if (r == 0)
		r = qw_fill(q->w, q->gap_off, all.s, all.len);
	if (r == 0)
		q->nsigned = q->dom->n;
	q->state = QS_PASS;
	str_free(&all);
	str_free(&one);
	return r;
}

/* qsign_free - release what Q holds (the cached keys stay) */
void qsign_free(struct qsign *q)
{
	str_free(&q->head);
	dkim_sign_free(&q->sig);
	dkim_body_free(&q->body);
}
