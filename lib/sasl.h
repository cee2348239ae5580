/*
 * sasl - strict base64 and the SASL exchanges of mta-smtpd (SMTP AUTH,
 * RFC 4954) and pop3d (POP3 AUTH, RFC 5034): PLAIN, LOGIN, CRAM-MD5,
 * decided once; the programs only frame challenges ("334 ", "+ ") and
 * word replies.
 *
 * b64_encode() writes the padded base64 (RFC 4648 4) of LEN bytes;
 * b64_decode() takes only the canonical spelling of some bytes (groups of
 * four, '=' only at the end, unused bits zero, no space or line break)
 * into a NUL-terminated OUT, allocated even when empty. Both replace OUT
 * and return 0, -EINVAL or -ENOMEM.
 *
 * sasl_mech() is the mechanism a client names (any case), or 0.
 * sasl_start() begins one, with the initial response if the client gave
 * one; sasl_step() takes each later line. Both return SASL_MORE (send
 * x->prompt, base64, and feed the next line), 0 (done: x->user, x->pass;
 * for CRAM-MD5 x->pass is the digest of x->chal, for lib/login), or:
 *   -ECANCELED  the client sent "*"
 *   -EILSEQ     not canonical base64 ("=" is an empty initial response)
 *   -EINVAL     PLAIN without exactly two NULs or with an empty authcid
 *               (RFC 4616); CRAM-MD5 without "USER SP DIGEST" (RFC 2195)
 *   -EPERM      a PLAIN authzid other than the authcid (we serve no
 *               proxy logins) or a LOGIN answer with a NUL; x->user says
 *               whom (or "?")
 *   -EPROTO     an initial response to CRAM-MD5, which has none
 *   -EAGAIN     no randomness for a challenge "<RANDOM.TIME.PID@HOST>"
 *               (96 random bits: never sent twice); or -ENOMEM
 * sasl_response() decodes one line, sasl_plain() and sasl_cram() parse
 * one message, with the same codes (for the tests and fuzz_sasl).
 */
#ifndef FACTEUR_SASL_H
#define FACTEUR_SASL_H

#include <stddef.h>

#include "str.h"

#define SASL_PLAIN 1
#define SASL_LOGIN 2
#define SASL_CRAM 3

#define SASL_MORE 1

struct sasl {
	int mech, step;
	struct str prompt;	/* the next challenge, base64 */
	struct str chal;	/* CRAM-MD5's challenge, decoded */
	struct str dec;		/* the last response, decoded */
	struct str user, pass;
};

#define SASL_INIT {0, 0, STR_INIT, STR_INIT, STR_INIT, STR_INIT, STR_INIT}

int b64_encode(const void *in, size_t len, struct str *out);
int b64_decode(const char *in, size_t len, struct str *out);
int sasl_mech(const char *name, size_t len);
int sasl_start(struct sasl *x, int mech, const char *initial, size_t len,
	       const char *host);
int sasl_step(struct sasl *x, const char *line, size_t len);
void sasl_free(struct sasl *x);
int sasl_response(const char *line, size_t len, int initial, struct str *out);
int sasl_plain(const char *msg, size_t len, struct str *user,
	       struct str *pass);
int sasl_cram(const char *msg, size_t len, struct str *user,
	      struct str *digest);

#endif
