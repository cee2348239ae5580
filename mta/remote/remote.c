/*
 * NAME
 *	mta-remote - deliver one message to the SMTP servers of one domain
 *
 * SYNOPSIS
 *	mta-remote [--root DIR] [--] DOMAIN SENDER RCPT... < message
 *
 * DESCRIPTION
 *	Started by mta-send once per (message, remote domain), as qmail-send
 *	starts qmail-remote. The message arrives on stdin with LF line ends
 *	(a queue file positioned after its envelope, or a pipe); it is sent
 *	with CR LF line ends and dot-stuffing. SENDER may be empty (<>);
 *	every RCPT is a full address in DOMAIN, and all of them share one
 *	SMTP transaction.
 *
 *	The route is the matching line of control/smtproutes, else the MX
 *	records of DOMAIN (by preference, random among equals), else its
 *	A/AAAA records. A null MX fails at once; an MX or an address
 *	literal that is this host fails as a loop (permanently) unless
 *	smtproutes chose it: its name is control/me, or one of its
 *	addresses reaches this machine in any spelling (127/8, 0/8, ::1,
 *	::, ::ffff:127.0.0.1, an interface address, ...) while the port is
 *	one where an MTA of this machine may answer (self.c). Hosts are
 *	tried in order, each of
 *	their addresses, until one greets; STARTTLS is used when offered
 *	(no certificate check; a failed handshake is retried once without
 *	TLS), PIPELINING and SIZE too. Details: docs/remote.md.
 *
 * OUTPUT
 *	Exactly one line per RCPT on stdout, in argument order: "K TEXT",
 *	K being D (delivered), F (permanent failure) or T (temporary
 *	failure), TEXT one printable line of at most 500 bytes naming the
 *	host and quoting its reply. Diagnostics go to stderr.
 *
 * SECURITY
 *	Talks to hosts on the Internet: every reply is bounded (64 KiB a
 *	line, 100 lines, timeoutremote seconds a line or a write,
 *	timeoutconnect a connect). Started as root it becomes the mail
 *	user before reading anything. It writes no file.
 *
 * EXIT STATUS
 *	0 when every line was printed (delivery results are in the lines),
 *	2 usage, 111 otherwise: the scheduler then retries every recipient
 *	it did not get a line for.
 *
 * DIAGNOSTICS
 *	On stderr, one line for each address given up on ("127.0.0.2:
 *	connect: Connection refused") and for a STARTTLS fallback; the
 *	result lines carry the reasons that matter to the scheduler.
 *
 * BUGS
 *	TLS is opportunistic: no DANE, no MTA-STS, no certificate check.
 *	A 5xx greeting fails the mail without trying the next MX (as
 *	qmail-remote). SIZE= is the LF size. See docs/remote.md.
 *
 * SEE ALSO
 *	docs/remote.md, docs/queue.md, mta-send(8)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "ctl.h"
#include "dns.h"
#include "msg.h"
#include "name.h"
#include "priv.h"
#include "remote.h"

#define MX_HOSTS_MAX 16		/* MX hosts looked at */
#define ATTEMPTS_MAX 20		/* addresses connected to, in all */
#define DNS_TRY_MS 5000

static const char usage_text[] =
	"usage: mta-remote [--root DIR] [--] DOMAIN SENDER RCPT... "
	"< message\n";

/* a host to try: its name (for SNI and the loop check), addresses, port */
struct target {
	char *name;
	unsigned pref;
	int self;
	struct dns_addr *a;
	size_t n;
};

struct plan {
	struct target *t;
	size_t n;
	unsigned long port;
};

/* addr_bad - an address we will not put on an SMTP command line */
static int addr_bad(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127 || *s == '<' ||
		    *s == '>')
			return 1;
	return 0;
}

/* body_prepare - stdin as a seekable file and its size: a queue file is
 * used in place; a pipe is copied into a memory file first, so SIZE can
 * be announced and the message read when DATA is reached */
static int body_prepare(struct job *j)
{
	struct stat st;
	char buf[65536];
	int fd;

	if (fstat(0, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		j->body_fd = 0;
		j->body_off = lseek(0, 0, SEEK_CUR);
		if (j->body_off < 0)
			return -errno;
		j->body_size = st.st_size > j->body_off ?
			st.st_size - j->body_off : 0;
		return 0;
	}
	fd = memfd_create("mta-remote", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf), w, done = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		while (done < n) {
			w = write(fd, buf + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				goto fail;
			done += w;
		}
	}
	j->body_fd = fd;
	j->body_off = 0;
	j->body_size = lseek(fd, 0, SEEK_END);
	return j->body_size < 0 ? -errno : 0;
fail:
	{
		int e = errno;

		close(fd);
		return -e;
	}
}

/* is_self - name is control/me, or an address reaches an MTA of this
 * host at PORT (self.c says why the port matters) */
static int is_self(const struct target *t, const char *me,
		   const struct self *sf, unsigned long port)
{
	size_t i, ml = strlen(me), tl = strlen(t->name);

	if (ml && me[ml - 1] == '.')
		ml--;
	if (tl && t->name[tl - 1] == '.')
		tl--;
	if (ml && ml == tl && strncasecmp(me, t->name, ml) == 0)
		return 1;
	for (i = 0; i < t->n; i++)
		if (self_addr(sf, &t->a[i], port))
			return 1;
	return 0;
}

/* literal - an IP address as a one-address target */
static int literal(const char *s, struct target *t)
{
	t->a = calloc(1, sizeof *t->a);
	t->name = strdup(s);
	if (!t->a || !t->name)
		return -ENOMEM;
	t->n = 1;
	if (inet_pton(AF_INET, s, &t->a[0].a.v4) == 1)
		t->a[0].family = AF_INET;
	else if (inet_pton(AF_INET6, s, &t->a[0].a.v6) == 1)
		t->a[0].family = AF_INET6;
	else
		return -EINVAL;
	return 0;
}

/* plan_free - the targets */
static void plan_free(struct plan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		free(p->t[i].name);
		free(p->t[i].a);
	}
	free(p->t);
	p->t = NULL;
	p->n = 0;
}

/* by_smtproutes - the one host of a smtproutes line */
static int by_smtproutes(struct job *j, struct dns *d, struct route *rt,
			 struct plan *p)
{
	struct target *t = calloc(1, sizeof *t);
	int r;

	if (!t)
		return -ENOMEM;
	p->t = t;
	p->n = 1;
	if (rt->hp.port)
		p->port = rt->hp.port;
	if (rt->hp.literal)
		return literal(rt->hp.host.s, t);
	t->name = strdup(rt->hp.host.s);
	if (!t->name)
		return -ENOMEM;
	r = dns_addrs(d, t->name, &t->a, &t->n);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		/* the administrator's route is broken: keep the mail */
		job_fail_open(j, RES_T, "smtproutes host %s: %s", t->name,
			      r == -EAGAIN ? "temporary DNS failure" :
			      "no address found");
	return 0;
}

/* by_dns - MX hosts in order, else the domain itself; loops cut off */
static int by_dns(struct job *j, struct dns *d, const char *domain,
		  const struct self *sf, struct plan *p)
{
	struct dns_mx *mx = NULL;
	size_t nmx = 0, i, k, usable = 0, tmp = 0;
	unsigned cut = 0;
	int r, any_self = 0;

	r = dns_mx(d, domain, &mx, &nmx);
	if (r == -ENOENT || r == -EINVAL) {
		job_fail_open(j, RES_F, "Sorry, I couldn't find any host named "
			      "%s (#5.1.2)", domain);
		return 0;
	}
	if (r == -EAGAIN) {
		job_fail_open(j, RES_T, "temporary DNS failure looking up "
			      "the MX of %s", domain);
		return 0;
	}
	if (r < 0 && r != -ENODATA)
		return r;
	if (nmx == 1 && mx[0].host[0] == 0) {
		job_fail_open(j, RES_F, "556 5.1.10 %s does not accept mail "
			      "(null MX, RFC 7505)", domain);
		dns_mx_free(mx, nmx);
		return 0;
	}
	if (nmx == 0) {
		/* no MX: the domain is its own mail host (RFC 5321 5.1) */
		mx = calloc(1, sizeof *mx);
		if (!mx || !(mx->host = strdup(domain))) {
			free(mx);
			return -ENOMEM;
		}
		nmx = 1;
	}
	p->t = calloc(nmx, sizeof *p->t);
	r = p->t ? 0 : -ENOMEM;
	if (r < 0)
		goto out;
	for (i = 0; i < nmx && p->n < MX_HOSTS_MAX; i++) {
		struct target *t = &p->t[p->n];

		if (mx[i].host[0] == 0)
			continue;	/* a "." among real MXs: ignored */
		t->name = mx[i].host;
		mx[i].host = NULL;
		t->pref = mx[i].pref;
		p->n++;
		r = dns_addrs(d, t->name, &t->a, &t->n);
		if (r == -ENOMEM)
			goto out;
		if (r == -EAGAIN)
			tmp++;
		t->self = is_self(t, j->me, sf, p->port);
		if (t->self && (!any_self || t->pref < cut)) {
			any_self = 1;
			cut = t->pref;
		}
	}
	r = 0;
	/* as qmail: if we are an MX, only better ones may get the mail */
	for (i = k = 0; i < p->n; i++) {
		if (any_self && p->t[i].pref >= cut) {
			free(p->t[i].name);
			free(p->t[i].a);
			continue;
		}
		usable += p->t[i].n > 0;
		p->t[k++] = p->t[i];
	}
	p->n = k;
	if (any_self && k == 0)
		job_fail_open(j, RES_F, "loop: MX is this host; check "
			      "control/me and the MX of %s (#5.4.6)", domain);
	else if (usable == 0 && tmp)
		job_fail_open(j, RES_T, "temporary DNS failure looking up the "
			      "mail hosts of %s", domain);
	else if (usable == 0)
		job_fail_open(j, RES_F, "Sorry, I couldn't find any host named "
			      "%s (#5.1.2)", p->n == 1 ? p->t[0].name : domain);
out:
	dns_mx_free(mx, nmx);
	return r;
}

/* by_literal - an address literal as the domain (user@[192.0.2.1]) */
static int by_literal(struct job *j, const char *domain,
		      const struct self *sf, struct plan *p)
{
	struct str lit = STR_INIT;
	size_t len = strlen(domain);
	const char *a = domain + 1;
	int r;

	if (strncasecmp(a, "IPv6:", 5) == 0)
		a += 5;
	if (domain[len - 1] != ']' || a > domain + len - 1) {
		r = -EINVAL;
		goto out;
	}
	r = str_copyb(&lit, a, (size_t)(domain + len - 1 - a));
	p->t = r == 0 ? calloc(1, sizeof *p->t) : NULL;
	if (!p->t) {
		r = -ENOMEM;
		goto out;
	}
	p->n = 1;
	r = literal(lit.s, p->t);
	if (r == 0 && is_self(p->t, j->me, sf, p->port))
		job_fail_open(j, RES_F, "loop: %s is this host (#5.4.6)",
			      domain);
out:
	if (r == -EINVAL) {
		job_fail_open(j, RES_F, "bad address literal %s", domain);
		r = 0;
	}
	str_free(&lit);
	return r;
}

/* plan_route - where the mail goes, or every result set (F/T) */
static int plan_route(struct job *j, struct dns *d, const char *root,
		      const char *domain, struct plan *p)
{
	struct str lines = STR_INIT;
	struct route rt = {0, 0, {STR_INIT, 0, 0}, 0};
	struct self sf = {NULL, 0, NULL, 0, 0};
	size_t n = 0, bad = 0;
	int r;

	r = ctl_get_lines(root, "smtproutes", &lines, &n);
	if (r < 0) {
		job_fail_open(j, RES_T, "cannot read control/smtproutes: %s",
			      msg_err(r));
		r = 0;
		goto out;
	}
	r = route_lookup(lines.s, n, domain, &rt, &bad);
	if (r == -EINVAL) {
		job_fail_open(j, RES_T,
			      "control/smtproutes line %zu is malformed", bad);
		r = 0;
	} else if (r == 0 && rt.found && !rt.use_mx) {
		r = by_smtproutes(j, d, &rt, p);
	} else if (r == 0) {
		/* an address literal or the DNS: chosen by whoever wrote the
		 * address or the zone, so checked for loops (smtproutes is
		 * the administrator's own choice, and is not) */
		if (rt.found && rt.hp.port)
			p->port = rt.hp.port;
		r = self_load(&sf, root);
		if (r == 0)
			r = domain[0] == '[' ? by_literal(j, domain, &sf, p)
					     : by_dns(j, d, domain, &sf, p);
	}
out:
	str_free(&lines);
	route_free(&rt);
	self_free(&sf);
	return r;
}

/* deliver - each address of each target until a session ends */
static void deliver(struct job *j, struct plan *p)
{
	size_t i, k, tries = 0;
	int r = ATT_NEXT;

	for (i = 0; i < p->n && r != ATT_DONE; i++) {
		for (k = 0; k < p->t[i].n && r != ATT_DONE; k++) {
			struct sockaddr_in6 s6;
			struct sockaddr_in s4;
			const struct dns_addr *a = &p->t[i].a[k];
			const struct sockaddr *sa;
			socklen_t len;

			if (tries++ == ATTEMPTS_MAX)
				goto none;
			memset(&s6, 0, sizeof s6);
			memset(&s4, 0, sizeof s4);
			if (a->family == AF_INET6) {
				s6.sin6_family = AF_INET6;
				s6.sin6_port = htons((uint16_t)p->port);
				s6.sin6_addr = a->a.v6;
				sa = (const struct sockaddr *)&s6;
				len = sizeof s6;
			} else {
				s4.sin_family = AF_INET;
				s4.sin_port = htons((uint16_t)p->port);
				s4.sin_addr = a->a.v4;
				sa = (const struct sockaddr *)&s4;
				len = sizeof s4;
			}
			r = smtp_attempt(j, p->t[i].name, sa, len, 1);
			if (r == ATT_TLS_RETRY) {
				msg_warn("%s; trying again without TLS",
					 str_cstr(&j->last_err));
				r = smtp_attempt(j, p->t[i].name, sa, len, 0);
			}
			if (r == ATT_NEXT)
				msg_warn("%s", str_cstr(&j->last_err));
		}
	}
	if (r == ATT_DONE)
		return;
none:
	job_fail_open(j, RES_T, "no host for %s answered: %s", j->domain,
		      j->last_err.len ? j->last_err.s : "no address to try");
}

/* controls - timeouts, port and name; -errno naming nothing */
static int controls(const char *root, struct job *j, struct plan *p,
		    struct str *me, const char **what)
{
	int r;

	*what = "me";
	if ((r = ctl_me(root, me)) < 0)
		return r;
	j->me = me->s;
	/* unreadable or no number: the default, as in every program */
	j->timeout = ctl_num_warn(root, CTL_TIMEOUTREMOTE, msg_warn);
	j->ctimeout = ctl_num_warn(root, CTL_TIMEOUTCONNECT, msg_warn);
	/* but a port is not guessed: one we cannot use, or held to 1-65535,
	 * is not the one written */
	*what = "remoteport";
	if ((r = ctl_num(root, CTL_REMOTEPORT, &p->port)) != 0)
		return r < 0 ? r : -ERANGE;
	return 0;
}

int main(int argc, char **argv)
{
	struct job j;
	struct plan p = {NULL, 0, 25};
	struct str me = STR_INIT, line = STR_INIT;
	struct dns *d = NULL;
	const char *root, *what;
	struct str domain = STR_INIT;
	size_t i;
	int r;

	msg_init(argv[0]);
	root = args_start_env(&argc, argv, usage_text, "");
	if (argc > 1 && !strcmp(argv[1], "--")) {
		/* mta-send's form: the envelope values after "--" */
		argv[1] = argv[0];
		argv++;
		argc--;
	} else if (argc > 1 && argv[1][0] == '-') {
		msg_usage(usage_text, "unknown option %s", argv[1]);
	}
	if (argc < 4)
		msg_usage(usage_text, "need DOMAIN, SENDER and a RCPT");
	signal(SIGPIPE, SIG_IGN);
	priv_start(root);
	memset(&j, 0, sizeof j);
	j.body_fd = -1;
	j.domain = argv[1];
	j.sender = argv[2];
	j.rcpt = argv + 3;
	j.nrcpt = (size_t)argc - 3;
	j.res = calloc(j.nrcpt, sizeof *j.res);
	if (!j.res || name_fold(&domain, argv[1], strlen(argv[1])))
		msg_die(111, "out of memory");
	if (domain.len > 1 && domain.s[domain.len - 1] == '.')
		str_trunc(&domain, domain.len - 1);	/* the root's dot */

	r = controls(root, &j, &p, &me, &what);
	if (r < 0)
		job_fail_open(&j, RES_T, "cannot use control/%s: %s", what,
			      msg_err(r));
	if (addr_bad(j.sender))
		job_fail_open(&j, RES_F, "the sender address has a control "
			      "character or <>");
	for (i = 0; i < j.nrcpt; i++)
		if (j.res[i].kind == RES_NONE &&
		    (addr_bad(j.rcpt[i]) || !j.rcpt[i][0]))
			(void)result_set(&j.res[i], RES_F, "the recipient "
					 "address is empty or has a control "
					 "character or <>");
	for (i = 0; i < j.nrcpt && j.res[i].kind != RES_NONE; i++)
		;
	if (i == j.nrcpt)
		goto print;
	if ((r = body_prepare(&j)) < 0) {
		job_fail_open(&j, RES_T, "cannot read the message: %s",
			      msg_err(r));
		goto print;
	}
	if ((r = dns_open(&d, root, DNS_TRY_MS)) < 0) {
		job_fail_open(&j, RES_T,
			      "cannot set up DNS (control/resolvers?): %s",
			      msg_err(r));
		goto print;
	}
	r = plan_route(&j, d, root, domain.s, &p);
	if (r < 0)
		job_fail_open(&j, RES_T, "cannot route %s: %s", domain.s,
			      msg_err(r));
	dns_close(d);
	for (i = 0; i < j.nrcpt && j.res[i].kind != RES_NONE; i++)
		;
	if (i < j.nrcpt) {
		deliver(&j, &p);
		SSL_CTX_free(j.tls);
	}
print:
	for (i = 0; i < j.nrcpt; i++) {
		const struct str *t = &j.res[i].text;

		result_clean(str_cstr(t), t->len, &line);
		if (printf("%c %s\n", j.res[i].kind ? j.res[i].kind : RES_T,
			   line.len ? line.s : "no result") < 0)
			break;
		str_free(&j.res[i].text);
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		msg_die(111, "cannot write the results: %s", strerror(errno));
	plan_free(&p);
	str_free(&me);
	str_free(&line);
	str_free(&j.last_err);
	free(j.res);
	str_free(&domain);
	if (j.body_fd > 0)
		close(j.body_fd);
	return 0;
}
