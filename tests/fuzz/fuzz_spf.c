/*
 * fuzz_spf - libFuzzer target for lib/spf's record parser (spf_parse)
 * and macro expander (spf_expand), the two readers of DNS text.
 *
 * Beyond the sanitizers: an accepted record's terms lie inside the input,
 * in order, each a run without spaces; an ip4/ip6 prefix is within its
 * range; a refused record has a reason. An expansion either fails or
 * stays within SPF_EXPAND_MAX bytes, and a macro-free string expands to
 * itself.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_record - the parser's contract on one input */
static void check_record(const char *in, size_t n)
{
	struct spf_record rec;
	const char *why = NULL, *prev = in;
	size_t i;
	int r = spf_parse(in, n, &rec, &why);

	if (r < 0) {
		if (r != -EINVAL || !why || !*why)
			abort();
		return;
	}
	for (i = 0; i < rec.n; i++) {
		const struct spf_term *t = &rec.t[i];

		if (t->text < prev || t->text + t->textlen > in + n ||
		    t->textlen == 0 || memchr(t->text, ' ', t->textlen) ||
		    t->cidr4 < 0 || t->cidr4 > 32 || t->cidr6 < 0 ||
		    t->cidr6 > 128)
			abort();
		if (t->arg && (t->arg < t->text ||
			       t->arg + t->arglen > t->text + t->textlen))
			abort();
		prev = t->text + t->textlen;
	}
	spf_record_free(&rec);
}

/* check_expand - the expander's contract on one input */
static void check_expand(const char *in, size_t n, int exp)
{
	struct spf_env env = {"user@example.org", "mx.example.net", {0}, 0,
			      NULL};
	struct str out = STR_INIT;
	int r;

	spf_env_ip(&env, n % 2 ? "2001:db8::1" : "192.0.2.1");
	r = spf_expand(&env, "example.org", in, n, exp, &out);
	if (r == 0 && out.len > SPF_EXPAND_MAX)
		abort();
	if (r == 0 && !memchr(in, '%', n) && (out.len != n ||
					       memcmp(out.s, in, n)))
		abort();
	if (r < 0 && r != -EINVAL && r != -EMSGSIZE && r != -ENOMEM)
		abort();
	str_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1);

	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = 0;
	check_record(in, size);
	check_expand(in, size, size && (data[0] & 1));
	free(in);
	return 0;
}
