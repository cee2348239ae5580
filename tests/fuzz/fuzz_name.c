/*
 * fuzz_name - libFuzzer target for name_domain(), name_local(), name_addr()
 * and name_ldh().
 *
 * Beyond the sanitizers (libFuzzer's buffer is exactly the input, so any
 * over-read is caught): an accepted name is the input folded to lower case,
 * safe as a path component, and accepted again unchanged; a refused one
 * always has a phrase for the user. name_ldh() accepts what name_domain()
 * does, and its relaxed forms accept more, never less.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*validator)(const char *, size_t, struct str *, const char **);

/* check - run one validator on one input and assert its contract */
static void check(validator fn, const char *in, size_t n)
{
	struct str out = STR_INIT, again = STR_INIT;
	const char *why = NULL;
	size_t i;

	if (fn(in, n, &out, &why) < 0) {
		if (!why || !*why)
			abort();
		return;
	}
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
}

/* check_ldh - name_ldh: each relaxation accepts all the strict rule does,
 * and name_domain accepts exactly what the strict rule does */
static void check_ldh(const char *in, size_t n)
{
	struct str out = STR_INIT;
	const char *why = NULL;
	const char *strict = name_ldh(in, n, 0);
	int dom = name_domain(in, n, &out, &why) == 0;

	if ((strict == NULL) != dom ||
	    (!strict && (name_ldh(in, n, NAME_LDH_UNDERSCORE) ||
			 name_ldh(in, n, NAME_LDH_ANY_HYPHEN))) ||
	    (!name_ldh(in, n, NAME_LDH_UNDERSCORE | NAME_LDH_ANY_HYPHEN) &&
	     (n == 0 || n > NAME_DOMAIN_MAX || memchr(in, '/', n))))
		abort();
	str_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str z = STR_INIT, l = STR_INIT, d = STR_INIT;
	const char *why = NULL;

	check(name_domain, (const char *)data, size);
	check(name_local, (const char *)data, size);
	check_ldh((const char *)data, size);
	if (!memchr(data, 0, size) && str_copyb(&z, data, size) == 0) {
		if (name_addr(z.s, &l, &d, &why) == 0) {
			if (l.len + 1 + d.len != size || data[l.len] != '@')
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
