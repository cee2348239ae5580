/*
 * fuzz_num - libFuzzer target for lib/num (num_scan, num_parseb).
 *
 * The first byte picks the max (a power of ten minus one, a byte, a port,
 * INT64_MAX or UINT64_MAX), the rest is the text. Each result is checked
 * against a model: a slow sum in 128 bits over the leading digits.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "num.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* pick_max - the max the first byte names */
static uint64_t pick_max(uint8_t b)
{
	static const uint64_t m[] = {0, 1, 9, 255, 65535, 99999,
				     INT64_MAX, UINT64_MAX};

	return m[b % (sizeof m / sizeof m[0])];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data + 1;
	unsigned __int128 model = 0;
	uint64_t max, v = 7, w = 7;
	size_t n, i, used = 7;
	int over = 0, r;

	if (size == 0)
		return 0;
	max = pick_max(data[0]);
	n = size - 1;
	for (i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		model = model * 10 + (unsigned)(s[i] - '0');
		if (model > max) {
			over = 1;
			model = (unsigned __int128)max + 1;	/* stays small */
		}
	}
	r = num_scan(s, n, max, &v, &used);
	if (i == 0 ? r != -EINVAL : over ? r != -ERANGE :
	    (r != 0 || v != (uint64_t)model || used != i))
		abort();
	if (r < 0 && (v != 7 || used != 7))
		abort();	/* nothing written on failure */
	r = num_parseb(s, n, max, &w);
	if (r != (i == 0 ? -EINVAL : over ? -ERANGE : i != n ? -EINVAL : 0) ||
	    (r == 0 && w != v))
		abort();
	return 0;
}
