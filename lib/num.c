/*
 * num - decimal numbers (see num.h).
 */
#include "num.h"

#include <errno.h>
#include <string.h>

/* num_scan - the leading digits of s[0..len), at most max */
int num_scan(const char *s, size_t len, uint64_t max, uint64_t *out,
	     size_t *used_r)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		/* v * 10 + d <= max, asked without overflowing */
		if (d > max || v > (max - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (i == 0)
		return -EINVAL;
	*out = v;
	*used_r = i;
	return 0;
}

/* num_parseb - s[0..len) is one number, at most max */
int num_parseb(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v;
	size_t used;
	int r = num_scan(s, len, max, &v, &used);

	if (r == 0 && used != len)
		return -EINVAL;
	if (r == 0)
		*out = v;
	return r;
}

/* num_parse - the NUL-terminated s is one number, at most max */
int num_parse(const char *s, uint64_t max, uint64_t *out)
{
	return num_parseb(s, strlen(s), max, out);
}
