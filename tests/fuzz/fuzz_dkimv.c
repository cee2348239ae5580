/*
 * fuzz_dkimv - libFuzzer target for the DKIM verifier's parsers
 * (lib/dkimv.c) and the Authentication-Results filter (lib/authres.c).
 *
 * The first byte chooses a piece size (1 to 256); the rest is a message,
 * and also a tag list and a key record. Checked against small models:
 * the verifier fed whole and in pieces finds the same signatures with the
 * same header hashes and verdicts, never more than DKIMV_SIGS_MAX, and a
 * signature it kept names a d= and s= that are DNS names; every tag lies
 * inside its input; the filter's output is the same whole and in pieces,
 * no longer than its input, and holds no header field that claims the id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "dkimv.h"
#include "dns.h"

#define ME "mx.example.test"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* verify - P through a verifier STEP bytes at a time, up to the verdicts
 * that need no key (and one key record: P itself) */
static void verify(const char *p, size_t n, size_t step, struct dkimv *v)
{
	size_t i;

	dkimv_start(v);
	v->now = 1000000000;
	for (i = 0; i < n; i += step)
		if (dkimv_put(v, p + i, n - i < step ? n - i : step) < 0)
			abort();
	if (dkimv_end(v) < 0)
		abort();
	for (i = 0; i < v->nsig; i++)
		dkimv_check(&v->sig[i], p, n, 0);
}

/* check_verify - whole and in pieces agree; kept names are names */
static void check_verify(const char *p, size_t n, size_t step)
{
	struct dkimv a, b;
	size_t i;

	verify(p, n, n ? n : 1, &a);
	verify(p, n, step, &b);
	if (a.nsig != b.nsig || a.nsig > DKIMV_SIGS_MAX || a.toobig != b.toobig)
		abort();
	for (i = 0; i < a.nsig; i++) {
		if (a.sig[i].res != b.sig[i].res ||
		    memcmp(a.sig[i].hh, b.sig[i].hh, DKIM_HASH_LEN))
			abort();
		if (a.sig[i].sig.d.s && !dns_name_ok(a.sig[i].sig.d.s))
			abort();
	}
	dkimv_free(&a);
	dkimv_free(&b);
}

/* check_tags - every tag inside the input, a bounded count */
static void check_tags(const char *p, size_t n)
{
	struct dkimv_tag t[DKIMV_TAGS_MAX];
	struct dkimv_key k;
	const char *why;
	size_t i, nt = 0;

	if (dkimv_tags(p, n, t, &nt) == 0) {
		if (nt > DKIMV_TAGS_MAX)
			abort();
		for (i = 0; i < nt; i++)
			if (t[i].off > n || t[i].len > n - t[i].off ||
			    !t[i].name[0])
				abort();
	}
	if (dkimv_key_parse(&k, p, n, &why) == 0 && k.type != DKIM_RSA &&
	    k.type != DKIM_ED25519)
		abort();
	dkimv_key_free(&k);
}

/* filter - P through the A-R filter STEP bytes at a time */
static void filter(const char *p, size_t n, size_t step, struct str *out)
{
	struct authres_filter f;
	size_t i;

	authres_filter_init(&f, ME);
	for (i = 0; i < n; i += step)
		if (authres_filter_put(&f, p + i, n - i < step ? n - i : step,
				       out) < 0)
			abort();
	if (authres_filter_end(&f, out) < 0)
		abort();
	authres_filter_free(&f);
}

/* check_filter - the same output whole and in pieces, none claiming ME
 * among the fields of its header */
static void check_filter(const char *p, size_t n, size_t step)
{
	struct str a = STR_INIT, b = STR_INIT;
	size_t pos = 0, flen;
	const char *f;

	filter(p, n, n ? n : 1, &a);
	filter(p, n, step, &b);
	if (a.len != b.len || a.len > n || (a.len && memcmp(a.s, b.s, a.len)))
		abort();
	while (a.len && dkim_hdr_next(a.s, a.len, &pos, &f, &flen) == 1)
		if (flen <= AUTHRES_FIELD_MAX && authres_claims(f, flen, ME))
			abort();
	str_free(&a);
	str_free(&b);
}

/* LLVMFuzzerTestOneInput - one input, the checks above */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n;

	if (size < 1)
		return 0;
	n = size - 1;
	check_verify(p, n, (size_t)data[0] + 1);
	check_tags(p, n);
	check_filter(p, n, (size_t)data[0] + 1);
	return 0;
}
