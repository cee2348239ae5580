/*
 * NAME
 *	vchkpw - Facteur's accounts for Dovecot: a checkpassword program
 *
 * SYNOPSIS
 *	vchkpw [--root DIR] PROGRAM [ARG...]     (run by Dovecot's auth)
 *
 * DESCRIPTION
 *	Dovecot's passdb and userdb "checkpassword" (qmail's interface, as
 *	vpopmail's vchkpw spoke it): reads USER \0 PASSWORD \0 TIMESTAMP \0
 *	(at most 512 bytes) on descriptor 3 and checks them by lib/login,
 *	the very check of pop3d and mta-smtpd: the account's passwd record
 *	from the generated tables, the same dummy work for an unknown user
 *	as for a wrong password, the account flag of the service in
 *	$SERVICE (imap and pop3 obey "vadmin moduser --disable pop", smtp
 *	and submission "--disable smtp"). On success it puts the account in
 *	the environment for Dovecot's checkpassword-reply and executes
 *	PROGRAM with its arguments: USER (the folded address), HOME (the
 *	user's directory), userdb_uid and userdb_gid (its own: the mail
 *	user's), userdb_mail (maildir:ROOT/domains/D/U/Maildir, the Maildir
 *	vdeliver writes), userdb_quota_rule (the account's quota, for the
 *	maildir quota backend, which reads and writes maildirsize as
 *	vdeliver and pop3d do), and EXTRA naming the userdb_ fields. A
 *	password login from $TCPREMOTEIP touches open-smtp/IP, the
 *	POP-before-SMTP grant, as a pop3d login does (lib/grant).
 *
 *	With AUTHORIZED=1 in the environment (Dovecot's userdb lookups, and
 *	passdb lookups that carry no password) no password is checked, the
 *	account's flags are not looked at and no grant is made; it sets
 *	AUTHORIZED=2, so that checkpassword-reply exits 2, Dovecot's success
 *	of a lookup. CREDENTIALS_LOOKUP=1 (a mechanism such as CRAM-MD5
 *	asking for the password itself) is not supported: Facteur keeps no
 *	password Dovecot could use (docs/imap.md).
 *	docs/imap.md has the Dovecot configuration (contrib/dovecot/).
 *
 * SECURITY
 *	Runs as Dovecot's auth service, which must be the mail user (it
 *	reads control/passwd/, 0700): as root it refuses to start, because
 *	dropping to the mail user would make checkpassword-reply refuse the
 *	result (Dovecot's defence against a setuid checkpassword being
 *	traced), and staying root would parse what clients sent as root.
 *	Everything on descriptor 3 comes from a client: it is bounded (512
 *	bytes, more is refused), split on NULs with lengths, and the user
 *	name goes through lib/login's checks before it reaches a table. The
 *	password is never logged and is wiped before PROGRAM runs. The
 *	grant's name is the address of $TCPREMOTEIP in its one spelling,
 *	never other text. PROGRAM is executed with execvp and an argument
 *	vector, never a shell; the environment is Dovecot's plus the fields
 *	above.
 *
 * EXIT STATUS
 *	The checkpassword contract: PROGRAM's status on success (0; 2 for a
 *	lookup, from checkpassword-reply); 1 wrong password, unknown user or
 *	the service disabled for the account; 2 misuse (no PROGRAM, no
 *	descriptor 3, input over 512 bytes or without its NULs, a relative
 *	--root); 3 no such user in a lookup; 111 a temporary failure (the
 *	tables cannot be read, a damaged record, run as root, PROGRAM cannot
 *	be executed).
 *
 * DIAGNOSTICS
 *	One line on stderr, which Dovecot writes to its log, "vchkpw: " and
 *	what happened and what to do, for every status but 0 and 1; and for a
 *	right password refused by a disabled service.
 *
 * BUGS
 *	One process per login (Dovecot 2.3 does not cache a checkpassword
 *	passdb), most of it the password hash (docs/imap.md, "Costs"). No
 *	CRAM-MD5 through Dovecot. Dovecot 2.4 has no checkpassword driver.
 *
 * SEE ALSO
 *	docs/imap.md, pop3d(8), vadmin(8), Dovecot's checkpassword
 *	documentation, D. J. Bernstein's checkpassword interface.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "grant.h"
#include "login.h"
#include "msg.h"
#include "peer.h"
#include "vchkpw.h"

#define EXIT_BAD 1
#define EXIT_MISUSE 2
#define EXIT_NOUSER 3
#define EXIT_TEMP 111

static const char usage_text[] =
	"usage: vchkpw [--root DIR] PROGRAM [ARG...]\n"
	"  Dovecot's checkpassword passdb and userdb: USER\\0PASSWORD\\0 on\n"
	"  descriptor 3; on success runs PROGRAM (checkpassword-reply)\n"
	"  with the account in its environment (docs/imap.md)\n";

/* put - one environment variable, or a temporary failure */
static void put(const char *name, const char *value)
{
	if (setenv(name, value, 1) < 0)
		msg_die(EXIT_TEMP, "cannot set %s: %s", name, strerror(errno));
}

/* export - the account for checkpassword-reply */
static void export(const char *root, const struct login *l)
{
	struct cpw_userdb u = CPW_USERDB_INIT;
	struct str id = STR_INIT;
	int r = cpw_userdb(root, l, &u);

	if (r < 0)
		msg_die(EXIT_TEMP, "cannot name the mailbox of %s under %s: %s; "
			"use an absolute --root without control bytes and run "
			"vadmin check", l->addr.s, root, msg_err(r));
	put("USER", l->addr.s);
	put("HOME", u.home.s);
	put("userdb_mail", u.mail.s);
	put("userdb_quota_rule", u.quota.s);
	/* our own ids: we run as the mail user, who owns every Maildir */
	if (str_catu(&id, getuid()))
		msg_die(EXIT_TEMP, "out of memory");
	put("userdb_uid", id.s);
	str_trunc(&id, 0);
	if (str_catu(&id, getgid()))
		msg_die(EXIT_TEMP, "out of memory");
	put("userdb_gid", id.s);
	put("EXTRA", "userdb_uid userdb_gid userdb_mail userdb_quota_rule");
	str_free(&id);
	cpw_userdb_free(&u);
}

/* grant - POP-before-SMTP for the client of a password login */
static void grant(const char *root)
{
	const char *env = getenv("TCPREMOTEIP");
	char ip[PEER_TEXT_MAX];
	int r;

	if (!env || peer_parse(env, ip, sizeof ip) < 0)
		return;		/* no client address: nothing to grant */
	r = grant_touch(root, ip);
	if (r < 0)
		msg_warn("cannot touch %s/open-smtp/%s: %s; run facteur doctor",
			 root, ip, msg_err(r));
}

/* check - a password login: returns only when it succeeded */
static void check(const char *root, const struct cpw_in *in,
		  struct login *l)
{
	struct str dummy = STR_INIT, scheme = STR_INIT;
	int r = login_dummy(root, &dummy, &scheme);

	if (r < 0 && r != -EINVAL)
		msg_die(EXIT_TEMP, "cannot make the dummy hash: %s", msg_err(r));
	r = login_check(root, in->user, in->ulen, in->pass, NULL, dummy.s,
			cpw_deny(getenv("SERVICE")), l);
	str_free(&dummy);
	str_free(&scheme);
	if (r == -EACCES)
		exit(EXIT_BAD);
	if (r == -EPERM) {
		msg_warn("%.*s: %s is disabled for the account (vadmin moduser "
			 "--enable %s)", (int)(in->ulen > 128 ? 128 : in->ulen),
			 in->user, getenv("SERVICE") ? getenv("SERVICE") :
			 "mail access", cpw_deny(getenv("SERVICE")) ==
			 ACCT_NOSMTP ? "smtp" : "pop");
		exit(EXIT_BAD);
	}
	if (r < 0)
		msg_die(EXIT_TEMP, "cannot check the login of %.*s: %s; run "
			"vadmin check", (int)(in->ulen > 128 ? 128 : in->ulen),
			in->user, msg_err(r));
}

/* lookup - an AUTHORIZED lookup: the account, no password */
static void lookup(const char *root, const struct cpw_in *in,
		   struct login *l)
{
	int r = login_get(root, in->user, in->ulen, l);

	if (r == -ENOENT)
		exit(EXIT_NOUSER);
	if (r < 0)
		msg_die(EXIT_TEMP, "cannot look %.*s up: %s; run vadmin check",
			(int)(in->ulen > 128 ? 128 : in->ulen), in->user,
			msg_err(r));
	put("AUTHORIZED", "2");
}

/* get_input - descriptor 3, read and split */
static void get_input(struct str *buf, struct cpw_in *in)
{
	int r = cpw_read(3, buf);

	if (r == -EBADF)
		msg_die(EXIT_MISUSE, "descriptor 3 is not open: vchkpw is run "
			"by Dovecot's checkpassword passdb (docs/imap.md)");
	if (r == -EMSGSIZE)
		msg_die(EXIT_MISUSE, "more than %d bytes on descriptor 3",
			CPW_MAX);
	if (r < 0)
		msg_die(EXIT_MISUSE, "cannot read descriptor 3: %s",
			msg_err(r));
	(void)close(3);
	if (cpw_parse(buf->s ? buf->s : "", buf->len, in) < 0)
		msg_die(EXIT_MISUSE, "descriptor 3 does not hold USER\\0"
			"PASSWORD\\0");
}

int main(int argc, char **argv)
{
	struct str buf = STR_INIT;
	struct login l = LOGIN_INIT;
	struct cpw_in in;
	const char *root, *auth;

	msg_init(argv[0]);
	root = args_start_env(&argc, argv, usage_text, "");
	if (argc > 1 && !strcmp(argv[1], "--"))
		argc--, argv++;
	else if (argc > 1 && argv[1][0] == '-')
		msg_usage(usage_text, "unknown option %s", argv[1]);
	if (argc < 2)
		msg_usage(usage_text, "no PROGRAM to run (Dovecot gives "
			  "checkpassword-reply)");
	if (*root != '/')
		msg_usage(usage_text, "--root %s is not an absolute path: "
			  "Dovecot needs absolute mail paths", root);
	if (geteuid() == 0)
		msg_die(EXIT_TEMP, "refusing to run as root: run Dovecot's auth "
			"service as the mail user (service auth { user = "
			"facteur }, docs/imap.md)");
	get_input(&buf, &in);
	auth = getenv("AUTHORIZED");
	if (auth && !strcmp(auth, "1")) {
		if (getenv("CREDENTIALS_LOOKUP"))
			msg_die(EXIT_TEMP, "Dovecot asked for a password to "
				"compare itself (CRAM-MD5, DIGEST-MD5...): "
				"Facteur keeps none; set auth_mechanisms = "
				"plain login");
		lookup(root, &in, &l);
	} else {
		check(root, &in, &l);
		grant(root);
	}
	str_wipe(&buf);
	export(root, &l);
	login_free(&l);
	execvp(argv[1], argv + 1);
	msg_die(EXIT_TEMP, "cannot run %s: %s", argv[1], strerror(errno));
}
