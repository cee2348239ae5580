/*
 * name - domain and local-part checks (see name.h).
 */
#include "name.h"

#include <errno.h>
#include <string.h>

#include "idna.h"
#include "queue.h"

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* name_fold - append in[0..len) in lower case (ASCII letters only, so
 * that no locale changes a name) */
int name_fold(struct str *out, const char *in, size_t len)
{
	size_t i;

	if (str_ready(out, len) < 0)
		return -ENOMEM;
	for (i = 0; i < len; i++)
		out->s[out->len + i] = lower(in[i]);
	out->len += len;
	out->s[out->len] = 0;
	return 0;
}

/* common_bad - the faults both kinds of name share, named for the user */
static const char *common_bad(const char *in, size_t len, size_t max)
{
	size_t i;

	if (len == 0)
		return "is empty";
	if (len > max)
		return max == NAME_LOCAL_MAX ? "is longer than 64 bytes" :
		       "is longer than 253 bytes";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == 0)
			return "contains a NUL byte";
		if (c < 0x20 || c == 0x7f)
			return "contains a control byte";
		if (c == ' ')
			return "contains a space";
		if (c == '/')
			return "contains a slash";
		if (c >= 0x80)
			return "contains a non-ASCII byte";
	}
	if (in[0] == '.')
		return "starts with a dot";
	if (in[len - 1] == '.')
		return "ends with a dot";
	for (i = 0; i + 1 < len; i++)
		if (in[i] == '.' && in[i + 1] == '.')
			return "contains '..'";
	return NULL;
}

/* name_ldh - why s[0..len) is not a host name of LDH labels, or NULL */
const char *name_ldh(const char *s, size_t len, unsigned flags)
{
	size_t i, label = 0;

	if (len == 0 || len > NAME_DOMAIN_MAX)
		return len ? "is longer than 253 bytes" : "is empty";
	for (i = 0; i <= len; i++) {
		char c = i < len ? lower(s[i]) : '.';
		int edge = !(flags & NAME_LDH_ANY_HYPHEN);

		if (c == '.') {
			if (label == 0)
				return "has an empty label";
			if (edge && s[i - 1] == '-')
				return "has a label ending with a hyphen";
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			   c == '-' || (c == '_' && (flags & NAME_LDH_UNDERSCORE))) {
			if (edge && c == '-' && label == 0)
				return "has a label starting with a hyphen";
			if (++label > 63)
				return "has a label longer than 63 bytes";
		} else {
			return "may hold only letters, digits, hyphens and dots";
		}
	}
	return NULL;
}

/* name_domain - check and lower-case a domain name; U-labels become
 * A-labels first (name_domain_ascii), so every program finds an IDN
 * domain however it is spelled */
int name_domain(const char *in, size_t len, struct str *out,
		const char **why_r)
{
	struct str a = STR_INIT;
	const char *why = NULL;
	int r = name_domain_ascii(in, len, &a);

	if (r == -EINVAL)
		why = NAME_NOT_UTF8;
	else if (r == 0 &&
		 !(why = common_bad(a.s ? a.s : "", a.len, NAME_DOMAIN_MAX)))
		why = name_ldh(a.s, a.len, 0);
	if (r == 0 && !why) {
		out->len = 0;
		r = name_fold(out, a.s, a.len);
	}
	str_free(&a);
	if (why) {
		*why_r = why;
		return -EINVAL;
	}
	return r;
}

/* name_local - check and lower-case a local part (RFC 5322 dot-atom) */
int name_local(const char *in, size_t len, struct str *out,
	       const char **why_r)
{
	static const char atext[] = "!#$%&'*+-=?^_`{|}~.";
	const char *why = common_bad(in, len, NAME_LOCAL_MAX);
	size_t i;

	for (i = 0; !why && i < len; i++) {
		char c = in[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr(atext, c)))
			why = c == '@' ? "contains an '@'" :
			      "contains a character not allowed in an address";
	}
	if (why) {
		*why_r = why;
		return -EINVAL;
	}
	out->len = 0;
	return name_fold(out, in, len);
}

/* name_addr - split LOCAL@DOMAIN at the last '@' and check both halves */
int name_addr(const char *in, struct str *local, struct str *domain,
	      const char **why_r)
{
	const char *at = strrchr(in, '@');
	int r;

	if (!at) {
		*why_r = "is not of the form user@domain";
		return -EINVAL;
	}
	r = name_local(in, (size_t)(at - in), local, why_r);
	if (r == 0)
		r = name_domain(at + 1, strlen(at + 1), domain, why_r);
	return r;
}

/* name_receivable - why mail from outside could never reach LOCAL */
const char *name_receivable(const char *local, size_t len)
{
	if (queue_addr_entry(local, len) < 0)
		return "begins with '-', which every entry refuses (a program "
		       "could take it for an option)";
	if (memchr(local, '%', len) || memchr(local, '!', len))
		return "contains '%' or '!', which SMTP refuses in a recipient";
	return NULL;
}

/* name_domain_ascii - D with its U-labels as A-labels, appended to OUT */
int name_domain_ascii(const char *d, size_t n, struct str *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)d[i] >= 0x80)
			return idna_to_ascii(d, n, out);
	return str_catb(out, d, n);
}
