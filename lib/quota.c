/*
 * quota - Maildir++ quota definitions (see quota.h).
 */
#include "quota.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "num.h"

/* part - one comma-separated item: digits and an optional unit letter */
static int part(const char *s, size_t n, struct quota *q)
{
	uint64_t v, mul = 1;
	size_t i;
	int msgs = 0, r = num_scan(s, n, UINT64_MAX, &v, &i);

	/* digits and a unit letter: lib/num reads the digits alone */
	if (r < 0)
		return r;
	if (i + 1 == n) {
		switch (s[i]) {
		case 'S': case 's': case 'B': case 'b': break;
		case 'K': case 'k': mul = 1ull << 10; break;
		case 'M': case 'm': mul = 1ull << 20; break;
		case 'G': case 'g': mul = 1ull << 30; break;
		case 'C': case 'c': msgs = 1; break;
		default: return -EINVAL;
		}
	} else if (i != n) {
		return -EINVAL;
	}
	/* the database keeps quotas as signed 64-bit numbers */
	if (v > (uint64_t)INT64_MAX / mul)
		return -ERANGE;
	if (msgs) {
		if (q->msgs)
			return -EINVAL;
		q->msgs = v;
	} else {
		if (q->bytes)
			return -EINVAL;
		q->bytes = v * mul;
	}
	return 0;
}

/* quota_parse - read an admin's quota string */
int quota_parse(const char *s, struct quota *q)
{
	const char *comma;
	int r;

	q->bytes = q->msgs = 0;
	if (!strcasecmp(s, "NOQUOTA") || !strcasecmp(s, "none"))
		return 0;
	comma = strchr(s, ',');
	if (!comma)
		return part(s, strlen(s), q);
	if (strchr(comma + 1, ','))
		return -EINVAL;
	r = part(s, (size_t)(comma - s), q);
	if (r == 0)
		r = part(comma + 1, strlen(comma + 1), q);
	return r;
}

/* quota_format - the Maildir++ form; empty when there is no limit */
int quota_format(const struct quota *q, struct str *out)
{
	out->len = 0;
	if (q->bytes && (str_catu(out, q->bytes) || str_catc(out, 'S')))
		return -ENOMEM;
	if (q->bytes && q->msgs && str_catc(out, ','))
		return -ENOMEM;
	if (q->msgs && (str_catu(out, q->msgs) || str_catc(out, 'C')))
		return -ENOMEM;
	return str_catb(out, "", 0);
}
