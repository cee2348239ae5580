/*
 * pw - password hashes and the CRAM-MD5 context (see pw.h).
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* MD5_CTX's state words are the point */
#include "pw.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/md5.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* crypt_with - crypt(3) of pw under SETTING (a salt or a whole hash)
 * into OUT; -EINVAL when libxcrypt refuses the setting */
static int crypt_with(const char *pw, const char *setting, struct str *out)
{
	struct crypt_data *cd = calloc(1, sizeof *cd);
	const char *h;
	int r;

	if (!cd)
		return -ENOMEM;
	h = crypt_r(pw, setting, cd);
	r = !h || h[0] == '*' ? -EINVAL : str_copys(out, h);
	explicit_bzero(cd, sizeof *cd);
	free(cd);
	return r;
}

/* scheme_setting - a fresh setting (prefix, cost, salt) of SCHEME,
 * "yescrypt" (also NULL) or "sha512crypt"; its hash's length in HLEN */
static int scheme_setting(const char *scheme, char *setting, size_t size,
			  size_t *hlen)
{
	const char *prefix;

	if (!scheme || !strcmp(scheme, "yescrypt"))
		prefix = "$y$", *hlen = 43;
	else if (!strcmp(scheme, "sha512crypt"))
		prefix = "$6$", *hlen = 86;
	else
		return -EINVAL;
	if (!crypt_gensalt_rn(prefix, 0, NULL, 0, setting, (int)size))
		return errno ? -errno : -EIO;
	return 0;
}

/* pw_hash - a new salted hash of pw; scheme "yescrypt" or "sha512crypt" */
int pw_hash(const char *pw, const char *scheme, struct str *out)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	size_t hlen;
	int r = scheme_setting(scheme, setting, sizeof setting, &hlen);

	if (r < 0)
		return r;
	r = crypt_with(pw, setting, out);
	return r == -EINVAL ? -EIO : r;
}

/* pw_decoy - a hash-shaped string of SCHEME: checking a password against
 * it costs what checking a real hash of SCHEME costs (the setting part
 * decides the work), yet making it costs nothing, and no password
 * matches its hash part (all '.', the hash of all-zero output bits) */
int pw_decoy(const char *scheme, struct str *out)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	size_t hlen;
	int r = scheme_setting(scheme, setting, sizeof setting, &hlen);

	if (r < 0)
		return r;
	if (str_copys(out, setting) || str_catc(out, '$'))
		return -ENOMEM;
	while (hlen--)
		if (str_catc(out, '.'))
			return -ENOMEM;
	return 0;
}

/* hash_bytes - 20 to 512 bytes, none that breaks a record or a line */
static int hash_bytes(const char *hash)
{
	const char *p;

	if (strlen(hash) < 20 || strlen(hash) > 512)
		return -EINVAL;
	for (p = hash; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
		    *p == ':')
			return -EINVAL;
	return 0;
}

/* pw_hash_ok - a hash an admin may store: yescrypt or SHA-512-crypt */
int pw_hash_ok(const char *hash)
{
	if (strncmp(hash, "$y$", 3) && strncmp(hash, "$6$", 3))
		return -EINVAL;
	return hash_bytes(hash);
}

/* pw_hash_known - a hash a login is checked against: those of pw_hash_ok
 * and MD5-crypt ($1$), which only import-vpopmail stores, so that nobody's
 * password changes in a move off vpopmail (SPEC.md "Administration") */
int pw_hash_known(const char *hash)
{
	if (!strncmp(hash, "$1$", 3))
		return hash_bytes(hash);
	return pw_hash_ok(hash);
}

/* pw_check - compare pw against a stored hash in constant time */
int pw_check(const char *pw, const char *hash)
{
	struct str h = STR_INIT;
	size_t n = strlen(hash);
	int r = pw_hash_known(hash);

	if (r == 0)
		r = crypt_with(pw, hash, &h);
	if (r == 0 && (h.len != n || CRYPTO_memcmp(h.s, hash, n)))
		r = -EACCES;
	str_wipe(&h);
	return r;
}

/* pw_verify - a login's password against HASH (NULL: no such user): 0,
 * -EACCES, or -ENOMEM. An unknown user and an unusable hash ("!", a
 * damaged one) cost a check against DUMMY, a real hash of the configured
 * scheme, so that every refusal takes as long as a wrong password and
 * none tells that an account exists: one rule for mta-smtpd and pop3d */
int pw_verify(const char *pw, const char *hash, const char *dummy)
{
	int r = hash ? pw_check(pw, hash) : -EINVAL;

	if (r == -EINVAL) {
		(void)pw_check(pw, dummy);
		r = -EACCES;
	}
	return r;
}

static const char hexd[] = "0123456789abcdef";

static void put_word(char *hex, uint32_t w)
{
	int i;

	/* little-endian byte order, as MD5 itself stores its state */
	for (i = 0; i < 4; i++, w >>= 8) {
		hex[2 * i] = hexd[(w >> 4) & 15];
		hex[2 * i + 1] = hexd[w & 15];
	}
}

static int get_word(const char *hex, uint32_t *w)
{
	uint32_t v = 0;
	int i;

	for (i = 3; i >= 0; i--) {
		const char *a = strchr(hexd, hex[2 * i]);
		const char *b = strchr(hexd, hex[2 * i + 1]);

		if (!hex[2 * i] || !hex[2 * i + 1] || !a || !b)
			return -EINVAL;
		v = (v << 8) | (uint32_t)((a - hexd) << 4 | (b - hexd));
	}
	*w = v;
	return 0;
}

/* pw_cram_context - MD5 states after (K^ipad) and (K^opad), as hex */
int pw_cram_context(const char *pw, size_t len, struct str *hex_out)
{
	unsigned char key[64], pad[64];
	char hex[PW_CRAM_HEX];
	MD5_LONG w[8];
	MD5_CTX ic, oc;
	int i;

	memset(key, 0, sizeof key);
	if (len > 64)
		MD5((const unsigned char *)pw, len, key);
	else
		memcpy(key, pw, len);
	for (i = 0; i < 64; i++)
		pad[i] = key[i] ^ 0x36;
	MD5_Init(&ic);
	MD5_Update(&ic, pad, 64);
	for (i = 0; i < 64; i++)
		pad[i] = key[i] ^ 0x5c;
	MD5_Init(&oc);
	MD5_Update(&oc, pad, 64);
	w[0] = ic.A, w[1] = ic.B, w[2] = ic.C, w[3] = ic.D;
	w[4] = oc.A, w[5] = oc.B, w[6] = oc.C, w[7] = oc.D;
	for (i = 0; i < 8; i++)
		put_word(hex + 8 * i, w[i]);
	explicit_bzero(w, sizeof w);
	explicit_bzero(key, sizeof key);
	explicit_bzero(pad, sizeof pad);
	explicit_bzero(&ic, sizeof ic);
	explicit_bzero(&oc, sizeof oc);
	return str_copyb(hex_out, hex, sizeof hex);
}

/* restore - an MD5 context that has consumed exactly one 64-byte block */
static int restore(MD5_CTX *c, const char *hex)
{
	memset(c, 0, sizeof *c);
	if (get_word(hex, &c->A) || get_word(hex + 8, &c->B) ||
	    get_word(hex + 16, &c->C) || get_word(hex + 24, &c->D))
		return -EINVAL;
	c->Nl = 512; /* bits consumed so far */
	return 0;
}

/* pw_cram_digest - HMAC-MD5(password, challenge) as 32 hex digits */
int pw_cram_digest(const char *ctxhex, const void *chal, size_t len,
		   char out[33])
{
	unsigned char inner[16], outer[16];
	MD5_CTX c;
	int i;

	if (strlen(ctxhex) != PW_CRAM_HEX || restore(&c, ctxhex) < 0)
		return -EINVAL;
	MD5_Update(&c, chal, len);
	MD5_Final(inner, &c);
	if (restore(&c, ctxhex + 32) < 0)
		return -EINVAL;
	MD5_Update(&c, inner, sizeof inner);
	MD5_Final(outer, &c);
	for (i = 0; i < 16; i++) {
		out[2 * i] = hexd[outer[i] >> 4];
		out[2 * i + 1] = hexd[outer[i] & 15];
	}
	out[32] = 0;
	return 0;
}
