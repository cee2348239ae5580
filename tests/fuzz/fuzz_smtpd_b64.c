/*
 * fuzz_smtpd_b64 - libFuzzer target for the strict base64 of SMTP AUTH
 * (b64_decode, b64_encode in mta/smtpd/auth.c).
 *
 * The input is tried both ways. As text: when it decodes, encoding the
 * result must give the input back byte for byte (the decoder takes only
 * canonical base64: whole quanta, '=' only at the end, unused bits zero),
 * and the result is NUL-terminated for callers that treat it as a string.
 * As bytes: encoding then decoding must give them back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	}
	if (b64_encode(data, size, &enc) < 0 ||
	    enc.len != (size + 2) / 3 * 4 ||
	    b64_decode(enc.s ? enc.s : "", enc.len, &back) < 0 ||
	    back.len != size || (size && memcmp(back.s, data, size)))
		abort();
	str_free(&dec);
	str_free(&enc);
	str_free(&back);
	return 0;
}
