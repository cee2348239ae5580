/*
 * cert - the self-signed TLS certificate of a new root, and its check.
 *
 * cert_make() writes DIR/key.pem (EC P-256, PKCS#8, 0600) and
 * DIR/cert.pem (0644): X.509 v3, random serial, valid from now for ten
 * years, CN and subjectAltName DNS:HOST (plus DNS:localhost and
 * IP:127.0.0.1 for --dev), CA:FALSE, keyUsage digitalSignature,
 * extendedKeyUsage serverAuth, signed with SHA-256. Each file is written
 * atomically, the key first, so a crash never leaves a certificate
 * without its key. cert_error() gives OpenSSL's reason for the last
 * -EIO. `facteur doctor` checks the pair (doctor_net.c).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "facteur.h"
#include "fsx.h"

#define CERT_YEARS 10

/* cert_error - OpenSSL's words for its last error */
const char *cert_error(void)
{
	const char *s = ERR_reason_error_string(ERR_peek_last_error());

	return s ? s : "OpenSSL error";
}

/* add_name - append a DNS or IP subjectAltName entry */
static int add_name(GENERAL_NAMES *gens, int type, const void *v, int len)
{
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_STRING *s = type == GEN_DNS ? ASN1_IA5STRING_new() :
			 ASN1_OCTET_STRING_new();

	if (!g || !s || !ASN1_STRING_set(s, v, len)) {
		GENERAL_NAME_free(g);
		ASN1_STRING_free(s);
		return -EIO;
	}
	GENERAL_NAME_set0_value(g, type, s);
	if (!sk_GENERAL_NAME_push(gens, g)) {
		GENERAL_NAME_free(g);
		return -EIO;
	}
	return 0;
}

/* add_ext - one extension from OpenSSL's config syntax (fixed strings) */
static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EIO;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EIO;
}

/* set_san - subjectAltName; built as structures, so the host name is
 * never parsed as OpenSSL config text */
static int set_san(X509 *x, const char *host, int dev)
{
	static const unsigned char lo[4] = {127, 0, 0, 1};
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	int r;

	if (!gens)
		return -ENOMEM;
	r = add_name(gens, GEN_DNS, host, (int)strlen(host));
	if (r == 0 && dev && strcmp(host, "localhost"))
		r = add_name(gens, GEN_DNS, "localhost", 9);
	if (r == 0 && dev)
		r = add_name(gens, GEN_IPADD, lo, 4);
	if (r == 0 && !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
					 X509V3_ADD_DEFAULT))
		r = -EIO;
	GENERAL_NAMES_free(gens);
	return r;
}

/* set_validity - from now to the same moment CERT_YEARS years on */
static int set_validity(X509 *x)
{
	time_t now = time(NULL), end;
	struct tm tm;

	if (!gmtime_r(&now, &tm))
		return -EOVERFLOW;
	tm.tm_year += CERT_YEARS;
	end = timegm(&tm);
	if (end == (time_t)-1)
		return -EOVERFLOW;
	if (!ASN1_TIME_set(X509_getm_notBefore(x), now) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), end))
		return -EIO;
	return 0;
}

/* set_serial - 159 random bits: positive and under 20 octets (RFC 5280) */
static int set_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	int r = -EIO;

	if (bn && BN_rand(bn, 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		r = 0;
	BN_free(bn);
	return r;
}

/* build - fill in and sign the certificate */
static int build(X509 *x, EVP_PKEY *key, const char *host, int dev)
{
	X509_NAME *name = X509_get_subject_name(x);
	int r;

	if (!X509_set_version(x, 2) || !X509_set_pubkey(x, key) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)host, -1, -1,
					0) ||
	    !X509_set_issuer_name(x, name))
		return -EIO;
	r = set_serial(x);
	if (r == 0)
		r = set_validity(x);
	if (r == 0)
		r = set_san(x, host, dev);
	if (r == 0)
		r = add_ext(x, NID_basic_constraints, "critical,CA:FALSE");
	if (r == 0)
		r = add_ext(x, NID_key_usage, "critical,digitalSignature");
	if (r == 0)
		r = add_ext(x, NID_ext_key_usage, "serverAuth");
	if (r == 0)
		r = add_ext(x, NID_subject_key_identifier, "hash");
	if (r == 0 && !X509_sign(x, key, EVP_sha256()))
		r = -EIO;
	return r;
}

/* write_bio - write a memory BIO's content atomically to DIR/NAME */
static int write_bio(BIO *bio, const char *dir, const char *name, mode_t mode)
{
	struct str path = STR_INIT;
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	int r;

	if (n <= 0)
		return -EIO;
	r = str_catf(&path, "%s/%s", dir, name);
	if (r == 0)
		r = fsx_write_atomic(path.s, data, (size_t)n, mode);
	str_free(&path);
	return r;
}

/* cert_make - new key and self-signed certificate in dir */
int cert_make(const char *dir, const char *host, int dev)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	/* secure memory: the key's PEM is wiped when the BIO is freed */
	BIO *kb = BIO_new(BIO_s_secmem()), *cb = BIO_new(BIO_s_mem());
	int r = -EIO;

	if (!key || !x || !kb || !cb)
		goto out;
	r = build(x, key, host, dev);
	if (r < 0)
		goto out;
	r = -EIO;
	if (!PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cb, x))
		goto out;
	r = write_bio(kb, dir, "key.pem", 0600);
	if (r == 0)
		r = write_bio(cb, dir, "cert.pem", 0644);
out:
	BIO_free(kb);
	BIO_free(cb);
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}
