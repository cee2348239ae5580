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
 *	0.0.0.0 and :: on the standard port. A small parent accepts connections and forks one process per
 *	session, at most control/maxsessions (1000) at once and
 *	control/maxperip (20) from one client address; a client over either
 *	limit gets "421 4.7.0" and is closed. Both limits are read at each
 *	connection.
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
 *	Each session is its own process, so one client cannot see another's
 *	memory. It reads control/, the account CDBs and open-smtp/, and
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
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "ctl.h"
#include "listen.h"
#include "log.h"
#include "msg.h"
#include "priv.h"
#include "pw.h"
#include "smtpd.h"

#define LISTEN_MAX 64

static const char usage_text[] =
	"usage: mta-smtpd [--root DIR] [--inetd [--submission | --smtps]]\n";

struct listener {
	int fd;
	enum port_kind kind;
};

struct child {
	pid_t pid;
	char ip[INET6_ADDRSTRLEN];
};

struct server {
	const char *root;
	struct listen_set ls;		/* owns the descriptors of l */
	struct listener l[LISTEN_MAX];
	size_t nl;
	struct child *kids;
	size_t nkids, capkids;
	struct str dummy;
	struct authlimit *limit;
};

/* ip_of - the text form of a peer address, IPv4-mapped shown as IPv4 */
static void ip_of(const struct sockaddr_storage *ss, char *out, size_t n)
{
	const struct sockaddr_in6 *s6 = (const void *)ss;
	const struct sockaddr_in *s4 = (const void *)ss;

	strcpy(out, "0.0.0.0");
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &s4->sin_addr, out, (socklen_t)n);
	else if (ss->ss_family == AF_INET6) {
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, s6->sin6_addr.s6_addr + 12, out,
				  (socklen_t)n);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)n);
	}
}

/* serve - one session on RFD/WFD; everything it allocates is freed */
static void serve(struct server *srv, int rfd, int wfd, enum port_kind kind,
		  const char *ip)
{
	struct session s;
	unsigned long timeout;
	int r;

	memset(&s, 0, sizeof s);
	s.root = srv->root;
	s.kind = kind;
	s.dummy_hash = srv->dummy.s;
	s.auth_delay = 1;
	s.limit = srv->limit;
	qenv_init(&s.env);
	if ((r = ctl_get_ulong(srv->root, "timeoutsmtpd", 300, &timeout)) < 0)
		timeout = 300;
	if ((r = ctl_get_ulong(srv->root, "databytes", 10485760,
			       &s.databytes)) < 0)
		s.databytes = 10485760;
	conn_init(&s.c, rfd, wfd, (unsigned)(timeout > 86400 ? 86400 : timeout));
	if (ctl_get(srv->root, "me", "localhost", &s.me) < 0 ||
	    str_copys(&s.ip, ip) < 0) {
		(void)conn_reply(&s.c, "421 4.3.0 cannot read control/me");
		(void)conn_flush(&s.c);
	} else {
		session_run(&s);
	}
	conn_free(&s.c);
	str_free(&s.me);
	str_free(&s.ip);
	str_free(&s.helo);
	str_free(&s.auth_user);
	str_free(&s.ids);
	str_free(&s.reason);
	str_free(&s.end);
	qenv_free(&s.env);
}

/* listeners - the sockets of one kind, inherited from facteur run or
 * bound here */
static void listeners(struct server *srv, const char *name,
		      enum port_kind kind)
{
	struct str err = STR_INIT;
	size_t i;

	if (listen_get(&srv->ls, srv->root, name, &err) < 0)
		msg_die(111, "%s", err.s);
	str_free(&err);
	for (i = srv->nl; i < srv->ls.n; i++) {
		if (srv->nl == LISTEN_MAX)
			msg_die(111, "more than %d listen addresses",
				LISTEN_MAX);
		srv->l[srv->nl].fd = srv->ls.s[i].fd;
		srv->l[srv->nl].kind = kind;
		srv->nl++;
	}
}

/* reap - forget the sessions that ended */
static void reap(struct server *srv)
{
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		for (i = 0; i < srv->nkids; i++)
			if (srv->kids[i].pid == pid) {
				srv->kids[i] = srv->kids[--srv->nkids];
				break;
			}
}

/* over_limit - the reply for a client over maxsessions or maxperip */
static const char *over_limit(struct server *srv, const char *ip)
{
	unsigned long max, perip;
	size_t i, n = 0;

	if (ctl_get_ulong(srv->root, "maxsessions", 1000, &max) < 0)
		max = 1000;
	if (ctl_get_ulong(srv->root, "maxperip", 20, &perip) < 0)
		perip = 20;
	if (srv->nkids >= max)
		return "421 4.7.0 too many sessions, try again later\r\n";
	for (i = 0; i < srv->nkids; i++)
		n += !strcmp(srv->kids[i].ip, ip);
	if (n >= perip)
		return "421 4.7.0 too many sessions from your address, try "
		       "again later\r\n";
	return NULL;
}

/* take - accept one connection and fork its session */
static void take(struct server *srv, const struct listener *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ip[INET6_ADDRSTRLEN];
	const char *full;
	pid_t pid;
	int fd;

	fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (fd < 0)
		return;		/* EAGAIN, ECONNABORTED, EMFILE: next time */
	ip_of(&ss, ip, sizeof ip);
	reap(srv);
	if ((full = over_limit(srv, ip))) {
		/* best effort: a client that does not read is not waited for */
		(void)!write(fd, full, strlen(full));
		(void)log_write(2, "mta-smtpd", "session %s refused: %.*s", ip,
				(int)strlen(full) - 2, full);
		close(fd);
		return;
	}
	if (srv->nkids == srv->capkids) {
		size_t cap = srv->capkids ? srv->capkids * 2 : 64;
		struct child *k = realloc(srv->kids, cap * sizeof *k);

		if (!k) {
			close(fd);
			return;
		}
		srv->kids = k;
		srv->capkids = cap;
	}
	pid = fork();
	if (pid < 0) {
		(void)!write(fd, "421 4.3.0 try again later\r\n", 27);
		close(fd);
		return;
	}
	if (pid == 0) {
		listen_free(&srv->ls);
		signal(SIGTERM, SIG_DFL);
		serve(srv, fd, fd, l->kind, ip);
		close(fd);
		str_free(&srv->dummy);
		free(srv->kids);
		exit(0);
	}
	srv->kids[srv->nkids].pid = pid;
	strcpy(srv->kids[srv->nkids].ip, ip);
	srv->nkids++;
	close(fd);
}

/* accept_loop - the parent: accept, count, fork; never returns */
static _Noreturn void accept_loop(struct server *srv)
{
	struct pollfd p[LISTEN_MAX];
	size_t i;

	for (i = 0; i < srv->nl; i++) {
		p[i].fd = srv->l[i].fd;
		p[i].events = POLLIN;
	}
	for (;;) {
		/* a second's timeout also reaps children without SIGCHLD */
		int r = poll(p, srv->nl, 1000);

		reap(srv);
		if (r < 0 && errno != EINTR)
			msg_die(111, "poll: %s", strerror(errno));
		for (i = 0; r > 0 && i < srv->nl; i++)
			if (p[i].revents & POLLIN)
				take(srv, &srv->l[i]);
	}
}

/* inetd_ip - the client of an --inetd session */
static void inetd_ip(char *ip, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	const char *env = getenv("TCPREMOTEIP");
	unsigned char bin[16];

	memset(&ss, 0, sizeof ss);
	if (getpeername(0, (struct sockaddr *)&ss, &len) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
		ip_of(&ss, ip, n);
		return;
	}
	/* only an address, so that it may name a file in open-smtp/ */
	if (env && (inet_pton(AF_INET, env, bin) == 1 ||
		    inet_pton(AF_INET6, env, bin) == 1) && strlen(env) < n) {
		strcpy(ip, env);
		return;
	}
	/* a pipe or a UNIX socket: a local process (sendmail -bs), which
	 * could set TCPREMOTEIP=127.0.0.1 anyway */
	strcpy(ip, "127.0.0.1");
}

int main(int argc, char **argv)
{
	struct server srv;
	enum port_kind kind = PORT_SMTP;
	int i, r, inetd = 0;
	char ip[INET6_ADDRSTRLEN];

	msg_init(argv[0]);
	umask(077);
	memset(&srv, 0, sizeof srv);
	srv.root = args_root(&argc, argv);
	if (!srv.root)
		msg_usage(usage_text, "--root needs a directory");
	if (args_has_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
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
	srv.ls = (struct listen_set)LISTEN_SET_INIT;
	if (!inetd) {
		listeners(&srv, "smtp", PORT_SMTP);
		listeners(&srv, "submission", PORT_SUBMISSION);
		listeners(&srv, "smtps", PORT_SMTPS);
		if (!srv.nl)
			msg_die(111, "no listen address: every control/listen.* "
				"file is empty");
	}
	/* what we start must not think it holds our sockets */
	unsetenv(LISTEN_ENV);
	r = priv_become_mailuser(srv.root);
	if (r < 0)
		msg_die(111, "cannot become the mail user of %s/control/mailuser:"
			" %s", srv.root, msg_err(r));
	if (geteuid() == 0)
		msg_die(111, "refusing to run sessions as root");
	/* a hash to check when the user does not exist: equal timing */
	r = pw_hash("no such user", NULL, &srv.dummy);
	if (r < 0)
		msg_die(111, "cannot make a password hash: %s", msg_err(r));
	if (!inetd) {
		srv.limit = authlimit_new();
		if (!srv.limit)
			msg_die(111, "cannot map the AUTH failure table: %s",
				strerror(errno));
		accept_loop(&srv);
	}
	inetd_ip(ip, sizeof ip);
	serve(&srv, 0, 1, kind, ip);
	str_free(&srv.dummy);
	return 0;
}
