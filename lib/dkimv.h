/*
 * dkimv - DKIM (RFC 6376) verification of a message as it streams, with
 * RFC 8301's and RFC 8463's algorithm rules; the canonicalization and
 * body hashing are lib/dkim's, shared with the signer.
 *
 *   dkimv_start(&v)          an empty verifier
 *   dkimv_put(&v, buf, n)    message bytes, LF line ends, in any pieces
 *   dkimv_finish(&v, dns, deadline) the key lookups (in parallel,
 *                            lib/dns's dns_batch, nothing waited for past
 *                            DEADLINE, lib/clock's now_ms) and the verdicts
 *   v.sig[0 .. v.nsig-1].res  one verdict a signature checked
 *   dkimv_free(&v)
 *
 * The header is kept (at most DKIMV_HEAD_MAX bytes: the queue's header
 * limit) until its end. Then each DKIM-Signature field, up to
 * DKIMV_SIGS_MAX of them from the top, is parsed, its header hash made
 * and the header dropped; the body then only goes through one body hash
 * a signature (its canonicalization and l=), so memory does not grow
 * with the message. Signatures past the bound are not checked and get no
 * verdict: a sender gains nothing from them (DMARC needs one pass), and
 * checking fifty would cost fifty lookups.
 *
 * Verdicts (RFC 8601 2.7.1): DKIMV_PASS; DKIMV_FAIL (the body hash or the
 * signature does not match, a=rsa-sha1 or an RSA key under 1024 bits
 * (RFC 8301), a revoked key (p= empty), x= passed); DKIMV_PERMERROR (a
 * signature or key record that is malformed or unusable, a key that does
 * not exist: NXDOMAIN or no TXT record, RFC 6376 6.1.2); DKIMV_TEMPERROR
 * (the key lookup timed out, passed the deadline or got SERVFAIL: never a
 * reason to refuse mail).
 * l= is honoured: the verdict covers the first l= bytes of the canonical
 * body, as RFC 6376 says; the A-R header shows nothing more, so a reader
 * that cares must look at the signature (docs/authentication.md).
 *
 * The From: domain is taken from the header on the way (v.from, for
 * DMARC: the verifier is the one place that keeps the header).
 *
 * The parsers are exposed for tests and the fuzz target:
 *   dkimv_tags()      a tag=value list (3.2): tags and value spans, at
 *                     most DKIMV_TAGS_MAX; a repeated tag is -EINVAL
 *   dkimv_sig_parse() one DKIM-Signature field
 *   dkimv_key_parse() one key record (3.6.1)
 *   dkimv_check()     one signature's verdict given its key record text
 *                     and the lookup's result code (lib/dns.h)
 */
#ifndef FACTEUR_DKIMV_H
#define FACTEUR_DKIMV_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dkim.h"
#include "str.h"

#define DKIMV_SIGS_MAX 5
#define DKIMV_TAGS_MAX 64
#define DKIMV_HNAMES_MAX 100	/* h= names at most; real ones have < 40 */
#define DKIMV_HEAD_MAX (1024 * 1024)

enum dkimv_res {
	DKIMV_NONE, DKIMV_PASS, DKIMV_FAIL, DKIMV_NEUTRAL, DKIMV_TEMPERROR,
	DKIMV_PERMERROR
};

struct dkimv_tag {
	char name[16];		/* longer names are kept cut: unknown anyway */
	size_t off, len;	/* the value, FWS around it trimmed */
};

struct dkimv_sig {
	int type;		/* DKIM_RSA, DKIM_ED25519 */
	int sha1;		/* a=rsa-sha1: fails (RFC 8301) */
	int hsimple, bsimple;
	int has_l, has_x;
	uint64_t l, x, t;
	struct str d, s, i, h, bh, b;	/* bh, b decoded */
	size_t b_off, b_len;	/* b='s value in the field, to empty */
};

struct dkimv_key {
	int type;
	int strict;		/* t=s: i= must be d= itself */
	struct str p;		/* decoded; empty: revoked */
};

struct dkimv_one {
	struct dkimv_sig sig;
	struct dkim_body body;
	unsigned char hh[DKIM_HASH_LEN];	/* the header hash */
	int res;
	const char *why;	/* for reason= in the A-R header */
};

struct dkimv {
	int state;
	int bol;
	struct str head;
	size_t nsig;
	struct dkimv_one sig[DKIMV_SIGS_MAX];
	int toobig;		/* the header passed DKIMV_HEAD_MAX */
	/* the header's one From: domain, folded, for DMARC; from_r: 0, or
	 * qsign_from_domain's error (-EINVAL: no From:, two, or not one
	 * address), -E2BIG for a header too large */
	struct str from;
	int from_r;
	time_t now;		/* for x=; dkimv_start sets it, tests may too */
};

struct dns;

int dkimv_tags(const char *v, size_t n, struct dkimv_tag *t, size_t *n_r);
void dkimv_sig_init(struct dkimv_sig *s);
int dkimv_sig_parse(struct dkimv_sig *s, const char *f, size_t n, time_t now,
		    const char **why_r);
void dkimv_sig_free(struct dkimv_sig *s);
int dkimv_key_parse(struct dkimv_key *k, const char *txt, size_t n,
		    const char **why_r);
void dkimv_key_free(struct dkimv_key *k);

void dkimv_start(struct dkimv *v);
int dkimv_put(struct dkimv *v, const void *buf, size_t n);
int dkimv_end(struct dkimv *v);
void dkimv_check(struct dkimv_one *o, const char *txt, size_t n, int dnsr);
int dkimv_finish(struct dkimv *v, struct dns *dns, int64_t deadline_ms);
void dkimv_free(struct dkimv *v);
/* dkimv_in_header - is V still reading the header (its signatures not
 * all known yet)? */
int dkimv_in_header(const struct dkimv *v);
const char *dkimv_res_name(int res);

#endif
