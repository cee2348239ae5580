/*
 * sasl - strict base64 and the SASL PLAIN, LOGIN and CRAM-MD5 exchanges
 * (see sasl.h).
 *
 * @UNSAFE: writes into a str after reserving the exact size; NUL and
 * space scanning with explicit lengths.
 */
#include "sasl.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* digit - the 6-bit value of a base64 digit, or -1 ('=' and NUL too);
 * by ranges, not a search of the alphabet: DKIM decodes a signature and
 * a key of hundreds of digits for every checked message */
static int digit(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* b64_decode - canonical base64 only: one text for one byte string */
int b64_decode(const char *in, size_t len, struct str *out)
{
	size_t i, pad = 0;

	str_trunc(out, 0);
	if (len % 4)
		return -EINVAL;
	if (len && in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	if (str_ready(out, len / 4 * 3) < 0)
		return -ENOMEM;
	for (i = 0; i < len; i += 4) {
		int v[4], k, last = i + 4 == len;
		unsigned long w = 0;

		for (k = 0; k < 4; k++) {
			v[k] = last && k >= 4 - (int)pad ? 0 :
			       digit(in[i + k]);
			if (v[k] < 0)
				return -EINVAL;
			w = w << 6 | (unsigned long)v[k];
		}
		/* the bits of a padded group that carry no byte must be 0 */
		if (last && ((pad == 2 && (v[1] & 0x0f)) ||
			     (pad == 1 && (v[2] & 0x03))))
			return -EINVAL;
		out->s[out->len++] = (char)(w >> 16);
		if (!last || pad < 2)
			out->s[out->len++] = (char)(w >> 8 & 0xff);
		if (!last || pad < 1)
			out->s[out->len++] = (char)(w & 0xff);
	}
	out->s[out->len] = 0;
	return 0;
}

/* b64_encode - base64 with padding */
int b64_encode(const void *in, size_t len, struct str *out)
{
	const unsigned char *p = in;
	size_t i;

	str_trunc(out, 0);
	if (len > (SIZE_MAX - 8) / 4 * 3 || str_ready(out, (len + 2) / 3 * 4))
		return -ENOMEM;
	for (i = 0; i < len; i += 3) {
		unsigned long w = (unsigned long)p[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			w |= (unsigned long)p[i + 1] << 8;
		if (n > 2)
			w |= p[i + 2];
		out->s[out->len++] = alphabet[w >> 18 & 63];
		out->s[out->len++] = alphabet[w >> 12 & 63];
		out->s[out->len++] = n > 1 ? alphabet[w >> 6 & 63] : '=';
		out->s[out->len++] = n > 2 ? alphabet[w & 63] : '=';
	}
	out->s[out->len] = 0;
	return 0;
}

/* sasl_mech - which mechanism NAME is; 0 for one we do not offer */
int sasl_mech(const char *name, size_t len)
{
	if (len == 5 && !strncasecmp(name, "PLAIN", 5))
		return SASL_PLAIN;
	if (len == 5 && !strncasecmp(name, "LOGIN", 5))
		return SASL_LOGIN;
	if (len == 8 && !strncasecmp(name, "CRAM-MD5", 8))
		return SASL_CRAM;
	return 0;
}

/* sasl_response - a response line (or an initial response) decoded */
int sasl_response(const char *line, size_t len, int initial, struct str *out)
{
	int r;

	str_trunc(out, 0);
	if (len == 1 && line[0] == '*')
		return -ECANCELED;
	/* an empty initial response is spelt "=", since an empty argument
	 * could not be told from none at all */
	if (initial && len == 1 && line[0] == '=')
		len = 0;
	r = b64_decode(line, len, out);
	return r == -EINVAL ? -EILSEQ : r;
}

/* sasl_plain - authzid NUL authcid NUL passwd, authzid empty or authcid */
int sasl_plain(const char *msg, size_t len, struct str *user,
	       struct str *pass)
{
	const char *z1 = memchr(msg, 0, len), *z2;
	size_t zlen, ulen;

	if (!z1)
		return -EINVAL;
	z2 = memchr(z1 + 1, 0, len - (size_t)(z1 - msg) - 1);
	if (!z2)
		return -EINVAL;
	zlen = (size_t)(z1 - msg);
	ulen = (size_t)(z2 - z1 - 1);
	if (ulen == 0 || memchr(z2 + 1, 0, len - (size_t)(z2 - msg) - 1))
		return -EINVAL;
	if (str_copyb(user, z1 + 1, ulen))
		return -ENOMEM;
	/* USER is filled even then: a refusal names whom it refused */
	if (zlen && (zlen != ulen || memcmp(msg, z1 + 1, ulen)))
		return -EPERM;
	return str_copyb(pass, z2 + 1, len - (size_t)(z2 - msg) - 1);
}

/* sasl_cram - "USER SP DIGEST", split at the first space (a user name
 * has none); whether the digest is right is lib/login's question, so a
 * wrong one is a failed login and not a malformed response */
int sasl_cram(const char *msg, size_t len, struct str *user,
	      struct str *digest)
{
	const char *sp = memchr(msg, ' ', len);

	if (!sp || memchr(msg, 0, len))
		return -EINVAL;
	if (str_copyb(user, msg, (size_t)(sp - msg)) ||
	    str_copyb(digest, sp + 1, len - (size_t)(sp - msg) - 1))
		return -ENOMEM;
	return 0;
}

/* challenge - a CRAM-MD5 challenge that no server sends twice: random
 * bits, the time and our pid, in the <...@host> shape of RFC 2195 */
static int challenge(struct sasl *x, const char *host)
{
	unsigned char rnd[12];
	size_t i;
	int r;

	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return -EAGAIN;
	str_trunc(&x->chal, 0);
	r = str_catc(&x->chal, '<');
	for (i = 0; r == 0 && i < sizeof rnd; i++)
		r = str_catf(&x->chal, "%02x", rnd[i]);
	if (r == 0)
		r = str_catf(&x->chal, ".%lld.%ld@%s>", (long long)time(NULL),
			     (long)getpid(), host);
	if (r == 0)
		r = b64_encode(x->chal.s, x->chal.len, &x->prompt);
	return r < 0 ? r : SASL_MORE;
}

/* prompt - ask for the next response with the base64 text P */
static int prompt(struct sasl *x, const char *p)
{
	return str_copys(&x->prompt, p) < 0 ? -ENOMEM : SASL_MORE;
}

/* feed - one response of the exchange */
static int feed(struct sasl *x, const char *in, size_t len, int initial)
{
	int r = sasl_response(in, len, initial, &x->dec);

	if (r < 0)
		return r;
	if (x->mech == SASL_PLAIN)
		return sasl_plain(x->dec.s, x->dec.len, &x->user, &x->pass);
	if (x->mech == SASL_CRAM)
		return sasl_cram(x->dec.s, x->dec.len, &x->user, &x->pass);
	/* LOGIN: the user name, then the password */
	r = str_copyb(x->step++ ? &x->pass : &x->user, x->dec.s, x->dec.len);
	if (r < 0 || x->step == 1)
		return r < 0 ? r : prompt(x, "UGFzc3dvcmQ6"); /* Password: */
	/* a NUL would cut the name or the password short */
	if (memchr(x->user.s, 0, x->user.len) ||
	    memchr(x->pass.s, 0, x->pass.len))
		return str_copys(&x->user, "?") < 0 ? -ENOMEM : -EPERM;
	return 0;
}

/* sasl_start - begin MECH, with the initial response if INITIAL */
int sasl_start(struct sasl *x, int mech, const char *initial, size_t len,
	       const char *host)
{
	x->mech = mech;
	x->step = 0;
	if (mech == SASL_CRAM)
		return initial ? -EPROTO : challenge(x, host);
	if (initial)
		return feed(x, initial, len, 1);
	/* LOGIN asks "Username:"; PLAIN's prompt is empty */
	return prompt(x, mech == SASL_LOGIN ? "VXNlcm5hbWU6" : "");
}

/* sasl_step - the client's next response line */
int sasl_step(struct sasl *x, const char *line, size_t len)
{
	return feed(x, line, len, 0);
}

/* sasl_free - release an exchange, wiping what held a password */
void sasl_free(struct sasl *x)
{
	str_wipe(&x->dec);
	str_wipe(&x->pass);
	str_free(&x->prompt);
	str_free(&x->chal);
	str_free(&x->user);
}
