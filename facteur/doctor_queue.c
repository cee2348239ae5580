/*
 * doctor_queue - the `queue` check: how much mail waits, how old the
 * oldest is, which destinations hold deferred recipients, and for the
 * first DIAG_MAX of those what an administrator would see by hand: the
 * MX lookup, then a connect to each of the first MX_MAX exchanges on
 * control/remoteport and the greeting line (or the error). A domain
 * that control/smtproutes routes is tried where mta-remote would send
 * it: the route's host and port, or the MX on the route's port.
 *
 * Cost with a large queue: a message's age comes from its ID (the file
 * name, docs/queue.md), so new/ and messages without a status file cost
 * a readdir entry each; only a message with an ID.s file has its status
 * file and its envelope read (queue_read_env(), never the body). The
 * deferred domains are gathered as strings and sorted once: O(R log R)
 * for R deferred recipients, no per-domain search.
 *
 * The network part is bounded: each domain is diagnosed in a child of
 * its own, all at once, each with a budget of DOMAIN_MS for its lookups,
 * connects and reads; the parent takes their one-line answers until
 * WAIT_MS and kills the children still running. A child only writes to
 * its pipe, so a killed one changes nothing.
 *
 * The whole check runs in a child of doctor's, begun early
 * (check_queue_start) and ended when its line is printed
 * (check_queue_finish); the child sends its report back on a pipe
 * (put_report), so that the reading of the queue and the diagnoses'
 * waits on the network overlap doctor's other checks.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acct.h"
#include "clock.h"
#include "conn.h"
#include "ctl.h"
#include "dns.h"
#include "doctor.h"
#include "fsx.h"
#include "msg.h"
#include "qstatus.h"
#include "queue.h"
/* smtproutes as mta-remote reads it: a routed domain is tried where
 * mta-remote would send it */
#include "route.h"

#define DIAG_MAX 10
#define MX_MAX 3
#define DOMAIN_MS 5000
#define WAIT_MS 5500
/* a try of a DNS question; c-ares makes two, the second twice as long:
 * 1.5 s before a resolver that never answers is given up, as in the mx
 * check, rather than the 3 s that 1000 gave */
#define DNS_TRY_MS 500

/* control/timeoutconnect in ms, read by the parent before the children
 * start (each child has its copy) */
static int g_connect_ms = DOMAIN_MS;
#define OLD_US (24ULL * 3600 * 1000000)
/* reading status files stops after this long (a cold cache under a
 * queue of 100,000 costs seconds of disk); messages are still counted
 * from their names, and the report says the tally is partial */
#define SCAN_MS 2500
/* a status file larger than this is not read: mta-send writes a line an
 * event, and QUEUE_RCPTS_MAX recipients with many tries stay far below */
#define STATUS_MAX (16 * 1024 * 1024)

struct qscan {
	unsigned long msgs;
	uint64_t oldest_us;	/* arrival of the oldest, 0 if none */
	struct str doms;	/* deferred recipients' domains, NUL ended */
	unsigned long deferred;
	unsigned long unread;	/* status files left unread after SCAN_MS */
	int64_t scan_end;	/* now_ms() at which reading them stops */
};

struct tally {
	const char *dom;
	unsigned long n;
};

/* seen_id - count one message by its ID, keeping the oldest arrival */
static int seen_id(struct qscan *q, const char *name)
{
	uint64_t at, ino;

	if (queue_id_parse(name, &at, &ino) < 0)
		return 0;
	q->msgs++;
	if (!q->oldest_us || at < q->oldest_us)
		q->oldest_us = at;
	return 1;
}

/* add_deferred - the domains of the envelope's deferred recipients */
static int add_deferred(struct qscan *q, const struct qenv *e,
			const struct qrcpt *r)
{
	const char *a = e->rcpts.s, *at;
	size_t i, off;
	char *s;

	for (i = 0; i < e->nrcpts; i++, a += strlen(a) + 1) {
		if (r[i].state != QS_PENDING || !r[i].tries ||
		    !(at = strrchr(a, '@')) || !at[1])
			continue;
		off = q->doms.len;
		if (str_catb(&q->doms, at + 1, strlen(at + 1) + 1) < 0)
			return -ENOMEM;
		for (s = q->doms.s + off; *s; s++)
			if (*s >= 'A' && *s <= 'Z')
				*s = (char)(*s - 'A' + 'a');
		q->deferred++;
	}
	return 0;
}

/* read_deferred - the envelope and status of message ID (path in p,
 * ".s" already cut off); a message that cannot be read is skipped: the
 * scheduler quarantines what it cannot use */
static int read_deferred(struct qscan *q, struct str *p)
{
	struct qenv e;
	struct qrcpt *r = NULL;
	struct str st = STR_INIT;
	uint64_t blen;
	off_t boff;
	int fd, ret = 0;

	qenv_init(&e);
	fd = open(p->s, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || queue_read_env(fd, &e, &boff, &blen) < 0 ||
	    str_cats(p, ".s") < 0 || fsx_read_file(p->s, &st, STATUS_MAX) < 0)
		goto out;
	r = calloc(e.nrcpts ? e.nrcpts : 1, sizeof *r);
	if (!r) {
		ret = -ENOMEM;
		goto out;
	}
	if (qstatus_parse(st.s, st.len, r, e.nrcpts) == 0)
		ret = add_deferred(q, &e, r);
	qrcpt_free(r, e.nrcpts);
	free(r);
out:
	if (fd >= 0)
		(void)close(fd);
	qenv_free(&e);
	str_free(&st);
	return ret;
}

/* scan_dir - one directory of the queue: msg/HH (status files followed)
 * or new/ */
static int scan_dir(struct qscan *q, const char *dir, int status)
{
	struct str p = STR_INIT;
	struct dirent *de;
	DIR *dh = opendir(dir);
	size_t n;
	int r = 0;

	if (!dh)
		return errno == ENOENT ? 0 : -errno;
	/* errno is cleared before each readdir(): NULL is the end or an
	 * error, and only errno tells */
	while (r == 0 && (errno = 0, de = readdir(dh)) != NULL) {
		n = strlen(de->d_name);
		if (!status || n < 3 || strcmp(de->d_name + n - 2, ".s")) {
			(void)seen_id(q, de->d_name);
			continue;
		}
		if (now_ms() > q->scan_end) {
			q->unread++;
			continue;
		}
		p.len = 0;
		if (str_catf(&p, "%s/%.*s", dir, (int)(n - 2), de->d_name) < 0)
			r = -ENOMEM;
		else
			r = read_deferred(q, &p);
	}
	if (r == 0 && !de && errno)
		r = -errno;
	(void)closedir(dh);
	str_free(&p);
	return r;
}

/* scan_queue - new/ and every msg/HH/ */
static int scan_queue(struct doctor *d, struct qscan *q)
{
	struct str dir = STR_INIT;
	unsigned h;
	int r;

	r = str_catf(&dir, "%s/queue/new", d->root);
	if (r == 0)
		r = scan_dir(q, dir.s, 0);
	for (h = 0; r == 0 && h < 256; h++) {
		dir.len = 0;
		r = str_catf(&dir, "%s/queue/msg/%02x", d->root, h);
		if (r == 0)
			r = scan_dir(q, dir.s, 1);
	}
	str_free(&dir);
	return r;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_tally(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;

	return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->dom, y->dom);
}

/* is_hosted - 1 when DOM is ours (assign.cdb): its deferrals are local
 * deliveries, which the network cannot explain */
static int is_hosted(struct doctor *d, const char *dom)
{
	struct acct_domain ad = {STR_INIT, STR_INIT, 1};
	int r = acct_domain(d->root, dom, &ad);

	acct_domain_free(&ad);
	return r == 0;
}

/* top_domains - the remote deferred domains, most recipients first */
static int top_domains(struct doctor *d, struct qscan *q, struct tally **t_r,
		       size_t *n_r)
{
	const char **v;
	struct tally *t;
	size_t i, k = 0, n = 0;
	const char *s = q->doms.s;

	*t_r = NULL;
	*n_r = 0;
	if (!q->deferred)
		return 0;
	v = calloc(q->deferred, sizeof *v);
	t = calloc(q->deferred, sizeof *t);
	if (!v || !t) {
		free(v);
		free(t);
		return -ENOMEM;
	}
	for (i = 0; i < q->deferred; i++, s += strlen(s) + 1)
		v[i] = s;
	qsort(v, q->deferred, sizeof *v, cmp_str);
	for (i = 0; i < q->deferred; i = k) {
		for (k = i; k < q->deferred && !strcmp(v[k], v[i]); k++)
			;
		if (is_hosted(d, v[i]))
			continue;
		t[n].dom = v[i];
		t[n++].n = k - i;
	}
	free(v);
	qsort(t, n, sizeof *t, cmp_tally);
	*t_r = t;
	*n_r = n;
	return 0;
}

/* ---- the diagnosis of one domain, in a child ---- */

/* left_ms - what remains of the budget, at least 1 */
static int left_ms(int64_t deadline)
{
	int64_t l = deadline - now_ms();

	return l < 1 ? 1 : l > DOMAIN_MS ? DOMAIN_MS : (int)l;
}

/* dial - a TCP connection to A:port by UNTIL (now_ms()); the descriptor, or -1
 * with what went wrong in out */
static int dial(const struct dns_addr *a, unsigned long port, int64_t until,
		struct str *out)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl = sizeof *s4;
	int fd, err = 0, r;

	memset(&ss, 0, sizeof ss);
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	s4->sin_addr = a->a.v4;
	if (a->family == AF_INET6) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = a->a.v6;
		sl = sizeof *s6;
	}
	fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		err = errno;
	else if (connect(fd, (struct sockaddr *)&ss, sl) < 0 &&
		 errno != EINPROGRESS)
		err = errno;
	else if ((r = conn_wait(fd, POLLOUT, until)) < 0)
		err = -r;
	else {
		sl = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
			err = errno;
	}
	if (!err)
		return fd;
	(void)str_cats(out, err == ETIMEDOUT ? "connect timed out" :
		       strerror(err));
	if (fd >= 0)
		(void)close(fd);
	return -1;
}

/* greeting - connect to A:port and read the first greeting line into
 * out; 1 for a 220 greeting, 0 for anything else (said in out). The
 * connect waits control/timeoutconnect at most, all within deadline */
static int greeting(const struct dns_addr *a, unsigned long port,
		    int64_t deadline, struct str *out)
{
	int64_t until = now_ms() + g_connect_ms;
	struct str line = STR_INIT;
	struct conn c;
	int fd, r;

	fd = dial(a, port, until < deadline ? until : deadline, out);
	if (fd < 0)
		return 0;
	conn_init(&c, fd, fd, (unsigned long)(left_ms(deadline) + 999) / 1000);
	r = conn_getline(&c, &line, 512);
	if (r < 0)
		(void)str_catf(out, "no greeting: %s", r == -ETIMEDOUT ?
			       "timed out" : r == -EPIPE ?
			       "connection closed" : msg_err(r));
	else
		qstatus_clean(out, line.s, line.len);
	conn_free(&c);
	(void)close(fd);
	r = r == 0 && line.len >= 3 && !strncmp(line.s, "220", 3);
	str_free(&line);
	return r;
}

/* next_seen - the separator before one more thing seen of DOM */
static const char *next_seen(const struct str *out, const char *dom)
{
	return out->len == strlen(dom) + 2 ? ": " : ", ";
}

/* try_host - the addresses of HOST (first MX_MAX), each connected to;
 * 1 when one greeted with 220 */
static int try_host(struct dns *dns, const char *dom, const char *label,
		    const char *host, unsigned long port, int64_t deadline,
		    struct str *out)
{
	struct dns_addr *a = NULL;
	char ip[INET6_ADDRSTRLEN];
	size_t n = 0, i;
	int r, good = 0;

	r = dns_addrs(dns, host, &a, &n);
	if (r < 0)
		return str_catf(out, "%s%s %s: no address (%s)",
				next_seen(out, dom), label, host,
				r == -ENOENT ? "NXDOMAIN" : msg_err(r)), 0;
	for (i = 0; i < n && i < MX_MAX && !good; i++) {
		if (!inet_ntop(a[i].family, &a[i].a, ip, sizeof ip))
			(void)strcpy(ip, "?");
		(void)str_catf(out, "%s%s %s %s: ", next_seen(out, dom), label,
			       host, ip);
		good = greeting(&a[i], port, deadline, out);
	}
	free(a);
	return good;
}

/* by_mx - the domain's MX hosts (or, without MX, its own address) */
static int by_mx(struct dns *dns, const char *dom, unsigned long port,
		 int64_t deadline, struct str *out)
{
	struct dns_mx *mx = NULL;
	size_t n = 0, i;
	int r, good = 0;

	r = dns_mx(dns, dom, &mx, &n);
	if (r == -ENODATA) /* no MX: the domain's own address (RFC 5321) */
		good = try_host(dns, dom, "host", dom, port, deadline, out);
	else if (r == -ENOENT)
		(void)str_cats(out, ": does not exist (NXDOMAIN)");
	else if (r < 0)
		(void)str_catf(out, ": MX lookup failed: %s", r == -EAGAIN ?
			       "temporary DNS failure (no answer, SERVFAIL or "
			       "REFUSED)" : msg_err(r));
	else if (n == 1 && !mx[0].host[0])
		(void)str_cats(out, ": null MX, accepts no mail");
	for (i = 0; r == 0 && i < n && i < MX_MAX && !good; i++)
		if (mx[i].host[0] && left_ms(deadline) > 1)
			good = try_host(dns, dom, "MX", mx[i].host, port,
					deadline, out);
	dns_mx_free(mx, n);
	return good;
}

/* by_literal - an IP address (route_hostport() checked it), no DNS */
static int by_literal(const struct hostport *hp, unsigned long port,
		      int64_t deadline, struct str *out)
{
	struct dns_addr a;

	memset(&a, 0, sizeof a);
	a.family = strchr(hp->host.s, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(a.family, hp->host.s, &a.a) != 1)
		return 0;
	return greeting(&a, port, deadline, out);
}

/* by_route - the one host of a smtproutes line */
static int by_route(struct dns *dns, const char *dom, const struct route *rt,
		    unsigned long port, int64_t deadline, struct str *out)
{
	(void)str_catf(out, ": smtproutes line %zu", rt->line);
	if (!rt->hp.literal)
		return try_host(dns, dom, "host", rt->hp.host.s, port,
				deadline, out);
	(void)str_catf(out, ", [%s]: ", rt->hp.host.s);
	return by_literal(&rt->hp, port, deadline, out);
}

/* by_domain_literal - a recipient at [192.0.2.1]: mta-remote connects
 * to the address itself */
static int by_domain_literal(const char *dom, unsigned long port,
			     int64_t deadline, struct str *out)
{
	struct hostport hp = {STR_INIT, 0, 0};
	int good = 0;

	if (route_hostport(dom, strlen(dom), &hp) < 0 || !hp.literal ||
	    hp.port)
		(void)str_cats(out, ": not an address literal");
	else {
		(void)str_cats(out, ": ");
		good = by_literal(&hp, port, deadline, out);
	}
	str_free(&hp.host);
	return good;
}

/* diagnose - what a domain's MX (or its route) say, into out (after
 * "G " or "B "); ROUTES are control/smtproutes' N lines */
static void diagnose(const char *root, const char *dom, unsigned long port,
		     const struct str *routes, size_t n, struct str *out)
{
	int64_t deadline = now_ms() + DOMAIN_MS;
	struct route rt = {0, 0, {STR_INIT, 0, 0}, 0};
	struct dns *dns = NULL;
	size_t bad = 0;
	int r, good = 0;

	(void)str_catf(out, "B %s", dom);
	r = route_lookup(routes->s, n, dom, &rt, &bad);
	if (r < 0)
		(void)str_catf(out, ": control/smtproutes line %zu is "
			       "malformed", bad);
	else if ((r = dns_open(&dns, root, DNS_TRY_MS)) < 0)
		(void)str_catf(out, ": no resolver: %s", msg_err(r));
	if (r == 0 && rt.found && rt.hp.port)
		port = rt.hp.port;
	if (r == 0 && rt.found && !rt.use_mx)
		good = by_route(dns, dom, &rt, port, deadline, out);
	else if (r == 0 && dom[0] == '[')
		good = by_domain_literal(dom, port, deadline, out);
	else if (r == 0)
		good = by_mx(dns, dom, port, deadline, out);
	if (good)
		out->s[0] = 'G';
	route_free(&rt);
	if (dns)
		dns_close(dns);
}

/* ---- the children, and what the parent makes of them ---- */

struct probe {
	pid_t pid;
	int fd;			/* the read end of the child's pipe, or -1 */
	struct str said;	/* "G dom..." or "B dom..." */
};

/* spawn - one child diagnosing DOM, its answer on a pipe */
static int spawn(struct doctor *d, const char *dom, unsigned long port,
		 const struct str *routes, size_t nroutes, struct probe *pr)
{
	struct str out = STR_INIT;
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pr->pid = fork();
	if (pr->pid < 0) {
		(void)close(fds[0]);
		(void)close(fds[1]);
		return -errno;
	}
	if (pr->pid == 0) {
		(void)close(fds[0]);
		diagnose(d->root, dom, port, routes, nroutes, &out);
		(void)fsx_write_all(fds[1], out.s, out.len);
		_exit(0);
	}
	(void)close(fds[1]);
	pr->fd = fds[0];
	return 0;
}

/* collect - read the children's answers until all ended or DEADLINE
 * (WAIT_MS after they were started) */
static void collect(struct probe *pr, size_t n, int64_t deadline)
{
	struct pollfd pf[DIAG_MAX];
	char buf[512];
	size_t i, live = n;
	ssize_t got;

	while (live && now_ms() < deadline) {
		for (i = 0; i < n; i++)
			pf[i] = (struct pollfd){pr[i].fd, POLLIN, 0};
		if (poll(pf, n, (int)(deadline - now_ms())) < 0 &&
		    errno != EINTR)
			break;
		for (i = 0; i < n; i++) {
			if (pr[i].fd < 0 || !pf[i].revents)
				continue;
			got = read(pr[i].fd, buf, sizeof buf);
			if (got > 0 &&
			    str_catb(&pr[i].said, buf, (size_t)got) == 0)
				continue;
			(void)close(pr[i].fd);
			pr[i].fd = -1;
			live--;
		}
	}
}

/* reap - end the children (a late one is killed) and close the pipes */
static void reap(struct probe *pr, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (pr[i].fd >= 0) {
			(void)close(pr[i].fd);
			pr[i].fd = -1;
		}
		if (pr[i].pid > 0) {
			(void)kill(pr[i].pid, SIGKILL);
			while (waitpid(pr[i].pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
	}
}

/* connect_ms - control/timeoutconnect, as mta-remote reads it, in ms;
 * the domain's budget still bounds it */
static int connect_ms(const char *root)
{
	unsigned long s;

	if (ctl_num(root, CTL_TIMEOUTCONNECT, &s) < 0 || s > DOMAIN_MS / 1000)
		return DOMAIN_MS;
	return (int)s * 1000;
}

/* remote_port - control/remoteport, which mta-remote connects to */
static unsigned long remote_port(struct doctor *d)
{
	unsigned long port;

	if (ctl_num(d->root, CTL_REMOTEPORT, &port) != 0)
		port = ctl_nums[CTL_REMOTEPORT].def;
	return port;
}

/* the check between its start and its finish */
struct qjob {
	struct doctor *d;
	struct report *p;
	struct qscan q;
	struct tally *t;	/* the deferred domains, most first */
	size_t n;		/* of which the first are diagnosed */
	int r;			/* reading the queue: 0 or -errno */
	int bad;		/* problems said so far */
	struct probe pr[DIAG_MAX];
	int64_t wait_end;	/* the children's answers are taken until */
};

/* diagnose_start - a child for each of the first DIAG_MAX domains, all
 * at once; their answers are read by diagnose_finish */
static void diagnose_start(struct qjob *j)
{
	unsigned long port = remote_port(j->d);
	struct str routes = STR_INIT;
	size_t i, nroutes = 0;

	g_connect_ms = connect_ms(j->d->root);
	if (ctl_get_lines(j->d->root, "smtproutes", &routes, &nroutes) < 0) {
		(void)say(j->p, WARN, "cannot read control/smtproutes; make "
			  "it readable by the mail user, as mta-remote needs");
		j->bad++;
		nroutes = 0;
	}
	if (j->n > DIAG_MAX)
		j->n = DIAG_MAX;
	for (i = 0; i < j->n; i++) {
		j->pr[i] = (struct probe){-1, -1, STR_INIT};
		if (spawn(j->d, j->t[i].dom, port, &routes, nroutes,
			  &j->pr[i]) < 0)
			(void)str_catf(&j->pr[i].said, "B %s: cannot start a "
				       "diagnosis", j->t[i].dom);
	}
	j->wait_end = now_ms() + WAIT_MS;
	str_free(&routes);
}

/* diagnose_finish - a warning for each domain whose diagnosis failed */
static void diagnose_finish(struct qjob *j)
{
	struct probe *pr = j->pr;
	size_t i;

	collect(pr, j->n, j->wait_end);
	reap(pr, j->n);
	for (i = 0; i < j->n; i++) {
		if (pr[i].said.len < 2)
			(void)str_catf(&pr[i].said, "B %s: no diagnosis within "
				       "%d ms", j->t[i].dom, WAIT_MS);
		if (pr[i].said.len < 2 || pr[i].said.s[0] != 'G') {
			j->bad++;
			(void)say(j->p, WARN, "%lu deferred recipient%s at %s; "
				  "check the domain and its mail servers, or "
				  "wait for mta-send's retries",
				  j->t[i].n, j->t[i].n == 1 ? "" : "s",
				  pr[i].said.len > 2 ? pr[i].said.s + 2 :
				  j->t[i].dom);
		}
		str_free(&pr[i].said);
	}
}

/* age_text - a duration in its largest unit, for a message's age */
static void age_text(struct str *out, uint64_t us)
{
	uint64_t s = us / 1000000;

	if (s >= 86400)
		(void)str_catf(out, "%llud", (unsigned long long)(s / 86400));
	else if (s >= 3600)
		(void)str_catf(out, "%lluh", (unsigned long long)(s / 3600));
	else
		(void)str_catf(out, "%llus", (unsigned long long)s);
}

/* queue_begin - read the queue and start the diagnoses */
static int queue_begin(struct doctor *d, struct report *p, void **job_r)
{
	struct qjob *j = calloc(1, sizeof *j);

	*job_r = j;
	if (!j)
		return -ENOMEM;
	j->d = d;
	j->p = p;
	j->q = (struct qscan){0, 0, STR_INIT, 0, 0, now_ms() + SCAN_MS};
	j->r = scan_queue(d, &j->q);
	if (j->r == 0)
		j->r = top_domains(d, &j->q, &j->t, &j->n);
	if (j->r == 0 && j->n)
		diagnose_start(j);
	return 0;
}

/* queue_end - the diagnoses' answers, the age, the verdict */
static int queue_end(void *job, struct report *p)
{
	struct qjob *j = job;
	struct str age = STR_INIT;
	uint64_t now = now_us();
	int v = OK;

	if (!j)
		return say(p, WARN, "not checked: out of memory");
	if (j->r < 0)
		v = say(p, WARN, "cannot read the queue: %s; make queue/ "
			"readable by the mail user", msg_err(j->r));
	if (j->r == 0 && j->n)
		diagnose_finish(j);
	if (j->bad)
		v = WARN;
	if (j->r == 0 && j->q.oldest_us && now > j->q.oldest_us + OLD_US) {
		age_text(&age, now - j->q.oldest_us);
		v = say(p, WARN, "%lu message%s queued, the oldest %s old; "
			"see the deferred domains and the log for why",
			j->q.msgs, j->q.msgs == 1 ? "" : "s", age.s);
	}
	if (j->r == 0 && j->q.unread)
		v = say(p, WARN, "%lu of the %lu queued messages' status files "
			"were not read in time: the deferred domains above are "
			"from the others; run facteur doctor again (the file "
			"cache is warm now) or see mta-qstat", j->q.unread,
			j->q.msgs);
	str_free(&age);
	free(j->t);
	str_free(&j->q.doms);
	free(j);
	return v;
}

/* ---- the check in a child of doctor's, beside the other checks ---- */

/* the report a child sends: its verdict, then line, what, fix, done,
 * each a 32-bit length and its bytes; more than this is not read */
#define REPORT_MAX (1024 * 1024)
/* the child's work is bounded by SCAN_MS and WAIT_MS; past this it is
 * stuck, and killed */
#define CHILD_MS (SCAN_MS + WAIT_MS + 2000)

struct qchild {
	pid_t pid;
	int fd;			/* the read end of its pipe */
	int64_t deadline;
	struct str got;		/* what it sent */
};

/* put_report - the verdict and the report P on FD */
static int put_report(int fd, int v, const struct report *p)
{
	const struct str *f[] = {&p->line, &p->what, &p->fix, &p->done};
	unsigned char b[4];
	size_t i;
	uint32_t n;
	int r;

	b[0] = (unsigned char)v;
	r = fsx_write_all(fd, b, 1);
	for (i = 0; r == 0 && i < sizeof f / sizeof f[0]; i++) {
		n = f[i]->len > REPORT_MAX ? 0 : (uint32_t)f[i]->len;
		memcpy(b, &n, 4);
		r = fsx_write_all(fd, b, 4);
		if (r == 0 && n)
			r = fsx_write_all(fd, f[i]->s, n);
	}
	return r;
}

/* get_report - what put_report wrote, from S (N bytes), into P; the
 * verdict, or -EPROTO for a report cut short */
static int get_report(const char *s, size_t n, struct report *p)
{
	struct str *f[] = {&p->line, &p->what, &p->fix, &p->done};
	size_t i, pos = 1;
	uint32_t len;
	int v;

	if (n < 1 || (unsigned char)s[0] > FAIL)
		return -EPROTO;
	v = (unsigned char)s[0];
	for (i = 0; i < sizeof f / sizeof f[0]; i++) {
		if (n - pos < 4)
			return -EPROTO;
		memcpy(&len, s + pos, 4);
		pos += 4;
		if (n - pos < len || str_catb(f[i], s + pos, len) < 0)
			return -EPROTO;
		pos += len;
	}
	return pos == n ? v : -EPROTO;
}

/* check_queue_start - the check in a child of its own, which reads the
 * queue and diagnoses the domains while doctor's other checks run.
 * Called before any thread of doctor's exists: the child (and its own
 * children) are forked from a process of one thread, so they find no
 * lock held */
int check_queue_start(struct doctor *d, struct report *p, void **job_r)
{
	struct qchild *c = calloc(1, sizeof *c);
	void *job = NULL;
	int fds[2], v;

	*job_r = c;
	if (!c || pipe2(fds, O_CLOEXEC) < 0)
		return -ENOMEM;
	/* the lines printed so far, out before a child has a copy of them
	 * (a sanitizer's _exit may flush it) */
	(void)fflush(stdout);
	c->pid = fork();
	if (c->pid == 0) {
		(void)close(fds[0]);
		(void)queue_begin(d, p, &job);
		v = queue_end(job, p);
		_exit(put_report(fds[1], v, p) < 0);
	}
	(void)close(fds[1]);
	c->fd = c->pid < 0 ? -1 : fds[0];
	if (c->pid < 0)
		(void)close(fds[0]);
	c->deadline = now_ms() + CHILD_MS;
	return 0;
}

/* check_queue_done - the child's answer is whole: finishing would not
 * wait */
int check_queue_done(void *job)
{
	struct qchild *c = job;
	struct pollfd pf;
	char buf[4096];
	ssize_t got;

	if (!c || c->fd < 0)
		return 1;
	pf = (struct pollfd){c->fd, POLLIN, 0};
	while (poll(&pf, 1, 0) > 0) {
		got = read(c->fd, buf, sizeof buf);
		if (got <= 0 || c->got.len > REPORT_MAX ||
		    str_catb(&c->got, buf, (size_t)got) < 0) {
			(void)close(c->fd);
			c->fd = -1;
			return 1;
		}
	}
	return 0;
}

/* check_queue_finish - the child's report, waited for until its
 * deadline (then it is killed) */
int check_queue_finish(void *job, struct report *p)
{
	struct qchild *c = job;
	struct pollfd pf;
	int v = -EPROTO;

	if (!c)
		return say(p, WARN, "not checked: out of memory");
	while (c->fd >= 0 && now_ms() < c->deadline) {
		pf = (struct pollfd){c->fd, POLLIN, 0};
		if (poll(&pf, 1, (int)(c->deadline - now_ms())) < 0 &&
		    errno != EINTR)
			break;
		(void)check_queue_done(c);
	}
	if (c->fd >= 0) {
		(void)close(c->fd);
		(void)kill(c->pid, SIGKILL);
	} else if (c->pid > 0) {
		v = get_report(c->got.s, c->got.len, p);
	}
	if (c->pid > 0)
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	str_free(&c->got);
	free(c);
	if (v < 0)
		v = say(p, WARN, "not checked: the queue check did not end "
			"within %d ms or failed; run facteur doctor again",
			CHILD_MS);
	return v;
}
