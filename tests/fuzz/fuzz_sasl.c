/*
 * fuzz_sasl - libFuzzer target for the login parsers that mta-smtpd and
 * pop3d share: strict base64 (lib/b64), the SASL messages (lib/sasl) and
 * the login name and passwd record (lib/login).
 *
 * The input is tried both ways. As text: when it decodes, encoding the
 * result must give the input back byte for byte (the decoder takes only
 * canonical base64: whole quanta, '=' only at the end, unused bits zero),
 * and the result is NUL-terminated for callers that treat it as a string;
 * the decoded bytes then go through the SASL parsers. As bytes: encoding
 * then decoding must give them back, and the raw bytes go through every
 * parser too. Beyond "no crash": a PLAIN user is never empty and neither
 * user nor password holds a NUL (nor LOGIN's); a CRAM-MD5 answer splits into user, one
 * space and digest with nothing lost; a login name gives two non-empty
 * halves; a passwd record that parses names a Maildir under domains/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "login.h"
#include "sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_sasl - the SASL messages and the login parsers on s */
static void check_sasl(const char *s, size_t n)
{
	struct str u = STR_INIT, p = STR_INIT, l = STR_INIT, d = STR_INIT,
		   rec = STR_INIT;
	struct login lg = LOGIN_INIT;
	struct sasl x = SASL_INIT;

	if (sasl_plain(s, n, &u, &p) == 0 &&
	    (u.len == 0 || memchr(u.s, 0, u.len) || memchr(p.s, 0, p.len) ||
	     u.len + p.len + 2 > n))
		abort();
	if (sasl_cram(s, n, &u, &p) == 0 &&
	    (memchr(u.s, ' ', u.len) || u.len + 1 + p.len != n ||
	     memcmp(u.s, s, u.len) || s[u.len] != ' '))
		abort();
	(void)sasl_mech(s, n);
	/* LOGIN's two answers, the second one the same text */
	if (sasl_start(&x, SASL_LOGIN, s, n, "h") == SASL_MORE &&
	    sasl_step(&x, s, n) == 0 && memchr(x.pass.s, 0, x.pass.len))
		abort();
	if (login_user(s, n, &l, &d) == 0 && (!l.len || !d.len))
		abort();
	/* a record is NUL-terminated after its bytes, as acct_get gives it */
	if (str_copyb(&rec, s, n) == 0 && login_parse(rec.s, rec.len, &lg) ==
	    0 && (lg.maildir.len < 9 || memcmp(lg.maildir.s, "domains/", 8) ||
		  strstr(lg.maildir.s, "/../") || memchr(lg.hash.s, 0,
							  lg.hash.len)))
		abort();
	str_free(&u);
	str_free(&p);
	str_free(&l);
	str_free(&d);
	str_free(&rec);
	login_free(&lg);
	sasl_free(&x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str dec = STR_INIT, enc = STR_INIT, back = STR_INIT;

	if (size > 8192)
		return 0;
	if (b64_decode((const char *)data, size, &dec) == 0) {
		if (!dec.s || dec.s[dec.len] != 0 || dec.len != size / 4 * 3 -
		    (size && data[size - 1] == '=') -
		    (size > 1 && data[size - 2] == '='))
			abort();
		if (b64_encode(dec.s, dec.len, &enc) < 0 || enc.len != size ||
		    (size && memcmp(enc.s, data, size)))
			abort();
		check_sasl(dec.s, dec.len);
	}
	if (b64_encode(data, size, &enc) < 0 ||
	    enc.len != (size + 2) / 3 * 4 ||
	    b64_decode(enc.s ? enc.s : "", enc.len, &back) < 0 ||
	    back.len != size || (size && memcmp(back.s, data, size)))
		abort();
	check_sasl((const char *)data, size);
	str_free(&dec);
	str_free(&enc);
	str_free(&back);
	return 0;
}
