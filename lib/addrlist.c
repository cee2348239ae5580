/*
 * addrlist - the addresses of an address-list field value (addrlist.h).
 */
#include <errno.h>

#include "addrlist.h"

/* addrlist_parse - the addresses of an address-list field value. Whether
 * the token (and the <...> part) holds an '@' is kept as it grows, not
 * searched for at each white space: a search made a From: of an address
 * and as many spaces, each half a megabyte, cost 10^11 byte compares */
int addrlist_parse(const char *v, struct str *out, size_t *n)
{
	struct str tok = STR_INIT, angle = STR_INIT;
	int depth = 0, quoted = 0, in_angle = 0, r = 0;
	int tok_at = 0, angle_at = 0;	/* an '@' in tok, in angle */

	for (;; v++) {
		char ch = *v;

		if (quoted) {
			if (ch == '\\' && v[1])
				v++;
			else if (ch == '"')
				quoted = 0;
			else if (!ch)
				break;
			continue;
		}
		if (depth) {
			depth += ch == '(' ? 1 : ch == ')' ? -1 : 0;
			if (!ch)
				break;
			continue;
		}
		if (ch == '"') {
			quoted = 1;
		} else if (ch == '(') {
			depth = 1;
		} else if (ch == '<') {
			in_angle = 1;
			angle.len = 0;
			angle_at = 0;
		} else if (ch == '>' && in_angle) {
			in_angle = 0;
			tok_at = angle_at;
			if (str_copyb(&tok, angle.s ? angle.s : "", angle.len))
				r = -ENOMEM;
		} else if (ch == ',' || ch == ';' || !ch) {
			if (tok.len) {
				if (str_catb(out, tok.s, tok.len) ||
				    str_catc(out, 0))
					r = -ENOMEM;
				(*n)++;
			}
			tok.len = 0;
			tok_at = 0;
			if (!ch)
				break;
		} else if (ch == ':') {
			tok.len = 0; /* "group: a@b, c@d;" */
			tok_at = 0;
		} else if ((unsigned char)ch > ' ') {
			if (str_catc(in_angle ? &angle : &tok, ch))
				r = -ENOMEM;
			*(in_angle ? &angle_at : &tok_at) |= ch == '@';
		} else if (!in_angle && tok.len && !tok_at) {
			tok.len = 0; /* a display name word, not an address */
		}
		if (r < 0)
			break;
	}
	str_free(&tok);
	str_free(&angle);
	return r;
}

