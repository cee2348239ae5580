/*
 * fuzz_dkim - libFuzzer target for the DKIM parsers and canonicalizers
 * (lib/dkim.c) and the From: domain rule of the signer (lib/qsign.c).
 *
 * The first byte chooses a piece size (1 to 256); the rest is a message.
 * Checked against small models: every field dkim_hdr_next() returns is
 * inside the input, starts where the last ended and has a colon; the
 * relaxed form of a field has no CR, LF, tab or two spaces in a row
 * before its final CR LF, no space around its colon and a lower-case
 * name; the body hash fed whole and in pieces is the same, and the same
 * as for the input with every LF made CR LF; dkim_sign_header() and
 * qsign_from_domain() agree on whether there is exactly one From:, and
 * a domain found is a valid, folded name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim.h"
#include "name.h"
#include "qsign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* body_hash - the relaxed body hash of P, fed STEP bytes at a time */
static void body_hash(const char *p, size_t n, size_t step,
		      unsigned char h[DKIM_HASH_LEN])
{
	struct dkim_body b;
	size_t i;

	if (dkim_body_init(&b) < 0)
		abort();
	for (i = 0; i < n; i += step)
		if (dkim_body_feed(&b, p + i, n - i < step ? n - i : step) < 0)
			abort();
	if (dkim_body_final(&b, h) < 0)
		abort();
	dkim_body_free(&b);
}

/* check_canon - the shape of one relaxed field */
static void check_canon(const struct str *c)
{
	size_t i, colon;

	if (c->len < 3 || memcmp(c->s + c->len - 2, "\r\n", 2))
		abort();
	colon = (size_t)((char *)memchr(c->s, ':', c->len) - c->s);
	for (i = 0; i + 2 < c->len; i++) {
		if (c->s[i] == '\r' || c->s[i] == '\n' || c->s[i] == '\t' ||
		    (c->s[i] == ' ' && c->s[i + 1] == ' '))
			abort();
		if (i < colon && c->s[i] >= 'A' && c->s[i] <= 'Z')
			abort();
	}
	if ((colon > 0 && c->s[colon - 1] == ' ') || c->s[colon + 1] == ' ' ||
	    (c->len > 3 && c->s[c->len - 3] == ' '))
		abort();
}

/* check_fields - the header's fields and their relaxed forms */
static void check_fields(const char *p, size_t n)
{
	struct str c = STR_INIT;
	size_t pos = 0, last = 0, flen;
	const char *f;
	int r;

	while ((r = dkim_hdr_next(p, n, &pos, &f, &flen)) == 1) {
		if (f != p + last || flen == 0 || pos != last + flen ||
		    pos > n || !memchr(f, ':', flen))
			abort();
		last = pos;
		str_trunc(&c, 0);
		if (dkim_canon_header(&c, f, flen) == 0)
			check_canon(&c);
	}
	str_free(&c);
}

/* check_body - pieces and CR LF give the hash of the whole with LF */
static void check_body(const char *p, size_t n, size_t step)
{
	unsigned char a[DKIM_HASH_LEN], b[DKIM_HASH_LEN], c[DKIM_HASH_LEN];
	struct str crlf = STR_INIT;
	size_t i;

	for (i = 0; i < n; i++)
		if ((p[i] == '\n' && str_catc(&crlf, '\r') < 0) ||
		    str_catc(&crlf, p[i]) < 0)
			abort();
	body_hash(p, n, n ? n : 1, a);
	body_hash(p, n, step, b);
	if (memcmp(a, b, sizeof a))
		abort();
	/* a CR already before an LF would make CR CR LF: not the same */
	if (!memchr(p, '\r', n)) {
		body_hash(crlf.s ? crlf.s : "", crlf.len, step, c);
		if (memcmp(a, c, sizeof a))
			abort();
	}
	str_free(&crlf);
}

/* LLVMFuzzerTestOneInput - one input, the checks above */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	struct str d = STR_INIT, again = STR_INIT;
	struct dkim_sign s;
	const char *why;
	size_t n, step;
	int rf, rs;

	if (size < 1)
		return 0;
	step = (size_t)data[0] + 1;
	n = size - 1;
	check_fields(p, n);
	check_body(p, n, step);
	dkim_sign_init(&s);
	rs = dkim_sign_header(&s, p, n, "example.test", 1);
	rf = qsign_from_domain(p, n, &d);
	/* a header signed has one From:, which the signer lists twice */
	if (rs == 0 && strncmp(s.names.s, "from:from", 9))
		abort();
	if (rf == 0 && (name_domain(d.s, d.len, &again, &why) < 0 ||
			strcmp(again.s, d.s)))
		abort();
	dkim_sign_free(&s);
	str_free(&d);
	str_free(&again);
	return 0;
}
