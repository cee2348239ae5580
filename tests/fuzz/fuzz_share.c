/*
 * fuzz_share - libFuzzer target for what lib/limit writes and reads for
 * vadmin share (docs/scale-out.md): limit_key_text, limit_told and
 * limit_key_valid.
 *
 * The first byte picks: an address key ('i'), another key ('k'), or a
 * datagram. A key's text must be one limit_key_valid accepts (or be
 * refused), and another key's text must decode (%XX) back to its bytes;
 * a datagram that limit_told splits must be SERVICE, a space and KEY.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "limit.h"
#include "str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* hex - a hex digit's value, -1 for none */
static int hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ?
	       c - 'A' + 10 : -1;
}

/* unescape - a text's %XX back to bytes; the length, or -1 when bad */
static long unescape(const char *t, size_t len, char *out)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if (t[i] != '%') {
			out[n++] = t[i];
			continue;
		}
		if (i + 2 >= len || hex(t[i + 1]) < 0 || hex(t[i + 2]) < 0)
			return -1;
		out[n++] = (char)(hex(t[i + 1]) * 16 + hex(t[i + 2]));
		i += 2;
	}
	return (long)n;
}

/* key - a key's text: valid, and for 'k' the bytes again */
static void key(char kind, const uint8_t *b, size_t n)
{
	struct str t = STR_INIT;
	char *back;
	long m;

	if (limit_key_text(kind, b, n, &t) == 0) {
		if (!limit_key_valid(t.s, t.len))
			abort();
		if (kind == 'k') {
			if (!(back = malloc(t.len + 1)))
				abort();
			m = unescape(t.s, t.len, back);
			if (m != (long)n || memcmp(back, b, n))
				abort();
			free(back);
		}
	}
	str_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str s = STR_INIT, k = STR_INIT;

	if (size == 0)
		return 0;
	if (data[0] % 3 < 2) {
		key(data[0] % 3 ? 'k' : 'i', data + 1, size - 1);
		return 0;
	}
	if (limit_told(data + 1, size - 1, &s, &k) == 0 &&
	    (s.len + 1 + k.len != size - 1 || memcmp(s.s, data + 1, s.len) ||
	     data[1 + s.len] != ' ' || memcmp(k.s, data + 2 + s.len, k.len) ||
	     !limit_key_valid(k.s, k.len)))
		abort();
	str_free(&s);
	str_free(&k);
	return 0;
}
