/*
 * doctor_mx - `facteur doctor`'s mx check: the MX records of every
 * hosted domain (real and alias, from the database) lead to this host.
 *
 * An MX host leads here when it is control/me, or when one of its
 * addresses is one mta-smtpd listens on: an address of listen.smtp (its
 * defaults when the file is missing), and for an unspecified one
 * (0.0.0.0, ::) every address of this machine's interfaces
 * (getifaddrs). A domain without MX records gets its mail at its own
 * A/AAAA records (RFC 5321 5.1), judged the same way; a domain with
 * neither gets no mail at all, a FAIL. A domain whose MX leads elsewhere
 * is a warning naming the MX hosts: a backup MX or a filtering service
 * in front is legitimate.
 *
 * Bounded: the questions go through lib/dns (control/resolvers, else
 * /etc/resolv.conf) as two batches (dns_batch, up to DNS_BATCH_WINDOW
 * queries in flight): the MX of every domain, then the addresses of
 * every MX host named (each host once: domains share them) and of every
 * domain without MX; each try of a query MX_TRY_MS, and both batches
 * within one deadline, MX_TOTAL_MS after the check began. A domain
 * whose answers have not all come by then is counted as unchecked
 * (timeout), a warning, instead of being waited for: with no resolver
 * reachable the check costs MX_TOTAL_MS, whatever the number of
 * domains. Past MX_MAX domains a random sample of MX_MAX is checked,
 * and the report says so. At most MX_SAY problems are spelled out; the
 * rest are counted.
 *
 * The check runs beside the others: check_mx_start reads what it needs
 * from the database and the control files in the caller's thread (the
 * database connection is the caller's alone), then asks and judges on a
 * thread of its own, which writes only its own report; doctor.c takes
 * the verdict with check_mx_finish when it prints the check's line, so
 * the waits on the network overlap the disk checks.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "clock.h"
#include "ctl.h"
#include "dns.h"
#include "doctor.h"
#include "listen.h"
#include "msg.h"
#include "store.h"

#define MX_TRY_MS 500
#define MX_TOTAL_MS 3000
#define MX_MAX 1000
#define MX_SAY 10
/* the unchecked domains named before only their count goes on */
#define MX_NAMED 3

struct mxc {
	struct doctor *d;
	struct report *p;
	struct dns *dns;
	struct str me;
	struct dns_addr *ours;	/* where mta-smtpd listens */
	size_t nours;
	size_t said, unsaid;	/* problems spelled out, and the others */
	struct dns_q *aq;	/* the address questions, sorted by name */
	size_t naq, aqcap;
	size_t late;		/* domains unchecked: no answer in time */
	struct str late_names;	/* the first MX_NAMED of them */
	struct dns_q *q;	/* the domains' MX questions */
	size_t n;
	long total;		/* domains hosted */
	int r;			/* reading them: 0 or -errno */
	int64_t deadline;	/* of the whole check */
	struct beside_thread bt;
	int v;
};

/* add_ours - one more address mta-smtpd listens on */
static int add_ours(struct mxc *m, int family, const void *a)
{
	struct dns_addr *n = realloc(m->ours, (m->nours + 1) * sizeof *n);

	if (!n)
		return -ENOMEM;
	m->ours = n;
	memset(&n[m->nours], 0, sizeof *n);
	n[m->nours].family = family;
	memcpy(&n[m->nours++].a, a, family == AF_INET ? 4 : 16);
	return 0;
}

/* add_ifaces - every interface address: what 0.0.0.0 and :: take */
static int add_ifaces(struct mxc *m)
{
	struct ifaddrs *ifa, *i;
	int r = 0;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (i = ifa; r == 0 && i; i = i->ifa_next) {
		const struct sockaddr *sa = i->ifa_addr;

		if (sa && sa->sa_family == AF_INET)
			r = add_ours(m, AF_INET,
				     &((const struct sockaddr_in *)sa)->sin_addr);
		else if (sa && sa->sa_family == AF_INET6)
			r = add_ours(m, AF_INET6, &((const struct sockaddr_in6 *)
						     sa)->sin6_addr);
	}
	freeifaddrs(ifa);
	return r;
}

/* add_line - the address of one listen.smtp line */
static int add_line(struct mxc *m, const char *line, int *any)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
	socklen_t len;

	if (listen_parse(line, &ss, &len) < 0)
		return 0;	/* the control check says it */
	if (ss.ss_family == AF_INET) {
		*any |= s4->sin_addr.s_addr == INADDR_ANY;
		return add_ours(m, AF_INET, &s4->sin_addr);
	}
	*any |= IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
	return add_ours(m, AF_INET6, &s6->sin6_addr);
}

/* load_ours - the addresses of listen.smtp; a missing file is 0.0.0.0
 * and :: (lib/listen's default) */
static int load_ours(struct mxc *m)
{
	struct str lines = STR_INIT;
	struct stat st;
	const char *s;
	size_t n = 0, k;
	int any = 0, r = ctl_path(&lines, m->d->root, "listen.smtp");

	if (r == 0 && stat(lines.s, &st) < 0 && errno == ENOENT)
		any = 1;
	else if (r == 0)
		r = ctl_get_lines(m->d->root, "listen.smtp", &lines, &n);
	for (k = 0, s = lines.s; r == 0 && k < n; k++, s += strlen(s) + 1)
		r = add_line(m, s, &any);
	if (r == 0 && any)
		r = add_ifaces(m);
	str_free(&lines);
	return r;
}

/* is_ours - one of A's N addresses is where mta-smtpd listens */
static int is_ours(const struct mxc *m, const struct dns_addr *a, size_t n)
{
	size_t i, k;

	for (i = 0; i < n; i++)
		for (k = 0; k < m->nours; k++)
			if (a[i].family == m->ours[k].family &&
			    !memcmp(&a[i].a, &m->ours[k].a,
				    a[i].family == AF_INET ? 4 : 16))
				return 1;
	return 0;
}

/* the verdict of a name's addresses: ours, not ours, or no answer */
enum { NOT_OURS, OURS, TIMED_OUT };

/* by_name - order of the names asked for addresses (DNS is caseless) */
static int by_name(const void *a, const void *b)
{
	const struct dns_q *x = a, *y = b;

	return strcasecmp(x->name, y->name);
}

/* addrs_of - the answer for NAME among the address questions */
static const struct dns_q *addrs_of(const struct mxc *m, const char *name)
{
	struct dns_q key = {.name = name};

	return bsearch(&key, m->aq, m->naq, sizeof key, by_name);
}

/* host_ours - HOST is control/me or has an address of ours */
static int host_ours(const struct mxc *m, const char *host)
{
	const struct dns_q *q;

	if (m->me.len && !strcasecmp(host, m->me.s))
		return OURS;
	q = addrs_of(m, host);
	if (q && q->r == -ETIMEDOUT)
		return TIMED_OUT;
	return q && q->r == 0 && is_ours(m, q->addrs, q->naddrs) ? OURS :
		NOT_OURS;
}

/* problem - a domain's verdict, spelled out for the first MX_SAY only:
 * a thousand domains pointing elsewhere would drown the report */
#define problem(m, level, ...) say_capped(m, MX_SAY, level, __VA_ARGS__)

/* timed_out - DOM got no answer in time: counted, the first named */
static void timed_out(struct mxc *m, const char *dom)
{
	if (m->late++ < MX_NAMED)
		(void)str_catf(&m->late_names, "%s%s", m->late > 1 ? ", " : "",
			       dom);
}

/* no_mx - a domain without MX: its A/AAAA records, or nothing */
static void no_mx(struct mxc *m, const char *dom)
{
	const struct dns_q *q = addrs_of(m, dom);
	int r = q ? q->r : -ENOMEM;

	if (r == -ETIMEDOUT)
		timed_out(m, dom);
	else if (r == -ENOENT || r == -ENODATA || (r == 0 && q->naddrs == 0))
		problem(m, FAIL, "%s has no MX and no address record, so no "
			"mail reaches it; publish an MX record naming %s", dom,
			m->me.len ? m->me.s : "this host");
	else if (r < 0)
		problem(m, WARN, "%s: no MX, and its address cannot be looked "
			"up: %s; check control/resolvers", dom, msg_err(r));
	else if (!is_ours(m, q->addrs, q->naddrs))
		problem(m, WARN, "%s has no MX and its address is not this "
			"host's; publish an MX record naming %s", dom,
			m->me.len ? m->me.s : "this host");
}

/* one_domain - DOM's MX records (its answer Q) lead here */
static void one_domain(struct mxc *m, const char *dom, const struct dns_q *q)
{
	struct str hosts = STR_INIT;
	size_t i;
	int ours = NOT_OURS, late = 0;

	if (q->r == -ETIMEDOUT)
		timed_out(m, dom);
	else if (q->r == -ENOENT || q->r == -ENODATA)
		no_mx(m, dom);
	else if (q->r < 0)
		problem(m, WARN, "cannot look up the MX of %s: %s; check "
			"control/resolvers", dom, q->r == -EAGAIN ? "no answer "
			"from the DNS servers" : msg_err(q->r));
	else if (q->nmx == 1 && q->mx[0].host[0] == 0)
		problem(m, WARN, "%s has a null MX (RFC 7505): it takes no "
			"mail; publish an MX record naming %s", dom,
			m->me.len ? m->me.s : "this host");
	if (q->r < 0 || q->mx[0].host[0] == 0)
		return;
	for (i = 0; ours != OURS && i < q->nmx; i++) {
		ours = host_ours(m, q->mx[i].host);
		late |= ours == TIMED_OUT;
	}
	if (ours == OURS)
		return;
	if (late) {
		timed_out(m, dom);
		return;
	}
	for (i = 0; i < q->nmx; i++)
		(void)str_catf(&hosts, "%s%s", i ? ", " : "", q->mx[i].host);
	problem(m, WARN, "the MX of %s is %s, not this host; make it %s, or "
		"make sure that host relays to this one", dom, hosts.s ?
		hosts.s : "", m->me.len ? m->me.s : "this host");
	str_free(&hosts);
}

/* add_name - one more name whose addresses are asked */
static int add_name(struct mxc *m, const char *name)
{
	struct dns_q *n;

	if (m->naq == m->aqcap) {
		size_t cap = m->aqcap ? 2 * m->aqcap : 64;

		if (cap > SIZE_MAX / sizeof *n)
			return -ENOMEM;
		n = realloc(m->aq, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		m->aq = n;
		m->aqcap = cap;
	}
	memset(&m->aq[m->naq], 0, sizeof *m->aq);
	m->aq[m->naq].type = DNS_Q_ADDRS;
	m->aq[m->naq++].name = name;
	return 0;
}

/* ask_addrs - the addresses of every MX host that is not control/me and
 * of every domain without MX, each name once (hosts are shared) */
static int ask_addrs(struct mxc *m, const struct dns_q *mq, size_t n,
		     int64_t deadline)
{
	size_t i, k, u;
	int r = 0;

	for (i = 0; r == 0 && i < n; i++) {
		if (mq[i].r == -ENOENT || mq[i].r == -ENODATA)
			r = add_name(m, mq[i].name);
		for (k = 0; r == 0 && mq[i].r == 0 && k < mq[i].nmx; k++)
			if (mq[i].mx[k].host[0] && !(m->me.len &&
			    !strcasecmp(mq[i].mx[k].host, m->me.s)))
				r = add_name(m, mq[i].mx[k].host);
	}
	if (r < 0 || m->naq == 0)
		return r;
	qsort(m->aq, m->naq, sizeof *m->aq, by_name);
	for (i = 1, u = 1; i < m->naq; i++)
		if (by_name(&m->aq[i], &m->aq[u - 1]))
			m->aq[u++] = m->aq[i];
	m->naq = u;
	return dns_batch(m->dns, m->aq, m->naq, deadline);
}

/* load_domains - the domains to check (a random MX_MAX past MX_MAX),
 * as MX questions; *total_r the number hosted */
static int load_domains(struct mxc *m, struct dns_q **q_r, size_t *n_r,
			long *total_r)
{
	static const char sql[] =
		"SELECT name, (SELECT count(*) FROM domains) FROM domains "
		"ORDER BY CASE WHEN (SELECT count(*) FROM domains) > ?1 "
		"THEN random() ELSE 0 END, name LIMIT ?1";
	struct dns_q *q = calloc(MX_MAX, sizeof *q);
	struct store_stmt *st = NULL;
	size_t n = 0;
	int rc, r = 0;

	if (!q)
		return -ENOMEM;
	rc = store_prepare(m->d->db, sql, &st);
	if (rc == 0)
		rc = store_bind_int(st, 1, MX_MAX);
	while (r == 0 && n < MX_MAX && next_row(st, &rc)) {
		const char *name = (const char *)store_column_text(st, 0);

		*total_r = store_column_int(st, 1);
		q[n].type = DNS_Q_MX;
		q[n].name = name ? strdup(name) : NULL;
		r = q[n].name ? 0 : -ENOMEM;
		n += r == 0;
	}
	if (r == 0 && rc != STORE_DONE && rc != STORE_ROW)
		problem(m, FAIL, "cannot read the domains: %s",
			store_errmsg(m->d->db));
	store_finalize(st);
	*q_r = q;
	*n_r = n;
	return r;
}

/* resolve - the domains' MX questions at once, then the addresses of
 * their MX hosts at once, all by one deadline; a domain still without
 * its answers then is unchecked */
static void resolve(struct mxc *m)
{
	size_t i;
	int r = m->r;

	if (r == 0)
		r = dns_batch(m->dns, m->q, m->n, m->deadline);
	if (r == 0)
		r = ask_addrs(m, m->q, m->n, m->deadline);
	for (i = 0; r == 0 && i < m->n; i++)
		one_domain(m, m->q[i].name, &m->q[i]);
	if (r < 0)
		problem(m, WARN, "not checked: %s; run doctor again",
			msg_err(r));
	if (m->unsaid)
		(void)say(m->p, m->v, "%zu more domains like these", m->unsaid);
	if (m->late)
		m->v = say(m->p, m->v > WARN ? m->v : WARN, "%zu domains "
			   "unchecked (timeout): no DNS answer within %d s "
			   "(%s%s); check control/resolvers, or run doctor "
			   "again", m->late, MX_TOTAL_MS / 1000,
			   str_cstr(&m->late_names), m->late > MX_NAMED ?
			   ", ..." : "");
	if (m->total > MX_MAX)
		m->v = say(m->p, m->v > WARN ? m->v : WARN, "a random %zu of "
			   "%ld domains checked; run doctor again for others",
			   m->n, m->total);
}

/* resolver - the thread: the network part of the check */
static void *resolver(void *arg)
{
	struct mxc *m = arg;

	resolve(m);
	beside_end(&m->bt);
	return NULL;
}

/* prepare - what the check needs from the database and the control
 * files, read in the calling thread (the database connection is not
 * shared between threads); 0, or the check is over (m->v says) */
static int prepare(struct mxc *m)
{
	int r;

	if (!m->d->db) {
		m->v = say(m->p, WARN, "not checked: the database did not "
			   "open");
		return -1;
	}
	r = ctl_get(m->d->root, "me", "", &m->me);
	if (r == 0)
		r = load_ours(m);
	if (r == 0)
		r = dns_open(&m->dns, m->d->root, MX_TRY_MS);
	if (r == -EINVAL)
		m->v = say(m->p, WARN, "not checked: control/resolvers does "
			   "not parse; see the control check");
	else if (r < 0)
		m->v = say(m->p, WARN, "not checked: %s; check control/me, "
			   "control/listen.smtp and control/resolvers",
			   msg_err(r));
	if (r < 0)
		return -1;
	m->r = load_domains(m, &m->q, &m->n, &m->total);
	return 0;
}

/* check_mx_start - the check begun: its questions are asked on a thread
 * of its own while the disk checks run; *job_r for check_mx_finish */
int check_mx_start(struct doctor *d, struct report *p, void **job_r)
{
	struct mxc *m = calloc(1, sizeof *m);

	*job_r = m;
	if (!m)
		return -ENOMEM;
	m->d = d;
	m->p = p;
	m->v = OK;
	m->deadline = now_ms() + MX_TOTAL_MS;
	if (prepare(m) < 0) {
		beside_end(&m->bt);
		return 0;
	}
	/* no thread: the check runs here, as it did before it had one */
	beside_run(&m->bt, resolver, m);
	return 0;
}

/* check_mx_done - the thread has ended: finishing will not wait */
int check_mx_done(void *job)
{
	struct mxc *m = job;

	return !m || beside_ended(&m->bt);
}

/* check_mx_finish - wait for the check, free it; its verdict */
int check_mx_finish(void *job, struct report *p)
{
	struct mxc *m = job;
	size_t i;
	int v;

	if (!m)
		return say(p, WARN, "not checked: out of memory");
	beside_join(&m->bt);
	v = m->v;
	dns_close(m->dns);
	dns_batch_free(m->aq, m->naq);
	dns_batch_free(m->q, m->n);
	for (i = 0; i < m->n; i++)
		free((char *)m->q[i].name);
	free(m->q);
	free(m->ours);
	free(m->aq);
	str_free(&m->me);
	str_free(&m->late_names);
	free(m);
	return v;
}
