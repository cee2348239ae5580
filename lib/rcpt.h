/*
 * rcpt - what a local address of a hosted domain delivers to.
 *
 * vdeliver, and mta-smtpd when it decides at RCPT whether an address
 * exists, look a local part up in the delivery table of the real domain
 * (lib/acct.h, docs/architecture.md "Generated tables") in one order:
 *
 *   1. the local part as given, then each shorter prefix that ends just
 *      before a '-' (qmail's extension) or a '+' (Postfix's), longest
 *      first: "a-b+c" tries "a-b+c", "a-b", "a". For each name, a mailbox
 *      ("u" NAME) and then an alias ("a" NAME); the first found wins. The
 *      longest existing prefix wins, so a user "john-doe" gets
 *      "john-doe-lists" before a user "john" does.
 *   2. else the domain's catch-all ("*"), if the caller allows it.
 *
 * For a mailbox its forward ("f" NAME) is looked up as well.
 * rcpt_ext_prev(local, len) is the length of the next shorter name to
 * try, 0 when there is none (a '-' or '+' in the first byte never
 * splits). rcpt_find() returns 0 (found), -ENOENT (nothing, not even a
 * catch-all record; also when the domain is not in assign.cdb), -ENOMEM,
 * or the errors of acct_get() (-EIO: a table file, assign.cdb included,
 * is missing).
 *
 * rcpt_accepts() is the verdict of mta-smtpd at RCPT, by the same rule:
 * RCPT_OK (a mailbox that takes mail, an alias, a catch-all other than
 * "bounce" or empty: "delete" and an address are accepted), RCPT_NO_USER,
 * RCPT_DISABLED (a mailbox whose delivery is off, which vdeliver would
 * refuse), or a negative error. It judges the first hop only: where an
 * alias, a forward or a catch-all leads is not followed, so vdeliver may
 * still bounce such an address later if its destination is gone.
 *
 * The parsers turn record values into fields: rcpt_parse_user() reads
 * MAILDIR \0 QUOTA_BYTES \0 QUOTA_MSGS \0 FLAGS, rcpt_parse_forward()
 * KEEP \0 DEST (DEST points into the value); an alias value is
 * DEST \0 DEST ... as it stands. They return 0, -EILSEQ for a malformed
 * record (a MAILDIR not as vadmin writes it: acct_maildir_ok), or
 * (rcpt_parse_user) -ENOMEM. rcpt_free() and rcpt_user_free()
 * release what the others filled in.
 */
#ifndef FACTEUR_RCPT_H
#define FACTEUR_RCPT_H

#include <stddef.h>

#include "quota.h"
#include "str.h"

/* how far one recipient may lead: vdeliver follows aliases and forwards
 * RCPT_DEPTH_MAX in a row and delivers to at most RCPT_TARGETS_MAX
 * destinations (5.4.6, 5.5.3); vadmin stores no alias with more */
#define RCPT_DEPTH_MAX 10
#define RCPT_TARGETS_MAX 1000

#define RCPT_USER 1
#define RCPT_ALIAS 2
#define RCPT_CATCHALL 3

struct rcpt {
	int kind;		/* RCPT_USER, RCPT_ALIAS or RCPT_CATCHALL */
	struct str name;	/* the name that matched (a prefix for an extension) */
	struct str val;		/* its record */
	struct str fwd;		/* a mailbox's forward record, if has_fwd */
	int has_fwd;
};

#define RCPT_INIT {0, STR_INIT, STR_INIT, STR_INIT, 0}

struct rcpt_user {
	struct str maildir;	/* relative to the root */
	struct quota quota;
	unsigned long flags;
};

#define RCPT_USER_INIT {STR_INIT, {0, 0}, 0}

/* rcpt_accepts() */
#define RCPT_OK 0
#define RCPT_NO_USER 1
#define RCPT_DISABLED 2

size_t rcpt_ext_prev(const char *local, size_t len);
int rcpt_accepts(const char *root, const char *real, const char *local);
int rcpt_find(const char *root, const char *real, const char *local,
	      int catchall, struct rcpt *r);
int rcpt_parse_user(const char *v, size_t n, struct rcpt_user *u);
int rcpt_parse_forward(const char *v, size_t n, int *keep_r,
		       const char **dest_r, size_t *dlen_r);
void rcpt_free(struct rcpt *r);
void rcpt_user_free(struct rcpt_user *u);

#endif
