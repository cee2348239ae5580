/*
 * fuzz_smtpd_addr - libFuzzer target for addr_parse() (mta/smtpd/check.c),
 * the <address> of MAIL FROM and RCPT TO.
 *
 * Beyond the sanitizers it checks what the rest of the server relies on:
 * an accepted address has at most one '@', a local part of 1 to 64 bytes
 * with none of the bytes that make the relay tricks (space, control
 * bytes, quotes, '\', '<', '>', ',', ';', ':', '@'), well-formed UTF-8,
 * a lower-case domain,
 * "<>" only when allowed, a rest that starts right after the first '>',
 * and parsing "<" address ">" again gives the same address.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check - the invariants of one accepted address */
static void check(const char *in, const struct str *a, const char *rest,
		  int allow_null)
{
	const char *s = a->s ? a->s : "";
	const char *at = strchr(s, '@'), *q;
	struct str again = STR_INIT, wrapped = STR_INIT;
	const char *rest2;
	size_t local;

	if (rest != strchr(in, '>') + 1)
		abort();
	if (!a->len) {
		if (!allow_null)
			abort();
		return;
	}
	if (strlen(s) != a->len || (at && strchr(at + 1, '@')))
		abort();
	local = at ? (size_t)(at - s) : a->len;
	if (local < 1 || local > 64)
		abort();
	for (q = s; q < s + local; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f ||
		    strchr("<>()[]\\,;:\"@", *q))
			abort();
	if (!utf8_valid(s, local))	/* 8-bit local parts are UTF-8 */
		abort();
	if (at)
		for (q = at + 1; *q; q++)
			if (*q >= 'A' && *q <= 'Z' && at[1] != '[')
				abort();
	if (str_catc(&wrapped, '<') < 0 || str_catb(&wrapped, s, a->len) < 0 ||
	    str_catc(&wrapped, '>') < 0)
		abort();
	if (addr_parse(wrapped.s, &again, &rest2, 0) != 0 ||
	    !str_eqs(&again, s) || *rest2)
		abort();
	str_free(&again);
	str_free(&wrapped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str in = STR_INIT, a = STR_INIT;
	const char *rest = NULL;
	int allow_null, r;

	if (size < 1 || size > 4096)
		return 0;
	allow_null = data[0] & 1;
	/* a command line never holds a NUL (dispatch refuses it) */
	if (str_catb(&in, data + 1, size - 1) < 0)
		abort();
	if (memchr(in.s ? in.s : "", 0, in.len))
		goto out;
	r = addr_parse(in.s ? in.s : "", &a, &rest, allow_null);
	if (r == 0)
		check(in.s ? in.s : "", &a, rest, allow_null);
	else if (r != -EINVAL && r != -ENOMEM)
		abort();
out:
	str_free(&in);
	str_free(&a);
	return 0;
}
