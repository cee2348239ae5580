/*
 * NAME
 *	facteur - make, check and run a Facteur root
 *
 * SYNOPSIS
 *	facteur init [--root DIR] [--hostname NAME] [--mailuser USER]
 *	             [--dev]
 *	facteur doctor [--root DIR]
 *	facteur run [--root DIR]
 *	facteur --help
 *
 * DESCRIPTION
 *	--root DIR may come anywhere; without it $FACTEUR_ROOT, else
 *	/var/facteur, is the root.
 *
 *	init creates a new root: the directories (ROOT and control/ 0755,
 *	everything else 0700), the control files that have no usable
 *	built-in default (me, listen.*, relayrules, mailuser), the account
 *	database, empty assign.cdb and rcpthosts.cdb, and a self-signed
 *	EC P-256 certificate for the host name, valid ten years. --dev
 *	listens on 127.0.0.1 ports 2525, 2587, 2465, 2110, 2995 and adds
 *	localhost and 127.0.0.1 to the certificate. --mailuser sets
 *	control/mailuser (default facteur), the user init makes as root. A
 *	root that already has control/ is left alone. init (init.c) stops at the first
 *	failure and says what is left half made.
 *
 *	doctor (doctor.c) runs a table of checks and prints one line each:
 *	"ok NAME", "warn NAME: ..." or "FAIL NAME: ..."; "services" says
 *	which program facteur run could not start, and why, beforehand.
 *
 *	run (run.c) is the supervisor. It binds the listen.* sockets of
 *	the services, then starts mta-smtpd, mta-send and pop3d from its
 *	own directory (those that are built), with "--root ROOT", as the
 *	mail user, each with its own sockets, restarts any that dies after a backoff (1 s doubling
 *	to 60 s, back to 1 s once a child stayed up 60 s), copies every
 *	line they print to ROOT/log/current and to its own stdout, rotates
 *	the log past 16 MiB keeping ten old files (runlog.c), and every
 *	60 s removes POP-before-SMTP grants in open-smtp/ older than
 *	control/popbeforesmtp. SIGTERM or SIGINT stops the children
 *	(SIGTERM, then SIGKILL after 10 s) and exits 0.
 *
 * SECURITY
 *	Not exposed to the network; it reads only files of the root and
 *	its command line. What each subcommand does with root privilege:
 *
 *	command  as root                               as another user
 *	init     makes the root, runs useradd (argv,   makes the root as
 *	         no shell, clean environment) for      that user
 *	         control/mailuser, then lchowns
 *	         everything below ROOT to that user
 *	doctor   drops to the mail user (when it       checks as that user
 *	         exists) before any check, so it sees
 *	         what the services see and writes
 *	         nothing as root; only stat()s the
 *	         service programs as root first, then
 *	         tests them with access() as the user
 *	run      binds the services' listen.* ports,   runs as that user,
 *	         then starts each service already as   binds the same way
 *	         the mail user (priv_drop in the
 *	         child before execve) with its
 *	         sockets in FACTEUR_LISTEN_FDS; stays
 *	         root only to bind, spawn and signal;
 *	         the log file it creates is given to
 *	         the mail user; it deletes stale
 *	         grants, never following a link
 *
 *	No path is built from anything but the root and fixed names; no
 *	symbolic link is followed where a directory or file of ours is
 *	expected. The private key is written 0600 and never logged.
 *
 * EXIT STATUS
 *	0	done (doctor: no check failed; run: stopped by a signal)
 *	1	refused: init on an existing root, doctor found a FAIL
 *	2	usage error
 *	111	system error (a file could not be made, out of memory)
 *
 * DIAGNOSTICS
 *	Errors are one line on stderr starting with "facteur: ". run's own
 *	events are log lines with the service name "facteur".
 *
 * BUGS
 *	run writes to its stdout with blocking writes: a reader that stops
 *	reading stalls the log. A grant refreshed by pop3d between run's
 *	stat and unlink is removed; the next login makes it again.
 *
 * SEE ALSO
 *	vadmin(8), docs/, SPEC.md "The root".
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "facteur.h"
#include "msg.h"
#include "str.h"

const struct layout_dir layout_dirs[] = {
	{"control", 0755},
	{"control/domains", 0700},
	{"control/passwd", 0700},
	{"control/tls", 0700},
	{"db", 0700},
	{"domains", 0700},
	{"queue", 0700},
	{"queue/tmp", 0700},
	{"queue/new", 0700},
	{"queue/msg", 0700},
	{"queue/quarantine", 0700},
	/* local users' sendmail: anyone may add a file, nobody but the mail
	 * user may list them, nobody may remove another's (sticky) */
	{"drop", 01733},
	{"open-smtp", 0700},
	{"log", 0700},
};
const size_t layout_count = sizeof layout_dirs / sizeof layout_dirs[0];

static const char usage_text[] =
	"usage: facteur init [--root DIR] [--hostname NAME] [--mailuser USER]\n"
	"                    [--dev]\n"
	"       facteur doctor [--root DIR] [--json] [--fix] [--timing]\n"
	"       facteur run [--root DIR]\n"
	"       facteur --help\n";

/* usage_die - one-line complaint plus the usage on stderr, exit 2 */
void usage_die(const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;

	va_start(ap, fmt);
	if (str_vcatf(&line, fmt, ap) < 0)
		line.len = 0;
	va_end(ap);
	msg_usage(usage_text, "%s", str_cstr(&line));
}

static const struct {
	const char *name;
	int (*fn)(const char *root, int argc, char **argv);
} commands[] = {
	{"init", cmd_init},
	{"doctor", cmd_doctor},
	{"run", cmd_run},
};

/* std_fds - make sure 0, 1 and 2 are open, so that no file we open
 * (the log, a database) becomes stdout or stderr by accident */
static void std_fds(void)
{
	int fd;

	do {
		fd = open("/dev/null", O_RDWR);
		if (fd < 0)
			exit(EX_TEMP);
	} while (fd <= 2);
	close(fd);
}

/* main - common options, then dispatch on the subcommand */
int main(int argc, char **argv)
{
	const char *root;
	size_t i;

	std_fds();
	msg_init(argv[0]);
	/* files we make are private unless a mode is given on purpose */
	umask(077);
	if (args_has_help(argc, argv)) {
		if (fputs(usage_text, stdout) == EOF || fflush(stdout) == EOF)
			return EX_TEMP;
		return EX_DONE;
	}
	root = args_root(&argc, argv);
	if (!root)
		usage_die("--root needs a directory");
	if (argc < 2)
		usage_die("no command given");
	for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(root, argc - 1, argv + 1);
	if (argv[1][0] == '-')
		usage_die("unknown option %s", argv[1]);
	usage_die("unknown command %s", argv[1]);
}
