/*
 * vchkpw - the parts of vchkpw that are not main(): reading and parsing
 * what Dovecot writes on descriptor 3, which account flag a service
 * obeys, and the userdb fields of an account (vchkpw/input.c).
 *
 * cpw_read() reads descriptor FD to its end into OUT, at most CPW_MAX
 * bytes: 0, -EMSGSIZE for more, -EBADF when FD is not open, another
 * negative errno code for a read error.
 *
 * cpw_parse() splits that input, the checkpassword protocol's
 *   USER \0 PASSWORD \0 TIMESTAMP \0
 * (Dovecot leaves TIMESTAMP empty; it is ignored, and may be missing):
 * 0, with USER and PASSWORD pointing into BUF (PASSWORD NUL-terminated);
 * -EMSGSIZE past CPW_MAX bytes; -EINVAL when USER or PASSWORD has no NUL
 * after it. An empty USER parses: it is an unknown user, refused after
 * the same work as a wrong password.
 *
 * cpw_deny() is the account flag (lib/acct.h) that shuts SERVICE (Dovecot's
 * $SERVICE) out: ACCT_NOSMTP for "smtp" and "submission", ACCT_NOPOP
 * for everything else (imap, pop3, and any other way into a mailbox).
 *
 * cpw_userdb() writes the userdb fields Dovecot needs for the account L
 * under ROOT (absolute): HOME (the user's directory, the Maildir's
 * parent), MAIL ("maildir:" and the Maildir) and QUOTA (a quota_rule of
 * the maildir quota backend: "*:bytes=B", and ":messages=M" when there is
 * a message limit; to Dovecot as to Facteur 0 bytes is no limit, and a
 * rule is always given so that no global default applies to an account
 * that has none). -EINVAL when ROOT is not
 * absolute or holds a control byte (a TAB or line end would break
 * Dovecot's reply), when the Maildir is not DIR/Maildir, or -ENOMEM.
 */
#ifndef FACTEUR_VCHKPW_H
#define FACTEUR_VCHKPW_H

#include <stddef.h>

#include "login.h"
#include "str.h"

#define CPW_MAX 512	/* the checkpassword protocol's limit */

struct cpw_in {
	const char *user;
	size_t ulen;
	const char *pass;	/* NUL-terminated, in the input */
};

struct cpw_userdb {
	struct str home, mail, quota;
};

#define CPW_USERDB_INIT {STR_INIT, STR_INIT, STR_INIT}

int cpw_read(int fd, struct str *out);
int cpw_parse(const char *buf, size_t len, struct cpw_in *in);
unsigned long cpw_deny(const char *service);
int cpw_userdb(const char *root, const struct login *l,
	       struct cpw_userdb *u);
void cpw_userdb_free(struct cpw_userdb *u);

#endif
