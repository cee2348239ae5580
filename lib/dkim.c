/*
 * dkim - DKIM canonicalization, hashing, signing and keys (dkim.h).
 *
 * @UNSAFE: the body canonicalizer indexes its staging buffer by hand.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "acct.h"
#include "dkim.h"
#include "fsx.h"
#include "sasl.h"

#define IS_WSP(c) ((c) == ' ' || (c) == '\t')
#define FOLD_AT 76		/* columns of a folded DKIM-Signature line */
#define SAME_NAME_MAX 50	/* fields of one name signed at most */

/* dkim_hdr_next - the field at *POS of the header H (see dkim.h) */
int dkim_hdr_next(const char *h, size_t n, size_t *pos, const char **f_r,
		  size_t *flen_r)
{
	size_t p = *pos, q = p, r;
	const char *lf;

	if (p >= n || h[p] == '\n' || (h[p] == '\r' && p + 1 < n &&
				       h[p + 1] == '\n'))
		return 0;
	while (q < n && h[q] != ':' && (unsigned char)h[q] > ' ' &&
	       (unsigned char)h[q] < 127)
		q++;
	/* RFC 5322's obsolete syntax allows white space before the colon */
	for (r = q; r < n && IS_WSP(h[r]); r++)
		;
	if (q == p || r >= n || h[r] != ':')
		return -EINVAL;
	q = r;
	for (;;) {
		lf = memchr(h + q, '\n', n - q);
		if (!lf) {
			q = n;
			break;
		}
		q = (size_t)(lf - h) + 1;
		if (q >= n || !IS_WSP(h[q]))
			break;
	}
	*f_r = h + p;
	*flen_r = q - p;
	*pos = q;
	return 1;
}

/* dkim_canon_header - one field, relaxed (RFC 6376 3.4.2), to OUT */
int dkim_canon_header(struct str *out, const char *f, size_t n)
{
	const char *colon = memchr(f, ':', n);
	size_t i, nlen;
	int sp = 0, started = 0, r = 0;

	if (!colon || colon == f)
		return -EINVAL;
	for (nlen = (size_t)(colon - f); nlen && IS_WSP(f[nlen - 1]); nlen--)
		;
	for (i = 0; i < nlen && r == 0; i++) {
		char c = f[i];

		r = str_catc(out, c >= 'A' && c <= 'Z' ? (char)(c + 32) : c);
	}
	if (r == 0)
		r = str_catc(out, ':');
	for (i = (size_t)(colon - f) + 1; i < n && r == 0; i++) {
		char c = f[i];

		if (c == '\r' || c == '\n')
			continue;		/* unfolding */
		if (IS_WSP(c)) {
			sp = started;
			continue;
		}
		if (sp)
			r = str_catc(out, ' ');
		sp = 0;
		started = 1;
		if (r == 0)
			r = str_catc(out, c);
	}
	return r ? r : str_catb(out, "\r\n", 2);
}

/* dkim_sha256 - SHA-256 fetched once for the process: OpenSSL 3 looks the
 * algorithm up by name at every EVP_DigestInit_ex(EVP_sha256()) (a
 * lock, a hash table, string compares), which a message pays several
 * times over (body hash, header hash, signature) */
const EVP_MD *dkim_sha256(void)
{
	static EVP_MD *md;

	if (!md)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	return md ? md : EVP_sha256();
}

/* dkim_body_init - an empty relaxed body hash */
int dkim_body_init(struct dkim_body *b)
{
	return dkim_body_init_v(b, 0, UINT64_MAX);
}

/* dkim_body_init_v - an empty body hash: SIMPLE or relaxed, of at most
 * LIMIT canonical bytes (a signature's l=; UINT64_MAX: all) */
int dkim_body_init_v(struct dkim_body *b, int simple, uint64_t limit)
{
	memset(b, 0, sizeof *b);
	b->simple = simple;
	b->left = limit;
	b->md = EVP_MD_CTX_new();
	if (!b->md)
		return -ENOMEM;
	if (EVP_DigestInit_ex(b->md, dkim_sha256(), NULL) != 1) {
		dkim_body_free(b);
		return -EIO;
	}
	return 0;
}

/* flush - the staged canonical bytes into the hash */
static int flush(struct dkim_body *b)
{
	int ok = !b->olen || EVP_DigestUpdate(b->md, b->out, b->olen) == 1;

	b->olen = 0;
	return ok ? 0 : -EIO;
}

/* put - one canonical byte; past the l= limit it is dropped */
static int put(struct dkim_body *b, unsigned char c)
{
	b->nonempty = 1;
	if (b->left == 0)
		return 0;
	if (b->left != UINT64_MAX)
		b->left--;
	if (b->olen == sizeof b->out && flush(b) < 0)
		return -EIO;
	b->out[b->olen++] = c;
	return 0;
}

/* content - a byte of a line's content, after what was held back */
static int content(struct dkim_body *b, unsigned char c)
{
	int r = 0;

	/* empty lines count only when content follows them */
	for (; b->blank && r == 0; b->blank--)
		r = put(b, '\r') ? -EIO : put(b, '\n');
	if (r == 0 && b->wsp)
		r = put(b, ' ');
	b->wsp = 0;
	b->any = 1;
	return r ? r : put(b, c);
}

/* line_end - a line ended: white space before it is dropped */
static int line_end(struct dkim_body *b)
{
	b->wsp = 0;
	if (!b->any) {
		b->blank++;
		return 0;
	}
	b->any = 0;
	return put(b, '\r') ? -EIO : put(b, '\n');
}

#define PLAIN(c) ((c) != '\r' && (c) != '\n' && !IS_WSP(c))

/* plain_run - after a first content byte, the rest of a run of bytes
 * that need no thought straight into the staging buffer (most of a body
 * is such runs); the index past the run */
static size_t plain_run(struct dkim_body *b, const unsigned char *p,
			size_t i, size_t n)
{
	if (b->left != UINT64_MAX)
		return i;	/* a limit: put() counts every byte */
	while (i < n && PLAIN(p[i])) {
		size_t room = sizeof b->out - b->olen, k = 0;

		if (!room) {
			if (flush(b) < 0)
				return (size_t)-1;
			continue;
		}
		while (k < room && i + k < n && PLAIN(p[i + k]))
			k++;
		memcpy(b->out + b->olen, p + i, k);
		b->olen += k;
		i += k;
	}
	return i;
}

/* dkim_body_feed - N more bytes of the body */
int dkim_body_feed(struct dkim_body *b, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	size_t i;
	int r = 0;

	for (i = 0; i < n && r == 0; i++) {
		unsigned char c = p[i];

		if (!b->cr && PLAIN(c)) {
			size_t end = 0;

			r = content(b, c);
			if (r == 0 && (end = plain_run(b, p, i + 1, n)) ==
			    (size_t)-1)
				r = -EIO;
			if (r == 0)
				i = end - 1;
			continue;
		}
		if (b->cr) {
			b->cr = 0;
			if (c == '\n') {
				r = line_end(b);
				continue;
			}
			r = content(b, '\r');	/* a CR alone is content */
			if (r < 0)
				break;
		}
		if (c == '\r')
			b->cr = 1;
		else if (c == '\n')
			r = line_end(b);
		else if (IS_WSP(c) && !b->simple)
			b->wsp = 1;
		else
			r = content(b, c);
	}
	return r;
}

/* dkim_body_final - the hash; a last line without its end gets one,
 * empty lines at the end are dropped (an empty body hashes nothing) */
int dkim_body_final(struct dkim_body *b, unsigned char out[DKIM_HASH_LEN])
{
	unsigned int n = 0;
	int r = b->cr ? content(b, '\r') : 0;

	b->cr = 0;
	if (r == 0 && b->any)
		r = line_end(b);
	/* simple: an empty body is one CR LF (RFC 6376 3.4.3) */
	if (r == 0 && b->simple && !b->nonempty)
		r = put(b, '\r') ? -EIO : put(b, '\n');
	if (r == 0)
		r = flush(b);
	if (r == 0 && (EVP_DigestFinal_ex(b->md, out, &n) != 1 ||
		       n != DKIM_HASH_LEN))
		r = -EIO;
	return r;
}

/* dkim_body_free - release the hash */
void dkim_body_free(struct dkim_body *b)
{
	EVP_MD_CTX_free(b->md);
	b->md = NULL;
}

/* the fields signed, in h= order; OVER: listed once more than present
 * (From: always), so that a field of that name cannot be added */
static const struct {
	const char *name;
	int over;
} sign_fields[] = {
	{"from", 1}, {"sender", 0}, {"reply-to", 1}, {"subject", 1},
	{"date", 1}, {"message-id", 1}, {"to", 1}, {"cc", 1},
	{"in-reply-to", 1}, {"references", 1}, {"mime-version", 0},
	{"content-type", 0}, {"content-transfer-encoding", 0},
	{"content-id", 0}, {"content-description", 0},
	{"resent-date", 0}, {"resent-from", 0}, {"resent-sender", 0},
	{"resent-to", 0}, {"resent-cc", 0}, {"resent-message-id", 0},
	{"list-id", 0}, {"list-help", 0}, {"list-unsubscribe", 0},
	{"list-unsubscribe-post", 0}, {"list-subscribe", 0},
	{"list-post", 0}, {"list-owner", 0}, {"list-archive", 0},
};

/* field_is - does field F carry the name NAME (any case) */
static int field_is(const char *f, size_t n, const char *name)
{
	size_t k = strlen(name);

	return n > k && !strncasecmp(f, name, k) &&
	       (f[k] == ':' || IS_WSP(f[k]));
}

/* dkim_sign_init - an empty signing state */
void dkim_sign_init(struct dkim_sign *s)
{
	memset(s, 0, sizeof *s);
}

/* sign_one_name - the fields named NAME, bottom-up, into the h= list and
 * the canonical data; OFFS is scratch for their offsets */
static int sign_one_name(struct dkim_sign *s, const char *hdr, size_t n,
			 size_t idx, struct str *offs)
{
	const char *f;
	size_t pos = 0, flen, cnt = 0, k, o[2];
	int r;

	str_trunc(offs, 0);
	while ((r = dkim_hdr_next(hdr, n, &pos, &f, &flen)) == 1) {
		if (!field_is(f, flen, sign_fields[idx].name))
			continue;
		o[0] = (size_t)(f - hdr);
		o[1] = flen;
		if (str_catb(offs, o, sizeof o) < 0)
			return -ENOMEM;
		cnt++;
	}
	if (r < 0)
		return r;
	if (idx == 0 && cnt != 1)
		return -EINVAL;	/* no From:, or two: DMARC refuses it */
	for (k = 0; k < cnt && k < SAME_NAME_MAX; k++) {
		memcpy(o, offs->s + (cnt - 1 - k) * sizeof o, sizeof o);
		if ((s->names.len && str_catc(&s->names, ':') < 0) ||
		    str_cats(&s->names, sign_fields[idx].name) < 0)
			return -ENOMEM;
		r = dkim_canon_header(&s->canon, hdr + o[0], o[1]);
		if (r < 0)
			return r;
	}
	if (cnt && cnt <= SAME_NAME_MAX && sign_fields[idx].over &&
	    (str_catc(&s->names, ':') < 0 ||
	     str_cats(&s->names, sign_fields[idx].name) < 0))
		return -ENOMEM;
	return 0;
}

/* dkim_sign_header - what of HDR (fields only, LF ends) is signed */
int dkim_sign_header(struct dkim_sign *s, const char *hdr, size_t n,
		     const char *domain, time_t t)
{
	struct str offs = STR_INIT;
	size_t i, pos = 0, flen;
	const char *f;
	int r;

	str_trunc(&s->names, 0);
	str_trunc(&s->canon, 0);
	s->t = t;
	while ((r = dkim_hdr_next(hdr, n, &pos, &f, &flen)) == 1)
		;
	if (r < 0)
		return r;	/* a header we would sign wrongly */
	r = str_copys(&s->domain, domain);
	for (i = 0; r == 0 && i < sizeof sign_fields / sizeof *sign_fields;
	     i++)
		r = sign_one_name(s, hdr, n, i, &offs);
	str_free(&offs);
	return r;
}

/* dkim_sign_free - release a signing state */
void dkim_sign_free(struct dkim_sign *s)
{
	str_free(&s->names);
	str_free(&s->canon);
	str_free(&s->domain);
}

/* cat_folded - the h= list, folded at colons before FOLD_AT columns */
static int cat_folded(struct str *out, const char *list, size_t col)
{
	const char *p = list;
	int r = 0;

	while (*p && r == 0) {
		const char *e = strchr(p, ':');
		size_t n = e ? (size_t)(e - p) + 1 : strlen(p);

		if (col + n > FOLD_AT && col > 8) {
			r = str_cats(out, "\n\t");
			col = 8;
		}
		if (r == 0)
			r = str_catb(out, p, n);
		col += n;
		p += n;
	}
	return r;
}

/* cat_tag - one "tag=value;" of the field, on a new line past FOLD_AT
 * columns (*COL; a line starts at 8, after its tab): the folding depends
 * on lengths only, as the placeholder needs */
static int cat_tag(struct str *out, size_t *col, const char *tag,
		   const char *val)
{
	size_t n = strlen(tag) + strlen(val) + 2;
	int r = 0;

	if (*col > 8 && *col + 1 + n > FOLD_AT) {
		r = str_cats(out, "\n\t");
		*col = 8;
	} else if (*col > 8) {
		r = str_catc(out, ' ');
		(*col)++;
	}
	*col += n;
	return r ? r : str_catf(out, "%s=%s;", tag, val);
}

/* sig_head - the field up to "b=", the part the signature covers */
static int sig_head(struct str *out, const struct dkim_sign *s, int type,
		    const char *selector, const char *bh64)
{
	char t[24];
	size_t col = 8;
	int r = str_catf(out, "DKIM-Signature: v=1; a=%s-sha256; "
			 "c=relaxed/relaxed;\n\t", dkim_type_name(type));

	snprintf(t, sizeof t, "%lld", (long long)s->t);
	if (r == 0)
		r = cat_tag(out, &col, "d", s->domain.s);
	if (r == 0)
		r = cat_tag(out, &col, "s", selector);
	if (r == 0)
		r = cat_tag(out, &col, "t", t);
	if (r == 0)
		r = str_cats(out, "\n\th=");
	if (r == 0)
		r = cat_folded(out, s->names.s ? s->names.s : "", 10);
	return r ? r : str_catf(out, ";\n\tbh=%s;\n\tb=", bh64);
}

/* header_hash - SHA-256 of the signed fields and of our own field with
 * an empty b=, canonical, without its final CR LF (RFC 6376 3.7) */
static int header_hash(const struct dkim_sign *s, const struct str *head,
		       unsigned char h[DKIM_HASH_LEN])
{
	struct str c = STR_INIT;
	unsigned int n = 0;
	int r = dkim_canon_header(&c, head->s, head->len);

	if (r == 0) {
		EVP_MD_CTX *m = EVP_MD_CTX_new();

		if (!m || EVP_DigestInit_ex(m, dkim_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(m, s->canon.s ? s->canon.s : "",
				     s->canon.len) != 1 ||
		    EVP_DigestUpdate(m, c.s, c.len - 2) != 1 ||
		    EVP_DigestFinal_ex(m, h, &n) != 1 || n != DKIM_HASH_LEN)
			r = -EIO;
		EVP_MD_CTX_free(m);
	}
	str_free(&c);
	return r;
}

/* dkim_sign_hash - the signature of the 32-byte hash H: PKCS#1 v1.5 with
 * the SHA-256 DigestInfo for RSA, PureEdDSA over H for Ed25519 (RFC 8463) */
int dkim_sign_hash(const struct dkim_key *k, const unsigned char *h,
		   struct str *sig)
{
	size_t len = k->siglen;
	int ok;

	if (str_ready(sig, len) < 0)
		return -ENOMEM;
	if (k->type == DKIM_RSA) {
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k->pkey, NULL);

		ok = c && EVP_PKEY_sign_init(c) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(c, dkim_sha256()) == 1 &&
		     EVP_PKEY_sign(c, (unsigned char *)sig->s, &len, h,
				   DKIM_HASH_LEN) == 1;
		EVP_PKEY_CTX_free(c);
	} else {
		EVP_MD_CTX *m = EVP_MD_CTX_new();

		ok = m && EVP_DigestSignInit(m, NULL, NULL, NULL, k->pkey) == 1
		     && EVP_DigestSign(m, (unsigned char *)sig->s, &len, h,
				       DKIM_HASH_LEN) == 1;
		EVP_MD_CTX_free(m);
	}
	if (!ok || len != k->siglen)
		return -EIO;
	sig->len = len;
	return 0;
}

/* placeholder - N base64 characters standing for a value to come */
static int placeholder(struct str *out, size_t bytes)
{
	size_t i, n = (bytes + 2) / 3 * 4;

	str_trunc(out, 0);
	for (i = 0; i < n; i++)
		if (str_catc(out, 'A') < 0)
			return -ENOMEM;
	return 0;
}

/* dkim_sign_field - the DKIM-Signature field of key K (see dkim.h) */
int dkim_sign_field(const struct dkim_sign *s, const struct dkim_key *k,
		    const char *selector, const unsigned char *bh,
		    struct str *out)
{
	struct str bh64 = STR_INIT, b64 = STR_INIT, sig = STR_INIT;
	unsigned char h[DKIM_HASH_LEN];
	size_t i;
	int r;

	str_trunc(out, 0);
	r = bh ? b64_encode(bh, DKIM_HASH_LEN, &bh64) :
	    placeholder(&bh64, DKIM_HASH_LEN);
	if (r == 0)
		r = sig_head(out, s, k->type, selector, bh64.s);
	if (r == 0 && bh) {
		r = header_hash(s, out, h);
		if (r == 0)
			r = dkim_sign_hash(k, h, &sig);
		if (r == 0)
			r = b64_encode(sig.s, sig.len, &b64);
	} else if (r == 0) {
		r = placeholder(&b64, k->siglen);
	}
	/* the value in lines of 72: white space in b= is ignored */
	for (i = 0; r == 0 && i < b64.len; i += 72)
		r = str_cats(out, "\n\t") ? -ENOMEM :
		    str_catb(out, b64.s + i, b64.len - i < 72 ? b64.len - i :
			     72);
	if (r == 0)
		r = str_catc(out, '\n');
	str_free(&bh64);
	str_free(&b64);
	str_free(&sig);
	return r;
}

/* dkim_type_name - "rsa" or "ed25519" */
const char *dkim_type_name(int type)
{
	return type == DKIM_ED25519 ? "ed25519" : "rsa";
}

/* dkim_type_parse - DKIM_RSA, DKIM_ED25519, or -EINVAL */
int dkim_type_parse(const char *name)
{
	if (!strcmp(name, "rsa"))
		return DKIM_RSA;
	if (!strcmp(name, "ed25519"))
		return DKIM_ED25519;
	return -EINVAL;
}

/* pub_value - the p= of a key: the SubjectPublicKeyInfo for RSA, the
 * 32 raw bytes for Ed25519 (RFC 8463 4.2), in base64 */
static int pub_value(EVP_PKEY *pk, int type, struct str *p_r)
{
	unsigned char raw[64], *der = NULL;
	size_t rlen = sizeof raw;
	int n, r;

	if (type == DKIM_ED25519) {
		if (EVP_PKEY_get_raw_public_key(pk, raw, &rlen) != 1)
			return -EIO;
		return b64_encode(raw, rlen, p_r);
	}
	n = i2d_PUBKEY(pk, &der);
	if (n <= 0)
		return -EIO;
	r = b64_encode(der, (size_t)n, p_r);
	OPENSSL_free(der);
	return r;
}

/* dkim_keygen - a new private key (PEM in PEM_R) and its p= value */
int dkim_keygen(int type, unsigned bits, struct str *pem_r, struct str *p_r)
{
	EVP_PKEY *pk;
	BIO *bio = NULL;
	char *data;
	long len;
	int r = 0;

	if (type == DKIM_RSA && (bits < DKIM_RSA_MIN || bits > DKIM_RSA_MAX))
		return -EINVAL;
	pk = type == DKIM_RSA ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
						   (size_t)bits) :
	     type == DKIM_ED25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519") :
	     NULL;
	if (!pk)
		return type == DKIM_RSA || type == DKIM_ED25519 ? -EIO :
		       -EINVAL;
	/* secure memory: the PEM text is cleansed when the BIO is freed */
	bio = BIO_new(BIO_s_secmem());
	if (!bio || PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL,
					     NULL) != 1)
		r = -EIO;
	if (r == 0) {
		len = BIO_get_mem_data(bio, &data);
		r = len > 0 ? str_copyb(pem_r, data, (size_t)len) : -EIO;
	}
	if (r == 0)
		r = pub_value(pk, type, p_r);
	BIO_free_all(bio);
	EVP_PKEY_free(pk);
	return r;
}

/* dkim_key_load - the private key at PATH, which must be of TYPE */
int dkim_key_load(struct dkim_key *k, const char *path, int type)
{
	struct str pem = STR_INIT;
	BIO *bio;
	int r = fsx_read_file(path, &pem, 65536), id;

	memset(k, 0, sizeof *k);
	if (r < 0)
		return r;
	bio = BIO_new_mem_buf(pem.s, (int)pem.len);
	k->pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	str_wipe(&pem);
	if (!k->pkey)
		return -EINVAL;
	id = EVP_PKEY_get_base_id(k->pkey);
	k->type = type;
	k->siglen = (size_t)EVP_PKEY_get_size(k->pkey);
	if (type == DKIM_RSA ? id != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(k->pkey) < DKIM_RSA_MIN ||
	    EVP_PKEY_get_bits(k->pkey) > DKIM_RSA_MAX :
	    id != EVP_PKEY_ED25519 || k->siglen != 64) {
		dkim_key_free(k);
		return -EINVAL;
	}
	return 0;
}

/* dkim_key_pub - the p= value of a loaded key */
int dkim_key_pub(const struct dkim_key *k, struct str *p_r)
{
	return pub_value(k->pkey, k->type, p_r);
}

/* dkim_key_free - release a loaded key */
void dkim_key_free(struct dkim_key *k)
{
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
}

/* dkim_txt - the TXT record's text */
int dkim_txt(struct str *out, int type, const char *p)
{
	str_trunc(out, 0);
	return str_catf(out, "v=DKIM1; k=%s; p=%s", dkim_type_name(type), p);
}

/* dkim_txt_zone - SEL._domainkey.DOMAIN. IN TXT "..." "...": a string of
 * a TXT record holds at most 255 bytes (RFC 1035 3.3.14); a receiver
 * joins them without a separator (RFC 6376 3.6.2.2) */
int dkim_txt_zone(struct str *out, const char *selector, const char *domain,
		  const char *txt)
{
	size_t i, n = strlen(txt);
	int r;

	str_trunc(out, 0);
	r = str_catf(out, "%s._domainkey.%s. IN TXT", selector, domain);
	for (i = 0; r == 0 && i < n; i += 255)
		r = str_cats(out, " \"") ? -ENOMEM :
		    str_catb(out, txt + i, n - i < 255 ? n - i : 255) ? -ENOMEM :
		    str_catc(out, '"');
	return r;
}

/* dkim_key_path - ROOT/control/dkim/KEY/SELECTOR.pem */
int dkim_key_path(struct str *out, const char *root, const char *domain,
		  const char *selector)
{
	struct str key = STR_INIT;
	int r = acct_file_key(&key, domain);

	str_trunc(out, 0);
	if (r == 0)
		r = str_catf(out, "%s/control/dkim/%s/%s.pem", root, key.s,
			     selector);
	str_free(&key);
	return r;
}

/* dkim_selector_ok - one DNS label of lower-case letters, digits, '-' */
int dkim_selector_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > DKIM_SELECTOR_MAX || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}
