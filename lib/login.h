/*
 * login - an account's login record and the login check of mta-smtpd
 * (SMTP AUTH) and pop3d (USER/PASS, AUTH): one rule in one place.
 *
 * login_user() splits a login name, LOCAL@DOMAIN or vpopmail's
 * LOCAL%DOMAIN, at the last '@' (else '%'), checks and folds both halves
 * as vadmin stored them; -EINVAL otherwise. login_parse() reads a passwd
 * record (docs/architecture.md "Generated tables"),
 *   HASH \0 CRAM \0 FLAGS \0 MAILDIR \0 QUOTA_BYTES \0 QUOTA_MSGS
 * NUL-terminated after its N bytes: six fields, decimal numbers, MAILDIR
 * as vadmin writes it (under domains/, no "." or ".." component, no
 * control byte); else -EILSEQ. login_get() looks a user up and parses
 * its record: -ENOENT for a name that cannot exist, a domain not hosted
 * or no such user, acct_get()'s errors (-EIO) otherwise.
 *
 * login_check() is the login: PASS is a password, or with CHAL the
 * CRAM-MD5 digest (RFC 2195, HMAC-MD5 of CHAL keyed by the password,
 * from the stored CRAM context, lib/pw). DENY is the flag that shuts the
 * asking service out (ACCT_NOPOP, ACCT_NOSMTP). It returns 0 (OUT is the
 * account), -EACCES (unknown user or wrong credentials: tell the client
 * the same), -EPERM (right credentials but DENY set, tested only after
 * them so that a guesser learns nothing of the flags), or another code
 * for a table that cannot be read (a temporary failure). An unknown user,
 * an unusable hash and a missing CRAM context cost what a wrong password
 * does (a check against DUMMY, a hash of the configured scheme, or a
 * digest from a fixed context) and are refused. login_dummy() makes
 * DUMMY with the scheme named in control/passwordscheme (its text left
 * in SCHEME): 0, -EINVAL (an unknown scheme: yescrypt made instead), or
 * another negative code. DUMMY is a decoy (lib/pw pw_decoy): a check
 * against it costs a real one, making it costs nothing, which matters to
 * vchkpw, a process per login.
 */
#ifndef FACTEUR_LOGIN_H
#define FACTEUR_LOGIN_H

#include <stddef.h>

#include "acct.h"
#include "name.h"
#include "pw.h"
#include "quota.h"
#include "str.h"

/* a login name at its longest, LOCAL@DOMAIN, and the base64 of the longest
 * AUTH PLAIN response (AUTHZID \0 USER \0 PASSWORD): each login path's
 * line bound must hold them beside PW_MAX, as it asserts */
#define LOGIN_ADDR_MAX (NAME_LOCAL_MAX + 1 + NAME_DOMAIN_MAX)
#define LOGIN_PLAIN_B64_MAX ((2 * LOGIN_ADDR_MAX + 2 + PW_MAX + 2) / 3 * 4)

struct login {
	struct str addr;	/* local@domain, folded */
	struct str hash;	/* crypt(3) hash */
	struct str cram;	/* CRAM-MD5 context, 64 hex digits, or "" */
	unsigned long flags;	/* ACCT_NOPOP, ACCT_NOSMTP, ... */
	struct str maildir;	/* relative to the root */
	struct quota quota;
};

#define LOGIN_INIT {STR_INIT, STR_INIT, STR_INIT, 0, STR_INIT, {0, 0}}

int login_user(const char *in, size_t len, struct str *local,
	       struct str *domain);
int login_parse(const char *v, size_t n, struct login *out);
int login_get(const char *root, const char *user, size_t ulen,
	      struct login *out);
int login_check(const char *root, const char *user, size_t ulen,
		const char *pass, const struct str *chal, const char *dummy,
		unsigned long deny, struct login *out);
int login_dummy(const char *root, struct str *out, struct str *scheme);
void login_free(struct login *l);

#endif
