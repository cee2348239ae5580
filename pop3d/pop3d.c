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
 *	0.0.0.0 and :: on 110 and 995. One small parent accepts and forks one
 *	process per session: a session can crash, hang or be killed without
 *	touching another, and what a login costs is a fork (about 1 ms), not
 *	an exec. The parent counts sessions, in all (control/maxsessions,
 *	1000) and per client address (control/maxperip, 20; an IPv6 client
 *	by its /64), and answers -ERR [SYS/TEMP] beyond either; it refuses
 *	an address (an IPv6 /64) that has failed control/pop3maxfail (100)
 *	logins in the last 15 minutes. Both tables are lib/limit's.
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
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "args.h"
#include "ctl.h"
#include "fsx.h"
#include "listen.h"
#include "log.h"
#include "msg.h"
#include "pop3d.h"
#include "login.h"
#include "priv.h"

#define MAXSESSIONS_CAP 100000
#define ACCEPT_BATCH 64
#define STOP_MS 5000

static const char usage_text[] =
"usage: pop3d [--root DIR] [--inetd [--tls]]\n"
"  (no option)  listen on control/listen.pop3 (STLS) and listen.pop3s (TLS)\n"
"  --inetd      one session on standard input and output\n"
"  --tls        with --inetd: start the session with TLS (pop3s)\n";

struct lsock {
	int fd;
	int tls;
	struct str name;	/* the listen line, for messages */
};

struct server {
	struct cfg *cfg;
	struct lsock *ls;
	size_t nls;
	/* the session processes and their clients, shared with the sessions,
	 * each of which leaves its slot before its last reply goes out, so
	 * that a client that reconnects the moment it has read "+OK bye" is
	 * not counted twice while the old process is on its way out */
	struct limit_sess *sess;	/* nslots */
	size_t nslots;
	size_t nkids;		/* slots in use (sessions not yet reaped) */
	int sigfd;
	sigset_t oldmask;
	time_t refused_at;	/* when a refusal was last logged */
	unsigned refused;	/* refusals not logged since */
};

/* usage - an error, the usage, exit 2 */
static _Noreturn void usage(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static _Noreturn void usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", msg_prog());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage_text, stderr);
	exit(EX_USAGE);
}

/* say - a log line on stderr (lib/log.h format) */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vstderr("pop3d", fmt, ap);
	va_end(ap);
}

/* num - a numeric control file with a default and a floor */
static unsigned long num(const char *root, const char *name,
			 unsigned long def, unsigned long min)
{
	unsigned long v;
	int r = ctl_get_ulong(root, name, def, &v);

	if (r < 0)
		msg_die(EX_TEMP, "control/%s: %s; write a decimal number there "
			"or remove the file", name, msg_err(r));
	return v < min ? min : v;
}

/* load_cfg - every setting, once */
static void load_cfg(struct cfg *cfg, const char *root)
{
	struct str v = STR_INIT;
	char host[256];
	int r;

	memset(cfg, 0, sizeof *cfg);
	cfg->root = root;
	r = ctl_get(root, "me", NULL, &cfg->me);
	if (r == -ENOENT) {
		if (gethostname(host, sizeof host) < 0)
			msg_die(EX_TEMP, "no control/me and no host name: %s",
				strerror(errno));
		host[sizeof host - 1] = 0;
		r = str_copys(&cfg->me, host);
	}
	if (r < 0)
		msg_die(EX_TEMP, "control/me: %s; is %s a Facteur root?",
			msg_err(r), root);
	cfg->timeout = num(root, "timeoutpop3", 600, 1);
	cfg->maxsessions = num(root, "maxsessions", 1000, 1);
	if (cfg->maxsessions > MAXSESSIONS_CAP)
		cfg->maxsessions = MAXSESSIONS_CAP;
	cfg->maxperip = num(root, "maxperip", 20, 1);
	cfg->maxfail = num(root, "pop3maxfail", 100, 1);
	cfg->plaintext = num(root, "pop3plaintext", 0, 0) == 1;
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

/* listeners - the sockets of control/listen.KIND, inherited from
 * facteur run or bound here */
static void listeners(struct server *srv, const char *kind, int tls)
{
	struct listen_set set = LISTEN_SET_INIT;
	struct str err = STR_INIT;
	struct lsock *ls;
	size_t i;

	if (listen_get(&set, srv->cfg->root, kind, &err) < 0)
		msg_die(EX_TEMP, "%s", err.s);
	str_free(&err);
	ls = reallocarray(srv->ls, srv->nls + set.n + 1, sizeof *ls);
	if (!ls)
		msg_die(EX_TEMP, "out of memory");
	srv->ls = ls;
	/* the descriptors and names change hands */
	for (i = 0; i < set.n; i++) {
		ls[srv->nls].fd = set.s[i].fd;
		ls[srv->nls].tls = tls;
		ls[srv->nls].name = set.s[i].name;
		srv->nls++;
	}
	free(set.s);
}

/* become_mailuser - give up root for good, before any client is heard */
static void become_mailuser(const char *root)
{
	int r = priv_become_mailuser(root);

	if (r < 0)
		msg_die(EX_TEMP, "cannot become the mail user of %s: %s", root,
			priv_error(r));
	if (geteuid() == 0 || getuid() == 0)
		msg_die(EX_TEMP, "still root after dropping privileges; refusing "
			"to serve");
}

/* refuse - over a limit: a reply on the plain port (never waiting for
 * the client), and one log line a second at most, whatever the flood */
static void refuse(struct server *srv, int fd, int tls, const char *ip,
		   const char *msg, const char *why)
{
	time_t now = time(NULL);

	if (!tls)
		(void)send(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
	if (now != srv->refused_at) {
		say("refused %s: %s%s", *ip ? ip : "a client", why,
		    srv->refused ? " (and others not logged)" : "");
		srv->refused_at = now;
		srv->refused = 0;
	} else {
		srv->refused++;
	}
}

/* child - in the session process */
static _Noreturn void child(struct server *srv, int fd, const char *ip,
			    int tls, size_t slot)
{
	size_t i;

	for (i = 0; i < srv->nls; i++)
		close(srv->ls[i].fd);
	close(srv->sigfd);
	/* whole replies are written at once: Nagle would only add delay */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	if (signal(SIGTERM, SIG_DFL) == SIG_ERR ||
	    signal(SIGINT, SIG_DFL) == SIG_ERR ||
	    signal(SIGHUP, SIG_DFL) == SIG_ERR ||
	    sigprocmask(SIG_SETMASK, &srv->oldmask, NULL) < 0)
		_exit(EX_TEMP);
	(void)session_run(srv->cfg, fd, fd, ip, tls, srv->sess, slot);
	close(fd);
	exit(0);
}

/* take - one accepted connection: check the limits, fork its session */
static void take(struct server *srv, int fd, const struct sockaddr *sa,
		 socklen_t len, int tls)
{
	static const char busy[] = "-ERR [SYS/TEMP] too many connections\r\n",
		fails[] = "-ERR [SYS/TEMP] too many failed logins from your "
			  "address; try again later\r\n";
	char ip[PEER_TEXT_MAX] = "";
	const char *why = NULL, *msg = busy;
	size_t all, same;
	long slot = -1;
	pid_t pid;

	(void)peer_text(sa, len, ip, sizeof ip);	/* else "" */
	(void)limit_sess_count(srv->sess, ip, &all, &same);
	if (all >= srv->cfg->maxsessions)
		why = "too many sessions";
	else if (same >= srv->cfg->maxperip)
		why = "too many sessions from this address";
	else if (limit_get_ip(srv->cfg->ft, ip) >= srv->cfg->maxfail) {
		why = "too many failed logins";
		msg = fails;
	} else if ((slot = limit_sess_slot(srv->sess)) < 0)
		why = "too many sessions";	/* ended ones not yet reaped */
	if (why) {
		refuse(srv, fd, tls, ip, msg, why);
		return;
	}
	limit_sess_enter(srv->sess, (size_t)slot, ip);
	pid = fork();
	if (pid == 0)
		child(srv, fd, ip, tls, (size_t)slot);
	close(fd);
	if (pid < 0) {
		limit_sess_pid(srv->sess, (size_t)slot, 0);
		say("cannot fork a session for %s: %s", ip, strerror(errno));
		return;
	}
	limit_sess_pid(srv->sess, (size_t)slot, pid);
	srv->nkids++;
}

/* accept_some - what one listener has waiting, a batch at a time so that
 * the other listeners and the signals get their turn */
static void accept_some(struct server *srv, const struct lsock *ls)
{
	int k;

	for (k = 0; k < ACCEPT_BATCH; k++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(ls->fd, (struct sockaddr *)&ss, &len,
				 SOCK_CLOEXEC);

		if (fd >= 0) {
			take(srv, fd, (struct sockaddr *)&ss, len, ls->tls);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN)
			say("accept on %s: %s", ls->name.s, strerror(errno));
		return;
	}
}

/* reap - forget the sessions that ended */
static void reap(struct server *srv)
{
	pid_t pid;
	int st;
	long i;

	/* a session killed before it left its slot is out of it now too */
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if ((i = limit_sess_reap(srv->sess, pid)) < 0)
			continue;
		if (WIFSIGNALED(st) && WTERMSIG(st) != SIGTERM)
			say("session %ld for %s ended on signal %d", (long)pid,
			    limit_sess_ip(srv->sess, (size_t)i), WTERMSIG(st));
		srv->nkids--;
	}
}

/* stop - end every session and wait a while for them */
static void stop(struct server *srv, int sig)
{
	struct timespec t0, t;
	size_t i;

	say("stopping on signal %d, %zu session%s open", sig, srv->nkids,
	    srv->nkids == 1 ? "" : "s");
	for (i = 0; i < srv->nls; i++) {
		close(srv->ls[i].fd);
		srv->ls[i].fd = -1;
	}
	limit_sess_signal(srv->sess, SIGTERM);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (srv->nkids) {
		struct pollfd pf = {srv->sigfd, POLLIN, 0};
		struct signalfd_siginfo si;
		long long ms;

		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000LL +
		     (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= STOP_MS)
			break;
		if (poll(&pf, 1, (int)(STOP_MS - ms)) > 0)
			while (read(srv->sigfd, &si, sizeof si) > 0)
				;
		reap(srv);
	}
	limit_sess_signal(srv->sess, SIGKILL);
}

/* serve - the accept loop, until a stop signal */
static void serve(struct server *srv)
{
	struct pollfd *pf = calloc(srv->nls + 1, sizeof *pf);
	size_t i;

	if (!pf)
		msg_die(EX_TEMP, "out of memory");
	for (;;) {
		pf[0] = (struct pollfd){srv->sigfd, POLLIN, 0};
		for (i = 0; i < srv->nls; i++)
			pf[i + 1] = (struct pollfd){srv->ls[i].fd, POLLIN, 0};
		if (poll(pf, srv->nls + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			msg_die(EX_TEMP, "poll: %s", strerror(errno));
		}
		if (pf[0].revents) {
			struct signalfd_siginfo si;

			while (read(srv->sigfd, &si, sizeof si) ==
			       (ssize_t)sizeof si) {
				if (si.ssi_signo != SIGCHLD) {
					free(pf);
					stop(srv, (int)si.ssi_signo);
					return;
				}
				reap(srv);
			}
		}
		for (i = 0; i < srv->nls; i++)
			if (pf[i + 1].revents)
				accept_some(srv, &srv->ls[i]);
	}
}

/* main - options, settings, listeners, privileges, then serve */
int main(int argc, char **argv)
{
	struct server srv;
	struct cfg cfg;
	struct str why = STR_INIT;
	sigset_t set;
	int inetd = 0, tls = 0, i, r, need_tls;
	const char *root;

	msg_init(argv[0]);
	/* no atexit clean-up of OpenSSL's tables in every session process
	 * that exits: it was a tenth of a login's CPU, freeing memory the
	 * kernel takes back anyway */
	if (!OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL))
		msg_die(EX_TEMP, "cannot initialise OpenSSL");
	root = args_root(&argc, argv);
	if (args_has_help(argc, argv)) {
		fputs(usage_text, stdout);
		return EX_DONE;
	}
	if (!root)
		usage("--root needs a directory");
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--inetd"))
			inetd = 1;
		else if (!strcmp(argv[i], "--tls"))
			tls = 1;
		else if (argv[i][0] == '-')
			usage("unknown option %s", argv[i]);
		else
			usage("unexpected argument %s", argv[i]);
	}
	if (tls && !inetd)
		usage("--tls goes with --inetd");
	/* a client that goes away is an error to handle, not a death */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		msg_die(EX_TEMP, "cannot ignore SIGPIPE: %s", strerror(errno));
	load_cfg(&cfg, root);
	memset(&srv, 0, sizeof srv);
	srv.cfg = &cfg;
	srv.sigfd = -1;
	if (!inetd) {
		listeners(&srv, "pop3", 0);
		listeners(&srv, "pop3s", 1);
	}
	/* what we start must not think it holds our sockets */
	unsetenv(LISTEN_ENV);
	need_tls = tls;
	for (i = 0; (size_t)i < srv.nls; i++)
		need_tls |= srv.ls[i].tls;
	/* the key is read as the mail user: control/tls/ is its own, and a
	 * link it planted there must not make root read another key */
	become_mailuser(root);
	r = conn_tls_server_ctx(root, &cfg.tls, &why);
	if (r < 0 && need_tls)
		msg_die(EX_TEMP, "TLS: %s; run 'facteur doctor --root %s'",
			why.s, root);
	if (r < 0)
		msg_warn("TLS: %s; STLS is not offered", why.s);
	str_free(&why);
	r = limit_new(LIMIT_WINDOW, &cfg.ft);
	if (r < 0)
		msg_warn("no shared failure counters: %s; failed logins are "
			 "slowed per session only", msg_err(r));
	if (inetd) {
		char ip[PEER_TEXT_MAX];

		(void)peer_inetd(0, ip, sizeof ip);	/* none: local */
		(void)session_run(&cfg, 0, 1, ip, tls, NULL, 0);
		free_cfg(&cfg);
		return EX_DONE;
	}
	/* twice the limit: room for ended sessions not yet reaped */
	srv.nslots = 2 * cfg.maxsessions;
	if ((r = limit_sess_new(srv.nslots, &srv.sess)) < 0)
		msg_die(EX_TEMP, "cannot map the session table: %s",
			msg_err(r));
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, &srv.oldmask) < 0 ||
	    (srv.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		msg_die(EX_TEMP, "cannot set up signals: %s", strerror(errno));
	if (srv.nls == 0)
		say("no listeners: control/listen.pop3 and listen.pop3s are "
		    "empty; waiting for a signal");
	for (i = 0; (size_t)i < srv.nls; i++)
		say("listening on %s (%s)", srv.ls[i].name.s,
		    srv.ls[i].tls ? "pop3s" : "pop3");
	serve(&srv);
	say("stopped");
	for (i = 0; (size_t)i < srv.nls; i++)
		str_free(&srv.ls[i].name);
	free(srv.ls);
	limit_sess_free(&srv.sess);
	close(srv.sigfd);
	free_cfg(&cfg);
	return EX_DONE;
}
