/*
 * dkim - DKIM (RFC 6376) canonicalization, hashing and signing, with
 * OpenSSL's EVP interface; keys and the DNS record a domain publishes.
 *
 * Facteur signs with relaxed/relaxed; the verifier (lib/dkimv.h) reuses
 * the same functions, with simple body canonicalization too. Input is
 * a message as the queue keeps it: LF line ends (a CR just before an LF
 * is taken as part of the line end, so CR LF input gives the same result),
 * each LF counting as the CR LF of the wire.
 *
 * Header:
 *   dkim_hdr_next()   the next field of a header block: 1 and the field
 *                     (its name and value with continuation lines, and
 *                     the final LF), 0 at the end, -EINVAL for a line
 *                     that is neither a field nor a continuation.
 *   dkim_canon_header() one field, relaxed (RFC 6376 3.4.2): lower-case
 *                     name, unfolded, white space runs made one SP, none
 *                     around the colon or at the end, then CR LF.
 * Body:
 *   dkim_body_*()     relaxed body canonicalization (3.4.4) streamed into
 *                     SHA-256, in pieces of any size: trailing white
 *                     space of each line dropped, runs made one SP, empty
 *                     lines at the end dropped (held back meanwhile, as a
 *                     count, so memory does not grow).
 *   dkim_body_init_v() the same for a verifier: simple (3.4.3: lines as
 *                     they are, empty lines at the end dropped, an empty
 *                     body one CR LF) or relaxed, and at most l= bytes.
 * Signing:
 *   dkim_sign_header() reads a header block once: the fields signed (h=,
 *                     bottom-up for repeated names; From: and the present
 *                     identity fields listed once more than they occur, so
 *                     that none can be added) and their canonical form.
 *   dkim_sign_field() the DKIM-Signature field for one key, LF line ends,
 *                     folded under 80 columns: v=1; a=; c=relaxed/relaxed;
 *                     d=; s=; t=; h=; bh=; b=. Given bh == NULL it is the
 *                     same text with placeholders: its length is exactly
 *                     that of the real one (a key's signature and a
 *                     SHA-256 hash have fixed sizes), which lets the queue
 *                     writer leave the room before the body is written.
 *   dkim_sign_hash() signs the SHA-256 hash of the header data:
 *   rsa-sha256 is PKCS#1 v1.5 over it; ed25519-sha256 (RFC 8463) is
 *   PureEdDSA over that same 32-byte hash.
 * Keys:
 *   dkim_keygen()     a new key: PKCS#8 PEM and the p= value.
 *   dkim_key_load()   a PEM file of the mail user (0600), its type checked.
 *   dkim_txt()        "v=DKIM1; k=TYPE; p=..." and dkim_txt_zone() the
 *                     zone-file line, split in strings of at most 255 bytes.
 *   dkim_key_path()   where a key lives: ROOT/control/dkim/KEY/SEL.pem,
 *                     KEY the domain's file key (lib/acct.h).
 *   dkim_selector_ok() a selector: 1 to 63 bytes of a-z 0-9 '-', not
 *                     starting or ending with '-' (one DNS label).
 *
 * Functions return 0 (or 1 where said) or a negative errno code: -ENOMEM,
 * -EINVAL (bad input), -EIO (OpenSSL refused), -errno of the system.
 */
#ifndef FACTEUR_DKIM_H
#define FACTEUR_DKIM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "str.h"

#define DKIM_RSA 1
#define DKIM_ED25519 2
#define DKIM_RSA_MIN 2048
#define DKIM_RSA_MAX 4096
#define DKIM_RSA_DEFAULT 2048
#define DKIM_KEYS_MAX 8		/* keys signing for one domain at most */
#define DKIM_SELECTOR_MAX 63
#define DKIM_HASH_LEN 32

struct evp_md_ctx_st;
struct evp_pkey_st;
struct evp_md_st;

struct dkim_body {
	struct evp_md_ctx_st *md;
	uint64_t blank;		/* empty lines held back */
	int wsp;		/* white space pending inside the line */
	int any;		/* the current line has content */
	int cr;			/* a CR pending (end of line or content) */
	int simple;		/* simple canonicalization (3.4.3), else relaxed */
	int nonempty;		/* a canonical byte was made */
	uint64_t left;		/* canonical bytes still hashed (l=) */
	size_t olen;
	unsigned char out[4096];	/* canonical bytes not yet hashed */
};

struct dkim_key {
	int type;
	struct evp_pkey_st *pkey;
	size_t siglen;		/* bytes of one signature */
};

struct dkim_sign {
	struct str names;	/* the h= value */
	struct str canon;	/* the signed fields, canonical, in h= order */
	struct str domain;	/* d= */
	time_t t;
};

int dkim_hdr_next(const char *h, size_t n, size_t *pos, const char **f_r,
		  size_t *flen_r);
int dkim_canon_header(struct str *out, const char *f, size_t n);

/* dkim_sha256 - SHA-256, fetched once per process */
const struct evp_md_st *dkim_sha256(void);
int dkim_body_init(struct dkim_body *b);
int dkim_body_init_v(struct dkim_body *b, int simple, uint64_t limit);
int dkim_body_feed(struct dkim_body *b, const void *buf, size_t n);
int dkim_body_final(struct dkim_body *b, unsigned char out[DKIM_HASH_LEN]);
void dkim_body_free(struct dkim_body *b);

void dkim_sign_init(struct dkim_sign *s);
int dkim_sign_header(struct dkim_sign *s, const char *hdr, size_t n,
		     const char *domain, time_t t);
int dkim_sign_hash(const struct dkim_key *k, const unsigned char *h,
		   struct str *sig);
int dkim_sign_field(const struct dkim_sign *s, const struct dkim_key *k,
		    const char *selector, const unsigned char *bh,
		    struct str *out);
void dkim_sign_free(struct dkim_sign *s);

const char *dkim_type_name(int type);
int dkim_type_parse(const char *name);
int dkim_keygen(int type, unsigned bits, struct str *pem_r, struct str *p_r);
int dkim_key_load(struct dkim_key *k, const char *path, int type);
int dkim_key_pub(const struct dkim_key *k, struct str *p_r);
void dkim_key_free(struct dkim_key *k);
int dkim_txt(struct str *out, int type, const char *p);
int dkim_txt_zone(struct str *out, const char *selector, const char *domain,
		  const char *txt);
int dkim_key_path(struct str *out, const char *root, const char *domain,
		  const char *selector);
int dkim_selector_ok(const char *s);

#endif
