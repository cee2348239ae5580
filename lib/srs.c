/*
 * srs - the Sender Rewriting Scheme of forwarded mail: SRS0 addresses made
 * and checked (lib/srs.h; docs/authentication.md, "SRS").
 *
 * Why HMAC-SHA256 and six digits: the hash is compared without regard to
 * case, which leaves about 5.2 bits a base64 digit (26 folded letters, 10
 * digits, '+' and '/'); the four digits usual in the field give some 21
 * bits, so a spammer wanting us to relay one bounce to a chosen address
 * finds a hash in a million tries. Six digits give 31 bits for two more
 * bytes of the 64. SHA-256 rather than SHA-1 because nothing here needs
 * to agree with another implementation's hash: the address only ever
 * comes back to us.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "ctl.h"
#include "name.h"
#include "sasl.h"
#include "srs.h"

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* srs_secrets - the lines of control/srssecret; -ENOENT when none */
int srs_secrets(const char *root, struct str *out, size_t *n_r)
{
	int r = ctl_get_lines(root, "srssecret", out, n_r);

	if (r == 0 && *n_r == 0)
		r = -ENOENT;
	return r;
}

/* srs_secret_new - 32 random bytes in base64 and a newline */
int srs_secret_new(struct str *out)
{
	unsigned char k[32];
	int r;

	if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k)
		return -EAGAIN;
	r = b64_encode(k, sizeof k, out);
	explicit_bzero(k, sizeof k);
	return r < 0 ? r : str_catc(out, '\n');
}

/* today - the day stamp of NOW: Unix days mod 1024 */
static unsigned today(time_t now)
{
	return (unsigned)((now < 0 ? 0 : now) / 86400 % 1024);
}

/* local_ok - a local part we carry inside ours and give back as it was:
 * no byte that ends an address or cannot stand in an argument */
static int local_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f ||
		    strchr("<>@\"\\", s[i]))
			return 0;
	return 1;
}

/* sign - the SRS_HASH_LEN digits of KEY's HMAC of "TT=DOMAIN=LOCAL",
 * folded, into H (NUL-ended) */
static int sign(const char *key, const char *tt, const char *dom, size_t dn,
		const char *loc, size_t ln, char h[SRS_HASH_LEN + 1])
{
	struct str in = STR_INIT, folded = STR_INIT, b = STR_INIT;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int r = str_catf(&in, "%.2s=%.*s=%.*s", tt, (int)dn, dom, (int)ln,
			 loc);

	if (r == 0)
		r = name_fold(&folded, in.s, in.len);
	if (r == 0 && !HMAC(EVP_sha256(), key, (int)strlen(key),
			    (const unsigned char *)folded.s, folded.len, md,
			    &mdlen))
		r = -ENOMEM;
	if (r == 0)
		r = b64_encode(md, mdlen, &b);
	if (r == 0) {
		memcpy(h, b.s, SRS_HASH_LEN);
		h[SRS_HASH_LEN] = 0;
	}
	str_free(&in);
	str_free(&folded);
	str_free(&b);
	return r;
}

/* same_hash - the digits equal but for case, in constant time */
static int same_hash(const char *a, const char *b)
{
	unsigned d = 0;
	size_t i;

	for (i = 0; i < SRS_HASH_LEN; i++)
		d |= (unsigned)((a[i] | 0x20) ^ (b[i] | 0x20));
	return d == 0;
}

/* is_srs0 - the local part starts with "SRS0=" */
static int is_srs0(const char *local, size_t n)
{
	return n >= 5 && !strncasecmp(local, "SRS0=", 5);
}

/* srs_is - an SRS0 address of ME */
int srs_is(const char *me, const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at && !strcasecmp(at + 1, me) &&
	       is_srs0(addr, (size_t)(at - addr));
}

/* srs_forward - the SRS0 sender of a forward of SENDER */
int srs_forward(const struct str *secrets, const char *me,
		const char *sender, time_t now, struct str *out)
{
	const char *at = strrchr(sender, '@');
	char tt[3], h[SRS_HASH_LEN + 1];
	size_t ln, dn;
	unsigned day = today(now);
	int r;

	if (!*sender || srs_is(me, sender))
		return str_copys(out, sender) < 0 ? -ENOMEM : SRS_KEPT;
	if (!secrets->len)
		return -ENOENT;
	if (!at)
		return -EINVAL;
	ln = (size_t)(at - sender);
	dn = strlen(at + 1);
	if (!local_ok(sender, ln) || name_ldh(at + 1, dn, 0))
		return -EINVAL;
	/* "SRS0=" HASH "=" TT "=" DOMAIN "=" LOCAL */
	if (5 + SRS_HASH_LEN + 4 + dn + 1 + ln > SRS_LOCAL_MAX)
		return -E2BIG;
	tt[0] = b32[day >> 5];
	tt[1] = b32[day & 31];
	tt[2] = 0;
	r = sign(secrets->s, tt, at + 1, dn, sender, ln, h);
	if (r < 0)
		return r;
	str_trunc(out, 0);
	if (str_catf(out, "SRS0=%s=%s=", h, tt) < 0 ||
	    name_fold(out, at + 1, dn) < 0 ||
	    str_catf(out, "=%.*s@", (int)ln, sender) < 0 ||
	    name_fold(out, me, strlen(me)) < 0)
		return -ENOMEM;
	return 0;
}

/* b32_digit - the value of a base32 digit (any case), or -1 */
static int b32_digit(char c)
{
	const char *p = c ? strchr(b32, c >= 'a' && c <= 'z' ? c - 32 : c) :
			NULL;

	return p ? (int)(p - b32) : -1;
}

/* b64_digit - a base64 digit (any case: folded on the way) */
static int b64_digit(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* verify - does any secret line give HASH */
static int verify(const struct str *secrets, const char *hash,
		  const char *tt, const char *dom, size_t dn, const char *loc,
		  size_t ln)
{
	char h[SRS_HASH_LEN + 1];
	size_t i;
	int ok = 0, r;

	for (i = 0; i < secrets->len; i += strlen(secrets->s + i) + 1) {
		r = sign(secrets->s + i, tt, dom, dn, loc, ln, h);
		if (r < 0)
			return r;
		ok |= same_hash(h, hash);
	}
	return ok ? 0 : -EINVAL;
}

/* srs_reverse - the original address of an SRS0 address of ME */
int srs_reverse(const struct str *secrets, const char *me, const char *addr,
		time_t now, struct str *out)
{
	const char *at = strrchr(addr, '@'), *p = addr + 5, *dom, *loc;
	size_t i, dn, ln;
	int t0, t1, r;
	unsigned age;

	if (!srs_is(me, addr))
		return -EINVAL;
	if (!secrets->len)
		return -ENOENT;
	/* SRS0= HASH = TT = DOMAIN = LOCAL; a domain has no '=', a local
	 * part may: everything after the domain's '=' is the local part */
	for (i = 0; i < SRS_HASH_LEN; i++)
		if (!b64_digit(p[i]))
			return -EINVAL;
	p += SRS_HASH_LEN;
	if (*p != '=' || (t0 = b32_digit(p[1])) < 0 ||
	    (t1 = b32_digit(p[2])) < 0 || p[3] != '=')
		return -EINVAL;
	dom = p + 4;
	for (dn = 0; dom + dn < at && dom[dn] != '='; dn++)
		;
	loc = dom + dn + 1;
	if (loc > at || name_ldh(dom, dn, 0))
		return -EINVAL;
	ln = (size_t)(at - loc);
	if (!local_ok(loc, ln))
		return -EINVAL;
	r = verify(secrets, addr + 5, p + 1, dom, dn, loc, ln);
	if (r < 0)
		return r;
	age = (today(now) + 1024 - (unsigned)(t0 << 5 | t1)) % 1024;
	if (age > SRS_MAX_AGE && age != 1023)
		return -ETIMEDOUT;
	str_trunc(out, 0);
	if (str_catf(out, "%.*s@", (int)ln, loc) < 0 ||
	    name_fold(out, dom, dn) < 0)
		return -ENOMEM;
	return 0;
}
