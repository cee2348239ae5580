/*
 * login - the login record and the login check (see login.h).
 *
 * @UNSAFE: NUL-separated field scanning with explicit lengths.
 */
#include "login.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

#include "ctl.h"
#include "name.h"
#include "pw.h"

/* a CRAM-MD5 context checked for unknown users, so that they cost the
 * same digest as a known one; never a match (see login_check) */
static const char dummy_cram[] =
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* login_user - LOCAL@DOMAIN or vpopmail's LOCAL%DOMAIN, checked, folded */
int login_user(const char *in, size_t len, struct str *local,
	       struct str *domain)
{
	const char *why, *at = memrchr(in, '@', len);

	if (!at)
		at = memrchr(in, '%', len);
	if (!at)
		return -EINVAL;
	if (name_local(in, (size_t)(at - in), local, &why) < 0 ||
	    name_domain(at + 1, len - (size_t)(at - in) - 1, domain, &why) < 0)
		return -EINVAL;
	return 0;
}

/* login_parse - HASH \0 CRAM \0 FLAGS \0 MAILDIR \0 QUOTA_BYTES \0
 * QUOTA_MSGS; V must be NUL-terminated after N bytes (a struct str is) */
int login_parse(const char *v, size_t n, struct login *out)
{
	const char *f[6];
	size_t len[6];
	unsigned long qb, qm;

	if (acct_fields(v, n, f, len, 6) < 0 ||
	    ctl_parse_ulong(f[2], &out->flags) < 0 ||
	    !acct_maildir_ok(f[3], len[3]) || ctl_parse_ulong(f[4], &qb) < 0 ||
	    ctl_parse_ulong(f[5], &qm) < 0)
		return -EILSEQ;
	out->quota.bytes = qb;
	out->quota.msgs = qm;
	if (str_copyb(&out->hash, f[0], len[0]) ||
	    str_copyb(&out->cram, f[1], len[1]) ||
	    str_copyb(&out->maildir, f[3], len[3]))
		return -ENOMEM;
	return 0;
}

/* login_get - USER's record; -ENOENT for no such account */
int login_get(const char *root, const char *user, size_t ulen,
	      struct login *out)
{
	struct str local = STR_INIT, domain = STR_INIT, rec = STR_INIT;
	int r = login_user(user, ulen, &local, &domain);

	if (r == -EINVAL)
		r = -ENOENT;	/* a name that cannot exist is not there */
	if (r == 0)
		r = acct_get(root, domain.s, ACCT_PASSWD, local.s, local.s,
			     local.len, &rec);
	if (r == 0)
		r = login_parse(rec.s, rec.len, out);
	str_trunc(&out->addr, 0);
	if (r == 0)
		r = str_catf(&out->addr, "%s@%s", local.s, domain.s);
	str_wipe(&rec);
	str_free(&local);
	str_free(&domain);
	return r;
}

/* login_check - a login by the rule of login.h */
int login_check(const char *root, const char *user, size_t ulen,
		const char *pass, const struct str *chal, const char *dummy,
		unsigned long deny, struct login *out)
{
	int r = login_get(root, user, ulen, out), known = r == 0;
	int damaged = r == -EILSEQ;
	char want[33];

	if (r < 0 && r != -ENOENT && !damaged)
		return r;
	/* the same work for an unknown user, an unusable hash or CRAM
	 * context, and a wrong password: no user enumeration (lib/pw) */
	if (!chal) {
		r = pw_verify(pass, known ? out->hash.s : NULL, dummy);
	} else {
		known = known && out->cram.len == PW_CRAM_HEX;
		r = pw_cram_digest(known ? out->cram.s : dummy_cram, chal->s,
				   chal->len, want);
		if (r < 0 || !known || strlen(pass) != 32 ||
		    CRYPTO_memcmp(want, pass, 32))
			r = -EACCES;
		explicit_bzero(want, sizeof want);
	}
	if (r == 0 && (out->flags & deny))
		r = -EPERM;
	/* a damaged record is a temporary failure, told only after the
	 * dummy work, so that it does not show the account exists early */
	if (damaged)
		r = -EILSEQ;
	if (r < 0)
		str_trunc(&out->addr, 0);	/* named only once logged in */
	return r;
}

/* login_dummy - the hash unknown users are checked against, of the
 * configured scheme so that it costs what a real one does; a decoy, so
 * that making it costs nothing: vchkpw makes one at every login */
int login_dummy(const char *root, struct str *out, struct str *scheme)
{
	int r = ctl_get(root, "passwordscheme", "yescrypt", scheme);

	if (r == 0)
		r = pw_decoy(scheme->s, out);
	if (r == -EINVAL) {
		r = pw_decoy("yescrypt", out);
		return r < 0 ? r : -EINVAL;
	}
	return r;
}

/* login_free - release a login, wiping what could stand for a password */
void login_free(struct login *l)
{
	str_wipe(&l->hash);
	str_wipe(&l->cram);
	str_free(&l->addr);
	str_free(&l->maildir);
}
