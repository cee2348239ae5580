/*
 * utf8 - see utf8.h.
 */
#include "utf8.h"

#include <string.h>

/* utf8_next - the length of the sequence at S and its code point */
int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t len, j;

	if (c < 0x80)
		len = 1, min = 0;
	else if ((c & 0xe0) == 0xc0)
		len = 2, min = 0x80, c &= 0x1f;
	else if ((c & 0xf0) == 0xe0)
		len = 3, min = 0x800, c &= 0x0f;
	else if ((c & 0xf8) == 0xf0)
		len = 4, min = 0x10000, c &= 0x07;
	else
		return -1;
	if (len > n)
		return -1;
	for (j = 1; j < len; j++) {
		if ((s[j] & 0xc0) != 0x80)
			return -1;
		c = c << 6 | (s[j] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;	/* overlong, too high, a surrogate */
	*cp = c;
	return (int)len;
}

/* utf8_valid - S is well-formed UTF-8, all of it */
int utf8_valid(const char *s, size_t n)
{
	size_t i = 0;
	uint32_t c;
	int len;

	while (i < n) {
		if ((len = utf8_next((const unsigned char *)s + i, n - i,
				     &c)) < 0)
			return 0;
		i += (size_t)len;
	}
	return 1;
}

/* utf8_8bit - a byte of S over 0x7f */
int utf8_8bit(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] > 0x7f)
			return 1;
	return 0;
}

/* hidden - a code point that must not reach a log line (utf8.h) */
static int hidden(uint32_t c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 ||
	       c == 0x2029 || (c >= 0x202a && c <= 0x202e) ||
	       (c >= 0x2066 && c <= 0x2069);
}

/* utf8_mask - '?' over what a log reader could misread (utf8.h) */
void utf8_mask(char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t c = 0;
		int len = utf8_next((const unsigned char *)s + i, n - i, &c);

		if (len < 0) {
			s[i++] = '?';
			continue;
		}
		if (hidden(c))
			memset(s + i, '?', (size_t)len);
		i += (size_t)len;
	}
}
