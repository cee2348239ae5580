/*
 * idna - see idna.h. The Punycode encoder follows RFC 3492 6.3 with its
 * parameters (6.1, 5); the code points of a label are at most 63 (an
 * A-label holds at most 63 bytes, so no longer label could be one).
 */
#include "idna.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "utf8.h"

#define BASE 36
#define TMIN 1
#define TMAX 26
#define SKEW 38
#define DAMP 700
#define LABEL_MAX 63

/* utf8 - the code points of S (N bytes) into CP: their number, or -1 */
static int utf8(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t i = 0;
	int k = 0, len;

	while (i < n) {
		if (k == LABEL_MAX || (len = utf8_next(s + i, n - i, &cp[k])) < 0)
			return -1;
		k++;
		i += (size_t)len;
	}
	return k;
}

/* adapt - the bias after a delta (RFC 3492 6.1) */
static uint32_t adapt(uint32_t delta, uint32_t points, int first)
{
	uint32_t k = 0;

	delta = first ? delta / DAMP : delta / 2;
	delta += delta / points;
	while (delta > ((BASE - TMIN) * TMAX) / 2) {
		delta /= BASE - TMIN;
		k += BASE;
	}
	return k + (BASE - TMIN + 1) * delta / (delta + SKEW);
}

static char digit(uint32_t d)
{
	return (char)(d < 26 ? 'a' + d : '0' + d - 26);
}

/* put_delta - one delta as a variable-length integer (RFC 3492 6.3) */
static int put_delta(struct str *out, uint32_t q, uint32_t bias)
{
	uint32_t k, t;

	for (k = BASE;; k += BASE) {
		t = k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
		if (q < t)
			break;
		if (str_catc(out, digit(t + (q - t) % (BASE - t))) < 0)
			return -ENOMEM;
		q = (q - t) / (BASE - t);
	}
	return str_catc(out, digit(q));
}

/* encode - the Punycode of the K code points CP appended to OUT */
static int encode(const uint32_t *cp, int k, struct str *out)
{
	uint32_t n = 0x80, delta = 0, bias = 72, h, b = 0, m;
	int i, r = 0;

	for (i = 0; i < k; i++)
		if (cp[i] < 0x80) {
			b++;
			r = str_catc(out, (char)cp[i]);
		}
	if (r == 0 && b)
		r = str_catc(out, '-');
	/* no overflow: at most 63 code points under 0x110000, so delta
	 * stays under 64 * 64 * 0x110000 < 2^32 */
	for (h = b; r == 0 && h < (uint32_t)k; delta++, n++) {
		for (m = UINT32_MAX, i = 0; i < k; i++)
			if (cp[i] >= n && cp[i] < m)
				m = cp[i];
		delta += (m - n) * (h + 1);
		n = m;
		for (i = 0; r == 0 && i < k; i++) {
			if (cp[i] < n)
				delta++;
			if (cp[i] != n)
				continue;
			r = put_delta(out, delta, bias);
			bias = adapt(delta, h + 1, h == b);
			delta = 0;
			h++;
		}
	}
	return r;
}

/* label - one label (N bytes) appended to OUT, encoded if not ASCII */
static int label(const char *s, size_t n, struct str *out)
{
	uint32_t cp[LABEL_MAX];
	size_t i, start;
	int k, r;

	for (i = 0; i < n && !((unsigned char)s[i] & 0x80); i++)
		;
	if (i == n)
		return str_catb(out, s, n);
	k = utf8((const unsigned char *)s, n, cp);
	if (k < 0)
		return -EINVAL;
	start = out->len;
	r = str_cats(out, "xn--");
	if (r == 0)
		r = encode(cp, k, out);
	if (r == 0 && out->len - start > LABEL_MAX)
		r = -EINVAL;
	return r;
}

/* idna_to_ascii - see idna.h */
int idna_to_ascii(const char *name, size_t n, struct str *out)
{
	size_t b = 0, e;
	int r = 0;

	while (r == 0 && b <= n) {
		const char *dot = memchr(name + b, '.', n - b);

		e = dot ? (size_t)(dot - name) : n;
		r = label(name + b, e - b, out);
		if (r == 0 && dot)
			r = str_catc(out, '.');
		if (!dot)
			break;
		b = e + 1;
	}
	return r;
}
