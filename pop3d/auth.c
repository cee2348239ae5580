/*
 * auth - checking a POP3 login against the passwd tables.
 *
 * The record of LOCAL in the domain's passwd CDB (docs/architecture.md) is
 * HASH \0 CRAM \0 FLAGS \0 MAILDIR \0 QUOTA_BYTES \0 QUOTA_MSGS. The
 * password is checked first and the flags after, so that someone guessing
 * passwords learns nothing about an account, not even that POP3 is off
 * for it. A user name that is malformed, in no hosted domain, or unknown
 * costs a check against cfg->dummy, a hash of the configured scheme made
 * at start-up, so that it takes as long as a wrong password.
 *
 * auth_check() returns AUTH_OK, -EACCES (no such user or wrong password:
 * the client is told the same for both), -EPERM (POP3 disabled for the
 * user), or another negative errno code for a lookup that failed (a
 * temporary error: the client is told to try later). The user name never
 * leaves this file unless the login succeeded, and the password never.
 */
#include <errno.h>
#include <string.h>

#include "acct.h"
#include "pop3d.h"
#include "pw.h"

#define FLAG_NOPOP 1

/* field - the k-th NUL-separated field of a record */
static int field(const struct str *rec, unsigned k, const char **s,
		 size_t *len)
{
	const char *p = rec->s, *end = rec->s + rec->len;

	for (;;) {
		const char *z = memchr(p, 0, (size_t)(end - p));

		if (k == 0) {
			*s = p;
			*len = z ? (size_t)(z - p) : (size_t)(end - p);
			return 0;
		}
		if (!z)
			return -EILSEQ;
		p = z + 1;
		k--;
	}
}

/* maildir_ok - what vadmin writes: domains/..., relative, no "..", no
 * control bytes; anything else in a table means it was not vadmin's */
static int maildir_ok(const char *s, size_t len)
{
	size_t i;

	if (len < 9 || memcmp(s, "domains/", 8) || s[len - 1] == '/')
		return 0;
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
		if (s[i] == '.' && s[i - 1] == '/' &&
		    (i + 1 == len || s[i + 1] == '/' ||
		     (s[i + 1] == '.' && (i + 2 == len || s[i + 2] == '/'))))
			return 0;
	}
	return 1;
}

/* flags_of - the FLAGS field as a number (empty means 0) */
static unsigned long flags_of(const char *s, size_t len)
{
	unsigned long v = 0;

	if (len && proto_num(s, len, &v) < 0)
		return 0;
	return v;
}

/* auth_check - user (as the client typed it) and password */
int auth_check(const struct cfg *cfg, const char *user, size_t ulen,
	       const char *pass, struct login *out)
{
	struct str local = STR_INIT, domain = STR_INIT, rec = STR_INIT;
	struct str hash = STR_INIT;
	const char *s = NULL;
	size_t len = 0;
	int r, known = 0;

	r = proto_user(user, ulen, &local, &domain);
	if (r == 0) {
		r = acct_get(cfg->root, domain.s, ACCT_PASSWD, local.s,
			     local.s, local.len, &rec);
		if (r == 0 && field(&rec, 0, &s, &len) == 0 &&
		    str_copyb(&hash, s, len) == 0)
			known = 1;
		else if (r == 0)
			r = -EILSEQ;
	}
	/* -EINVAL: a name that cannot exist, -ENOENT: not hosted or no
	 * such user; both are a wrong login, not a broken server */
	if (r == -EINVAL || r == -ENOENT)
		r = -EACCES;
	if (r < 0 && r != -EACCES)
		goto out;
	/* an unknown user and an unusable hash ("!", damaged) as slow as
	 * a wrong password (lib/pw) */
	r = pw_verify(pass, known ? hash.s : NULL, cfg->dummy.s);
	if (r < 0)
		goto out;
	if (field(&rec, 2, &s, &len) == 0 && (flags_of(s, len) & FLAG_NOPOP)) {
		r = -EPERM;
		goto out;
	}
	if (field(&rec, 3, &s, &len) < 0 || !maildir_ok(s, len)) {
		r = -EILSEQ;
		goto out;
	}
	out->addr.len = out->maildir.len = 0;
	if (str_catb(&out->addr, local.s, local.len) ||
	    str_catc(&out->addr, '@') ||
	    str_catb(&out->addr, domain.s, domain.len) ||
	    str_copyb(&out->maildir, s, len))
		r = -ENOMEM;
out:
	if (hash.s)
		explicit_bzero(hash.s, hash.len);
	str_free(&local);
	str_free(&domain);
	str_free(&rec);
	str_free(&hash);
	return r;
}

/* login_free - release a login */
void login_free(struct login *l)
{
	str_free(&l->addr);
	str_free(&l->maildir);
}
