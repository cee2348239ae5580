/*
 * srs - the Sender Rewriting Scheme of forwarded mail (docs/authentication.md).
 *
 * A message that vdeliver forwards to a remote address leaves with an
 * envelope sender of this host, so that the next hop's SPF check looks at
 * us and not at the original sender's domain:
 *
 *   SRS0=HHHHHH=TT=orig-domain=orig-local@ME
 *
 * TT is the day (Unix days mod 1024) in two base32 digits (A-Z, 2-7), and
 * HHHHHH the first SRS_HASH_LEN base64 digits of HMAC-SHA256, keyed by the
 * first line of control/srssecret, of "TT=orig-domain=orig-local" folded to
 * lower case. Folded, because some MTAs lower-case a local part on its way:
 * the hash is compared without regard to case and its input is folded, so
 * a bounce still verifies; the bounce then goes to the folded address.
 *
 * srs_secrets() reads control/srssecret into OUT (each line NUL-ended,
 * lib/ctl's rule), *n_r lines; -ENOENT when the file is missing or holds
 * no line. The first line signs, every line verifies (a rotation adds a
 * new first line and drops the old one 21 days later). srs_secret_new()
 * makes one line: 32 random bytes in base64, with its newline.
 *
 * srs_forward() writes into OUT the sender a forward of SENDER leaves
 * with, on day NOW (Unix time); it returns 0 (OUT rewritten), SRS_KEPT
 * (OUT is SENDER as it was: the null sender "", which is never rewritten,
 * or an SRS address of ME already, whose bounce comes back here anyway),
 * -EINVAL (SENDER is not LOCAL@DOMAIN with a host-name domain and a local
 * part we could carry), -E2BIG (the SRS local part would pass 64 bytes,
 * which RFC 5321 lets a server refuse), -ENOENT (no secret) or -ENOMEM.
 * Another forwarder's SRS0 address is wrapped again as any sender, not
 * turned into SRS1: its bounce comes back here, then goes to that
 * forwarder, which unwraps its own.
 *
 * srs_is() is 1 when ADDR's local part starts with "SRS0=" (any case) and
 * its domain is ME (any case): the addresses srs_reverse() judges.
 * srs_reverse() writes the original address of such an ADDR into OUT and
 * returns 0, or -EINVAL (not ours, malformed, or no secret line gives
 * its hash: forged), -ETIMEDOUT (a good hash more than SRS_MAX_AGE days
 * old), -ENOENT (no secret) or -ENOMEM. A stamp one day ahead is
 * accepted, for hosts sharing the secret whose clocks disagree at
 * midnight.
 */
#ifndef FACTEUR_SRS_H
#define FACTEUR_SRS_H

#include <stddef.h>
#include <time.h>

#include "str.h"

#define SRS_HASH_LEN 6		/* base64 digits of the HMAC kept */
#define SRS_MAX_AGE 21		/* days a bounce may take to come back */
#define SRS_LOCAL_MAX 64	/* RFC 5321 4.5.3.1.1 */
#define SRS_KEPT 1

int srs_secrets(const char *root, struct str *out, size_t *n_r);
int srs_secret_new(struct str *out);
int srs_forward(const struct str *secrets, const char *me,
		const char *sender, time_t now, struct str *out);
int srs_is(const char *me, const char *addr);
int srs_reverse(const struct str *secrets, const char *me, const char *addr,
		time_t now, struct str *out);

#endif
