/*
 * NAME
 *	pop3d - the Facteur POP3 server
 *
 * SYNOPSIS
 *	pop3d [--root DIR]
 *	pop3d [--root DIR] --inetd [--tls]
 *
 * DESCRIPTION
 *	Serves the Maildirs of ROOT/domains over POP3: RFC 1939 with CAPA,
 *	UIDL, TOP, RFC 2449 response codes, STLS (RFC 2595) and AUTH PLAIN
 *	and CRAM-MD5 (RFC 5034). Logins are checked against the passwd CDBs
 *	that vadmin generates, by lib/login as mta-smtpd checks them; a
 *	successful one touches ROOT/open-smtp/IP, the POP-before-SMTP grant
 *	that mta-smtpd honours. docs/pop3d.md is the manual.
 *
 *	Without --inetd it listens on the sockets `facteur run` passed in
 *	$FACTEUR_LISTEN_FDS, else it binds every ADDR:PORT line of
 *	control/listen.pop3 (plain, STLS offered) and control/listen.pop3s
 *	(TLS from the first byte); an empty file means none, a missing one
 *	0.0.0.0 and :: on 110 and 995. A small parent keeps session processes
 *	ready (lib/server.h, as mta-smtpd's): each accepts a connection
 *	itself and serves up to 100 sessions, one at a time, so a session can
 *	crash, hang or be killed without touching another, and a login costs
 *	no fork. Sessions are counted in all (control/maxsessions, 1000: the
 *	number of processes) and per client address (control/maxperip, 20;
 *	an IPv6 client by its /64), and answered -ERR [SYS/TEMP] beyond
 *	either; an address (an IPv6 /64) that has failed control/pop3maxfail
 *	(100) logins in the last 15 minutes is refused. Both tables are
 *	lib/limit's. On hosts that share a PostgreSQL account store, the
 *	failures other hosts counted (db/fails.pop3, written by vadmin share)
 *	are added, and each failure here is told to vadmin share through
 *	db/share.sock; pop3d itself never reaches the database.
 *
 *	With --inetd it runs one session on standard input and output, for
 *	inetd, systemd sockets or tcpserver (the client address is taken from
 *	the socket, else from $TCPREMOTEIP; with neither, the session counts
 *	as local). --tls starts that session with TLS.
 *
 * SECURITY
 *	Exposed to the network, before authentication. Under `facteur run`
 *	it starts as the mail user with the sockets facteur run bound
 *	($FACTEUR_LISTEN_FDS, lib/listen.h), binds nothing and reads the TLS
 *	key as the mail user, which owns it. Started alone as root, it binds
 *	its ports and loads the TLS key, then becomes the mail user
 *	(control/mailuser) for good before it accepts anything: setgroups, setresgid, setresuid, each checked, and a mail
 *	user with uid 0 is refused. Sessions therefore never run as root. A
 *	session before login reads only the passwd CDBs; after login it opens
 *	only the Maildir named by the user's record (which must lie under
 *	domains/) and ROOT/open-smtp/IP. Every input line is bounded (255
 *	bytes, RFC 2449) and must arrive within control/timeoutpop3 seconds.
 *	Passwords are never logged; a wrong password and an unknown user get
 *	the same answer after the same work. Failed logins are answered
 *	after a delay that grows with the failures of the address and of the
 *	user name, shared by all sessions.
 *
 * EXIT STATUS
 *	0 after SIGTERM, SIGINT or SIGHUP (or the end of an --inetd session),
 *	2 usage, 111 a start-up failure (a port, the mail user, the TLS key
 *	when a TLS port is configured, control files).
 *
 * DIAGNOSTICS
 *	Start-up errors: one line on stderr starting with "pop3d:" that says
 *	what to do. Running: lines in the format of lib/log.h on stderr, which
 *	`facteur run` writes to ROOT/log/current: one per session (client,
 *	user, result, messages retrieved and deleted, reason) and one per
 *	failed login.
 *
 * BUGS
 *	Control files are read at start-up; SIGHUP ends pop3d and `facteur
 *	run` starts it again with the new ones, cutting open sessions.
 *	Over the limits, a client of the TLS port is closed without a word,
 *	since a reply would need a handshake. Under --inetd the failure
 *	counts live only as long as the session. Only the PLAIN mechanism.
 *
 * SEE ALSO
 *	docs/pop3d.md, SPEC.md step 5, RFC 1939, RFC 2449, RFC 2595,
 *	RFC 5034, vadmin(8), facteur(8)
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "args.h"
#include "ctl.h"
#include "listen.h"
#include "log.h"
#include "msg.h"
#include "pop3d.h"
#include "login.h"
#include "priv.h"
#include "server.h"

static const char usage_text[] =
"usage: pop3d [--root DIR] [--inetd [--tls]]\n"
"  (no option)  listen on control/listen.pop3 (STLS) and listen.pop3s (TLS)\n"
"  --inetd      one session on standard input and output\n"
"  --tls        with --inetd: start the session with TLS (pop3s)\n";

struct pop3d {
	struct cfg *cfg;
	time_t refused_at;	/* when a refusal was last logged */
	unsigned refused;	/* refusals not logged since */
};

/* load_cfg - every setting, once */
static void load_cfg(struct cfg *cfg, const char *root)
{
	struct str v = STR_INIT;
	int r;

	memset(cfg, 0, sizeof *cfg);
	cfg->root = root;
	r = ctl_me(root, &cfg->me);
	if (r < 0)
		msg_die(EX_TEMP, "control/me: %s; is %s a Facteur root?",
			msg_err(r), root);
	cfg->timeout = ctl_num_warn(root, CTL_TIMEOUTPOP3, msg_warn);
	cfg->maxsessions = ctl_num_warn(root, CTL_MAXSESSIONS, msg_warn);
	cfg->maxperip = ctl_num_warn(root, CTL_MAXPERIP, msg_warn);
	cfg->maxfail = ctl_num_warn(root, CTL_POP3MAXFAIL, msg_warn);
	cfg->plaintext = ctl_num_warn(root, CTL_POP3PLAINTEXT, msg_warn) == 1;
	/* unknown users are checked against a hash as costly as a real one */
	r = login_dummy(root, &cfg->dummy, &v);
	if (r == -EINVAL)
		msg_warn("control/passwordscheme: unknown scheme %s; using "
			 "yescrypt", v.s);
	else if (r < 0)
		msg_die(EX_TEMP, "cannot prepare the password check: %s",
			msg_err(r));
	str_free(&v);
}

/* free_cfg - release the settings (keeps the leak checker meaningful) */
static void free_cfg(struct cfg *cfg)
{
	str_free(&cfg->me);
	str_wipe(&cfg->dummy);
	SSL_CTX_free(cfg->tls);
	cfg->tls = NULL;
	limit_free(&cfg->ft);
}

/* refused - a reply on the plain port (never waiting for the client),
 * and one log line a second at most, whatever the flood */
static void refused(struct pop3d *pd, int fd, int tls, const char *ip,
		    const char *msg, const char *why)
{
	time_t now = time(NULL);

	/* logged before the reply, so that the log holds the refusal even
	 * when the server is stopped the moment the client reads it */
	if (now != pd->refused_at) {
		slog("refused %s: %s%s", *ip ? ip : "a client", why,
		    pd->refused ? " (and others not logged)" : "");
		pd->refused_at = now;
		pd->refused = 0;
	} else {
		pd->refused++;
	}
	if (!tls)
		(void)send(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* refuse - a client over maxsessions or maxperip (lib/server) */
static void refuse(void *arg, int fd, const char *kind, const char *ip,
		   enum server_why why)
{
	refused(arg, fd, !strcmp(kind, "pop3s"), ip,
		"-ERR [SYS/TEMP] too many connections\r\n",
		why == SERVER_BUSY ? "too many sessions" :
				     "too many sessions from this address");
}

/* serve - one session in a session process (lib/server), unless the
 * address failed too many logins */
static void serve(void *arg, const struct server_client *c)
{
	struct pop3d *pd = arg;
	int tls = !strcmp(c->kind, "pop3s");

	if (limit_get_ip(pd->cfg->ft, c->ip) >= pd->cfg->maxfail) {
		refused(pd, c->fd, tls, c->ip, "-ERR [SYS/TEMP] too many failed "
			"logins from your address; try again later\r\n",
			"too many failed logins");
		return;
	}
	/* whole replies are written at once: Nagle would only add delay */
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1},
			 sizeof(int));
	(void)session_run(pd->cfg, c->fd, c->fd, c->ip, tls, c->sess, c->slot);
}

/* served - what a session process frees before it leaves */
static void served(void *arg)
{
	struct pop3d *pd = arg;

	free_cfg(pd->cfg);
}

/* main - options, settings, listeners, privileges, then serve */
int main(int argc, char **argv)
{
	static const char *const kinds[] = {"pop3", "pop3s", NULL};
	struct cfg cfg;
	struct pop3d pd = {.cfg = &cfg};
	struct server srv = {.prog = "pop3d", .ls = LISTEN_SET_INIT,
			     .serve = serve, .refuse = refuse, .done = served,
			     .arg = &pd, .stop = 1};
	struct str why = STR_INIT;
	int inetd = 0, tls = 0, i, r, need_tls;
	const char *what;

	msg_init(argv[0]);
	/* no atexit clean-up of OpenSSL's tables in every session process
	 * that exits: it was a tenth of a login's CPU, freeing memory the
	 * kernel takes back anyway */
	if (!OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL))
		msg_die(EX_TEMP, "cannot initialise OpenSSL");
	srv.root = args_start(&argc, argv, usage_text);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--inetd"))
			inetd = 1;
		else if (!strcmp(argv[i], "--tls"))
			tls = 1;
		else if (argv[i][0] == '-')
			msg_usage(usage_text, "unknown option %s", argv[i]);
		else
			msg_usage(usage_text, "unexpected argument %s", argv[i]);
	}
	if (tls && !inetd)
		msg_usage(usage_text, "--tls goes with --inetd");
	/* a client that goes away is an error to handle, not a death */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		msg_die(EX_TEMP, "cannot ignore SIGPIPE: %s", strerror(errno));
	load_cfg(&cfg, srv.root);
	if (!inetd && server_listen(&srv, kinds, &why) < 0)
		msg_die(EX_TEMP, "%s", why.s);
	/* what we start must not think it holds our sockets */
	unsetenv(LISTEN_ENV);
	need_tls = tls;
	for (i = 0; (size_t)i < srv.ls.n; i++)
		need_tls |= !strcmp(srv.ls.s[i].kind, "pop3s");
	/* the key is read as the mail user: control/tls/ is its own, and a
	 * link it planted there must not make root read another key */
	priv_start(srv.root);
	r = conn_tls_server_ctx(srv.root, &cfg.tls, &why);
	if (r < 0 && need_tls)
		msg_die(EX_TEMP, "TLS: %s; run 'facteur doctor --root %s'",
			why.s, srv.root);
	if (r < 0)
		msg_warn("TLS: %s; STLS is not offered", why.s);
	str_free(&why);
	r = limit_new(LIMIT_WINDOW, &cfg.ft);
	if (r < 0)
		msg_warn("no shared failure counters: %s; failed logins are "
			 "slowed per session only", msg_err(r));
	/* and those of the other hosts, when vadmin share brings them */
	else if ((r = limit_share(cfg.ft, srv.root, "pop3")) < 0)
		msg_warn("failed logins are not shared with other hosts: %s",
			 msg_err(r));
	if (inetd) {
		char ip[PEER_TEXT_MAX];

		(void)peer_inetd(0, ip, sizeof ip);	/* none: local */
		(void)session_run(&cfg, 0, 1, ip, tls, NULL, 0);
		free_cfg(&cfg);
		return EX_DONE;
	}
	if (srv.ls.n == 0)
		slog("no listeners: control/listen.pop3 and listen.pop3s are "
		    "empty; waiting for a signal");
	for (i = 0; (size_t)i < srv.ls.n; i++)
		slog("listening on %s (%s)", srv.ls.s[i].name.s,
		    srv.ls.s[i].kind);
	srv.maxsessions = cfg.maxsessions;
	srv.maxperip = cfg.maxperip;
	if ((r = server_run(&srv, &what)) < 0)
		msg_die(EX_TEMP, "%s: %s", what, msg_err(r));
	slog("stopped");
	listen_free(&srv.ls);
	free_cfg(&cfg);
	return EX_DONE;
}
