/*
 * NAME
 *	mta-rules - compile control/relayrules into control/relayrules.cdb
 *
 * SYNOPSIS
 *	mta-rules [--root DIR]
 *
 * DESCRIPTION
 *	Reads the client-IP rules of control/relayrules (tcprules syntax;
 *	lib/rules.h lists what an address may be) and writes
 *	control/relayrules.cdb atomically: a temporary file, fsync, rename,
 *	fsync of the directory. mta-smtpd reads the CDB at every connection,
 *	so a change takes effect for the next client, without a restart.
 *	Every rule is checked before anything is written: a bad rule leaves
 *	the old CDB in place. Prints "N rules" on success.
 *
 * SECURITY
 *	Reads one control file and writes one. Started as root it becomes
 *	the mail user first, so the CDB belongs to the services' user.
 *
 * EXIT STATUS
 *	0 compiled, 1 a rule is invalid (nothing changed), 2 usage,
 *	111 a file could not be read or written.
 *
 * SEE ALSO
 *	lib/rules.h, docs/smtpd.md, tcprules(1)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "msg.h"
#include "priv.h"
#include "rules.h"

static const char usage_text[] = "usage: mta-rules [--root DIR]\n";

int main(int argc, char **argv)
{
	struct str err = STR_INIT;
	unsigned long n = 0;
	const char *root;
	int r;

	msg_init(argv[0]);
	umask(022);
	root = args_start(&argc, argv, usage_text);
	if (argc > 1)
		msg_usage(usage_text, argv[1][0] == '-' ? "unknown option %s" :
			  "unexpected argument %s", argv[1]);
	priv_start(root);
	r = rules_compile(root, &err, &n);
	if (r == -EINVAL)
		msg_die(1, "%s/control/relayrules: %s; nothing changed", root,
			str_cstr(&err));
	if (r < 0)
		msg_die(111, "cannot compile %s/control/relayrules: %s", root,
			msg_err(r));
	printf("%lu rules\n", n);
	str_free(&err);
	return 0;
}
