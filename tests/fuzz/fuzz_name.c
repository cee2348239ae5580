/*
 * fuzz_name - libFuzzer target for name_domain(), name_local(), name_addr()
 * and name_ldh().
 *
 * Beyond the sanitizers (libFuzzer's buffer is exactly the input, so any
 * over-read is caught): an accepted name is the input folded to lower case
 * (a domain with a byte over 0x7f: its A-labels, lib/idna, folded), safe
 * as a path component, and accepted again unchanged; a refused one always
 * has a phrase for the user. name_ldh() accepts what name_domain() does
 * (of the A-labels), and its relaxed forms accept more, never less.
 * And lib/utf8, which idna decodes with: utf8_mask leaves the input's
 * length, '?' over each byte that starts no well-formed sequence and
 * over each sequence of a control byte, DEL, C1 control, line separator
 * or bidi control, and every other sequence as it was.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "idna.h"
#include "name.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*validator)(const char *, size_t, struct str *, const char **);

/* ascii - IN as name_domain reads it: its A-labels when it has a byte
 * over 0x7f (then *IN and *N point at OUT), else as it is; 0 or -EINVAL */
static int ascii(const char **in, size_t *n, struct str *out)
{
	size_t i;

	for (i = 0; i < *n && (unsigned char)(*in)[i] < 0x80; i++)
		;
	if (i == *n)
		return 0;
	if (idna_to_ascii(*in, *n, out) < 0)
		return -EINVAL;
	*in = out->s;
	*n = out->len;
	return 0;
}

/* check - run one validator on one input and assert its contract; IDN:
 * the validator reads U-labels as A-labels (name_domain) */
static void check(validator fn, const char *in, size_t n, int idn)
{
	struct str out = STR_INIT, again = STR_INIT, a = STR_INIT;
	const char *why = NULL;
	size_t i;

	if (fn(in, n, &out, &why) < 0) {
		if (!why || !*why)
			abort();
		return;
	}
	if (idn && ascii(&in, &n, &a) < 0)
		abort();	/* accepted what is not UTF-8 */
	if (out.len != n || out.s[n] != 0 || out.s[0] == '.' ||
	    memchr(out.s, '/', n))
		abort();
	for (i = 0; i < n; i++) {
		char c = in[i] >= 'A' && in[i] <= 'Z' ? (char)(in[i] + 32) : in[i];

		if (out.s[i] != c || (unsigned char)c <= ' ' ||
		    (unsigned char)c >= 0x7f)
			abort();
	}
	if (fn(out.s, out.len, &again, &why) < 0 || !str_eqs(&again, out.s))
		abort();
	str_free(&out);
	str_free(&again);
	str_free(&a);
}

/* check_ldh - name_ldh: each relaxation accepts all the strict rule does,
 * and name_domain accepts exactly what the strict rule does */
static void check_ldh(const char *in, size_t n)
{
	struct str out = STR_INIT, a = STR_INIT;
	const char *why = NULL;
	int dom = name_domain(in, n, &out, &why) == 0;
	const char *strict;

	if (ascii(&in, &n, &a) < 0) {
		if (dom)
			abort();
		goto out;
	}
	strict = name_ldh(in, n, 0);
	if ((strict == NULL) != dom ||
	    (!strict && (name_ldh(in, n, NAME_LDH_UNDERSCORE) ||
			 name_ldh(in, n, NAME_LDH_ANY_HYPHEN))) ||
	    (!name_ldh(in, n, NAME_LDH_UNDERSCORE | NAME_LDH_ANY_HYPHEN) &&
	     (n == 0 || n > NAME_DOMAIN_MAX || memchr(in, '/', n))))
		abort();
out:
	str_free(&out);
	str_free(&a);
}

/* masked - a code point utf8_mask must hide (the contract, above) */
static int masked(uint32_t c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 ||
	       c == 0x2029 || (c >= 0x202a && c <= 0x202e) ||
	       (c >= 0x2066 && c <= 0x2069);
}

/* check_mask - utf8_mask's contract: walking the input, a byte that
 * starts no well-formed sequence is '?', a sequence of a masked code
 * point is all '?', any other sequence is kept as it is; so the output
 * has the input's length and is well-formed UTF-8 */
static void check_mask(const char *in, size_t n)
{
	char *m = malloc(n ? n : 1);
	size_t i = 0, k;

	if (!m)
		abort();
	memcpy(m, in, n);
	utf8_mask(m, n);
	while (i < n) {
		uint32_t c = 0;
		int len = utf8_next((const unsigned char *)in + i, n - i, &c);

		if (len < 0) {
			if (m[i++] != '?')
				abort();
			continue;
		}
		for (k = 0; k < (size_t)len; k++)
			if (m[i + k] != (masked(c) ? '?' : in[i + k]))
				abort();
		i += (size_t)len;
	}
	if (!utf8_valid(m, n))
		abort();
	free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str z = STR_INIT, l = STR_INIT, d = STR_INIT;
	const char *why = NULL;

	check_mask((const char *)data, size);
	check(name_domain, (const char *)data, size, 1);
	check(name_local, (const char *)data, size, 0);
	check_ldh((const char *)data, size);
	if (!memchr(data, 0, size) && str_copyb(&z, data, size) == 0) {
		if (name_addr(z.s, &l, &d, &why) == 0) {
			const char *dom = z.s + l.len + 1;
			size_t dn = size - l.len - 1, i;
			int idn = 0;

			for (i = 0; i < dn; i++)
				idn |= (unsigned char)dom[i] >= 0x80;
			/* the domain is the input's, or its A-labels */
			if (data[l.len] != '@' || (!idn && d.len != dn))
				abort();
		} else if (!why || !*why) {
			abort();
		}
	}
	str_free(&z);
	str_free(&l);
	str_free(&d);
	return 0;
}
