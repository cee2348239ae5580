/*
 * NAME
 *	mta-smtpd - the SMTP server: MX, submission and implicit TLS
 *
 * SYNOPSIS
 *	mta-smtpd [--root DIR]
 *	mta-smtpd [--root DIR] --inetd [--submission | --smtps]
 *
 * DESCRIPTION
 *	Without --inetd it listens on the sockets given by `facteur run` in
 *	$FACTEUR_LISTEN_FDS, else it binds every address of
 *	control/listen.smtp (port 25 behaviour), control/listen.submission
 *	(587: AUTH required before MAIL) and control/listen.smtps (465:
 *	submission under implicit TLS), one ADDR:PORT or [V6ADDR]:PORT a
 *	line; an empty file turns that service off, a missing one means
 *	0.0.0.0 and :: on the standard port. A small parent keeps session
 *	processes ready (lib/server.h): each accepts a connection
 *	itself and serves up to 100 sessions, one at a time, at most
 *	control/maxsessions (1000) processes and control/maxperip (20)
 *	sessions from one client address (an IPv6 client by its /64,
 *	lib/limit); a client over either limit gets
 *	"421 4.7.0" and is closed. Both limits are read at each connection.
 *	The AUTH failures of an address are counted across sessions
 *	(lib/limit); on hosts that share a PostgreSQL account store, those
 *	other hosts counted are added (db/fails.smtp, written by vadmin
 *	share) and each failure here is told to vadmin share through
 *	db/share.sock: mta-smtpd never reaches the database.
 *
 *	With --inetd it runs one session on stdin/stdout; the client address
 *	is the peer of stdin when it is a TCP socket, else $TCPREMOTEIP,
 *	else 127.0.0.1 (a pipe: a local process such as sendmail -bs).
 *
 *	The protocol (EHLO extensions, STARTTLS, AUTH, relay control, the
 *	DNSBL check of control/rblservers with rblsmtpd's RBLSMTPD rules,
 *	DATA) is described in docs/smtpd.md and SPEC.md "Mail flow" step 1.
 *	Accepted messages are written into the queue (docs/queue.md) and
 *	fsynced before "250 2.0.0 ok ID".
 *
 * SECURITY
 *	Exposed to the whole network. Under `facteur run` it starts as the
 *	mail user with the listening sockets that facteur run bound
 *	(FACTEUR_LISTEN_FDS, lib/listen.h) and binds nothing. Started alone
 *	as root, it binds its ports and then becomes the mail user
 *	(control/mailuser) for good before it accepts a connection; it
 *	refuses to run the sessions as root.
 *	A process serves one session at a time, so clients in parallel
 *	cannot see each other's memory; the sessions it serves one after
 *	another start from zeroed state (docs/smtpd.md "Processes"). It reads control/, the account CDBs and open-smtp/, and
 *	writes only queue/tmp and queue/new. Every input line is bounded,
 *	and no network text is parsed out of the queue file again. With
 *	control/rblservers a session asks the servers of control/resolvers
 *	A questions built only from the client address and the zones (only
 *	whether an answer exists is used); a DNS failure is never a
 *	listing.
 *
 * EXIT STATUS
 *	0 after an --inetd session, 2 usage, 111 when it cannot start
 *	(cannot bind, cannot become the mail user).
 *
 * DIAGNOSTICS
 *	Start-up errors are one "mta-smtpd: " line on stderr. Each session
 *	ends with one log line (lib/log.h format) on stderr: client address,
 *	HELO, authenticated user, TLS, queued ids, refusals and the last
 *	reason, and how the session ended.
 *
 * BUGS
 *	In --inetd mode failed AUTH is slowed per session only (no parent to
 *	share counts). The DNSBL lookup (control/rblservers, rbl.c) delays
 *	the greeting; a resolver that does not answer costs about 4.5 s.
 *
 * SEE ALSO
 *	docs/smtpd.md, docs/queue.md, mta-rules(8), mta-inject(8)
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "ctl.h"
#include "listen.h"
#include "log.h"
#include "msg.h"
#include "priv.h"
#include "server.h"
#include "login.h"
#include "smtpd.h"

static const char usage_text[] =
	"usage: mta-smtpd [--root DIR] [--inetd [--submission | --smtps]]\n";

struct smtpd {
	const char *root;
	struct str dummy;
	struct limit *limit;
};

/* serve - one session on RFD/WFD; everything it allocates is freed */
static void serve(struct smtpd *srv, int rfd, int wfd, enum port_kind kind,
		  const char *ip)
{
	struct session s;
	unsigned long timeout;

	memset(&s, 0, sizeof s);
	s.root = srv->root;
	s.kind = kind;
	s.dummy_hash = srv->dummy.s;
	s.auth_delay = 1;
	s.limit = srv->limit;
	qenv_init(&s.env);
	/* unreadable: the defaults, said in the log (doctor names the file) */
	timeout = ctl_num_warn(srv->root, CTL_TIMEOUTSMTPD, msg_warn);
	s.databytes = ctl_num_warn(srv->root, CTL_DATABYTES, msg_warn);
	s.maxfail = ctl_num_warn(srv->root, CTL_SMTPMAXFAIL, msg_warn);
	conn_init(&s.c, rfd, wfd, timeout);
	if (ctl_me(srv->root, &s.me) < 0 ||
	    str_copys(&s.ip, ip) < 0) {
		(void)conn_reply(&s.c, "421 4.3.0 cannot read control/me");
		(void)conn_flush(&s.c);
	} else {
		session_run(&s);
	}
	session_free(&s);
}

/* serve_pooled - a session of a session process (lib/server) */
static void serve_pooled(void *arg, const struct server_client *c)
{
	enum port_kind kind = PORT_SMTP;

	if (!strcmp(c->kind, "submission"))
		kind = PORT_SUBMISSION;
	else if (!strcmp(c->kind, "smtps"))
		kind = PORT_SMTPS;
	serve(arg, c->fd, c->fd, kind, c->ip);
}

/* refuse - a client over maxsessions or maxperip */
static void refuse(void *arg, int fd, const char *kind, const char *ip,
		   enum server_why why)
{
	const char *reply = why == SERVER_BUSY ?
		"421 4.7.0 too many sessions, try again later\r\n" :
		"421 4.7.0 too many sessions from your address, try again "
		"later\r\n";

	(void)arg;
	(void)kind;
	/* logged before the reply: a client that reads it and has the
	 * server stopped at once must still find the refusal in the log */
	(void)log_write(2, "mta-smtpd", "session %s refused: %.*s", ip,
			(int)strlen(reply) - 2, reply);
	/* best effort: a client that does not read is not waited for */
	(void)!write(fd, reply, strlen(reply));
}

/* pooled_done - what a session process frees before it leaves */
static void pooled_done(void *arg)
{
	struct smtpd *sd = arg;

	str_free(&sd->dummy);
}

int main(int argc, char **argv)
{
	struct smtpd sd;
	struct server srv = {.prog = "mta-smtpd", .ls = LISTEN_SET_INIT,
			     .serve = serve_pooled, .refuse = refuse,
			     .done = pooled_done, .arg = &sd};
	struct str scheme = STR_INIT;
	enum port_kind kind = PORT_SMTP;
	const char *what;
	const struct psl *psl;
	int i, r, inetd = 0;
	char ip[INET6_ADDRSTRLEN];

	msg_init(argv[0]);
	umask(077);
	memset(&sd, 0, sizeof sd);
	srv.root = sd.root = args_start(&argc, argv, usage_text);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--inetd"))
			inetd = 1;
		else if (!strcmp(argv[i], "--submission"))
			kind = PORT_SUBMISSION;
		else if (!strcmp(argv[i], "--smtps"))
			kind = PORT_SMTPS;
		else
			msg_usage(usage_text, "unknown argument %s", argv[i]);
	}
	if (kind != PORT_SMTP && !inetd)
		msg_usage(usage_text, "--submission and --smtps go with "
			  "--inetd; listeners take their kind from the "
			  "listen.* file");
	signal(SIGPIPE, SIG_IGN);
	if (!inetd) {
		static const char *const kinds[] = {"smtp", "submission",
						    "smtps", NULL};
		struct str err = STR_INIT;

		if (server_listen(&srv, kinds, &err) < 0)
			msg_die(111, "%s", err.s);
		str_free(&err);
		if (!srv.ls.n)
			msg_die(111, "no listen address: every control/listen.* "
				"file is empty");
	}
	/* what we start must not think it holds our sockets */
	unsetenv(LISTEN_ENV);
	priv_start(sd.root);
	/* a hash to check when the user does not exist, of the scheme real
	 * ones have: equal timing (pop3d's, lib/login) */
	r = login_dummy(sd.root, &sd.dummy, &scheme);
	str_free(&scheme);
	if (r < 0 && r != -EINVAL)
		msg_die(111, "cannot make a password hash: %s", msg_err(r));
	if (!inetd) {
		r = limit_new(LIMIT_WINDOW, &sd.limit);
		if (r < 0)
			msg_die(111, "cannot map the AUTH failure table: %s",
				msg_err(r));
		/* and the other hosts' failures, when vadmin share brings
		 * them (docs/scale-out.md) */
		if ((r = limit_share(sd.limit, sd.root, "smtp")) < 0)
			msg_warn("AUTH failures are not shared with other "
				 "hosts: %s", msg_err(r));
		/* the public suffix list (DMARC) read once here, so that the
		 * session processes share it instead of each parsing it
		 * again every SERVER_USES sessions; none is not fatal: DMARC
		 * then says temperror */
		(void)psl_default(&psl);
		/* returns only when it cannot go on: stop is 0 */
		r = server_run(&srv, &what);
		msg_die(111, "%s: %s", what, msg_err(r));
	}
	/* no peer: a pipe or a UNIX socket, a local process (sendmail -bs),
	 * which could set TCPREMOTEIP=127.0.0.1 anyway */
	if (peer_inetd(0, ip, sizeof ip) < 0)
		(void)snprintf(ip, sizeof ip, "127.0.0.1");
	serve(&sd, 0, 1, kind, ip);
	str_free(&sd.dummy);
	return 0;
}
