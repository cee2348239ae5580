/*
 * json - a JSON string literal on stdout (json.h).
 */
#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "utf8.h"

void json_put_str(const char *s, size_t n)
{
	size_t i = 0;

	putchar('"');
	while (i < n) {
		unsigned char ch = (unsigned char)s[i];
		uint32_t c;
		int len;

		if (ch == '"' || ch == '\\') {
			printf("\\%c", ch);
			len = 1;
		} else if (ch < 0x20 || ch == 0x7f) {
			printf("\\u%04x", ch);
			len = 1;
		} else if ((len = utf8_next((const unsigned char *)s + i,
					    n - i, &c)) < 0) {
			/* JSON is UTF-8: a byte that is not becomes U+FFFD */
			fputs("\\ufffd", stdout);
			len = 1;
		} else {
			fwrite(s + i, 1, (size_t)len, stdout);
		}
		i += (size_t)len;
	}
	putchar('"');
}
