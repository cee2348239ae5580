/*
 * fuzz_quota - libFuzzer target for quota_parse() and quota_format().
 *
 * Whatever parses formats to a string that parses to the same limits, and
 * that string is the canonical form (formatting it again gives it back).
 * No limit formats to "", which quota_parse() refuses by design.
 */
#include <stdint.h>
#include <stdlib.h>

#include "quota.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str in = STR_INIT, f = STR_INIT, f2 = STR_INIT;
	struct quota q, q2;

	if (str_copyb(&in, data, size) < 0)
		abort();
	if (quota_parse(in.s, &q) == 0) {
		if (quota_format(&q, &f) < 0)
			abort();
		if (f.len == 0) {
			if (q.bytes || q.msgs)
				abort();
		} else if (quota_parse(f.s, &q2) < 0 || q2.bytes != q.bytes ||
			   q2.msgs != q.msgs || quota_format(&q2, &f2) < 0 ||
			   !str_eqs(&f2, f.s)) {
			abort();
		}
	}
	str_free(&in);
	str_free(&f);
	str_free(&f2);
	return 0;
}
