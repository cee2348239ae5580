/*
 * vpopparse - the lines of a vpopmail tree, parsed without touching a file.
 *
 * `vadmin import-vpopmail` (vpopimport.c) reads these; each parser here
 * takes one line or one name and says what it holds, so that the rules
 * are tested (tests/unit/test_vpop.c) and fuzzed (tests/fuzz/fuzz_vpop.c)
 * alone. The facts come from vpopmail's own source (vcdb.c, vpopmail.h,
 * vpopmail.c, vdelivermail.c, vpalias.c, valias.c):
 *
 *   vpasswd     NAME:CRYPTED:UID:GID:GECOS:DIR:QUOTA[:CLEARPASS], one user
 *               a line; GID holds the flag bits (vpopmail.h NO_POP ...),
 *               DIR the user's directory (absolute; hashed in big domains:
 *               .../domains/D/0/bob), QUOTA `NOQUOTA`, bytes, `NS`, `NS,MC`
 *               (older trees: `50M`, `1MB`, `5mbs`), CLEARPASS present when
 *               vpopmail was built with --enable-clear-passwd.
 *   users/assign  +NAME-:REAL:UID:GID:DIR:-:: a domain, an alias domain
 *               when NAME is not REAL (or shares REAL's DIR).
 *   .qmail-X    X is an alias, ':' standing for '.'; `.qmail-default` is
 *               the catch-all (`| .../vdelivermail '' ARG`), `.qmail-X-default`
 *               an extension default. Lines: `#` comment, `|prog`, `/path`
 *               or `./path` (a Maildir when it ends in '/', else an mbox),
 *               `&addr` or `addr`.
 *   valias -s   ALIAS@DOMAIN -> LINE (LINE as in a .qmail file): the form
 *               in which vpopmail's valias table is exported.
 *
 * Every function returns 0 (or a kind, >= 0) or -EINVAL; *why_r, where
 * there is one, gets a phrase for the report.
 */
#ifndef FACTEUR_VPOPPARSE_H
#define FACTEUR_VPOPPARSE_H

#include "quota.h"
#include "str.h"

/* vpopmail.h's gid flag bits that Facteur has (lib/acct.h) */
#define VPP_NO_POP 0x02ul
#define VPP_BOUNCE_MAIL 0x10ul
#define VPP_NO_SMTP 0x800ul

struct vpp_user {
	char *name, *pass, *uid, *gid, *gecos, *dir, *quota;
	char *clear;		/* NULL: no eighth field */
};

int vpp_passwd(char *line, struct vpp_user *u, const char **why_r);
int vpp_flags(const char *gid, int *acct_r, unsigned long *dropped_r);
const char *vpp_flag_name(unsigned long bit);
int vpp_quota(const char *s, struct quota *q);

/* what a password field is */
#define VPP_PW_KEEP 0	/* $1$, $6$, $y$: stored as it is */
#define VPP_PW_EMPTY 1
#define VPP_PW_OTHER 2	/* DES, SHA-256-crypt, bcrypt, anything else */
int vpp_hash(const char *h, const char **scheme_r);

int vpp_rel(const char *path, const char *domrel, struct str *rel);

/* .qmail file names */
#define VPP_Q_ALIAS 0
#define VPP_Q_DEFAULT 1		/* .qmail-default: the catch-all */
#define VPP_Q_EXTDEFAULT 2	/* .qmail-X-default */
int vpp_qmail_name(const char *fname, struct str *local);

/* .qmail lines */
#define VPP_L_SKIP 0		/* blank or comment */
#define VPP_L_PROGRAM 1
#define VPP_L_ADDRESS 2
#define VPP_L_MAILDIR 3
#define VPP_L_MBOX 4
int vpp_qmail_line(char *line, char **arg_r);
int vpp_vdelivermail(const char *cmd, struct str *arg);

struct vpp_assign {
	char *name, *real, *dir;
};
int vpp_assign(char *line, struct vpp_assign *a);
int vpp_valias(char *line, char **alias_r, char **dest_r);

#endif
