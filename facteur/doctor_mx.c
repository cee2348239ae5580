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
 * /etc/resolv.conf), one domain at a time (lib/dns asks one name's
 * questions in parallel, not several names'), each try of a query
 * MX_TRY_MS; no new domain is begun after MX_TOTAL_MS, and the domains
 * left are counted. Past MX_MAX domains a random sample of MX_MAX is
 * checked, and the report says so. At most MX_SAY problems are spelled
 * out; the rest are counted.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "clock.h"
#include "ctl.h"
#include "db.h"
#include "dns.h"
#include "doctor.h"
#include "listen.h"
#include "msg.h"

#define MX_TRY_MS 500
#define MX_TOTAL_MS 5000
#define MX_MAX 1000
#define MX_SAY 10

struct mxc {
	struct doctor *d;
	struct report *p;
	struct dns *dns;
	struct str me;
	struct dns_addr *ours;	/* where mta-smtpd listens */
	size_t nours;
	size_t said, unsaid;	/* problems spelled out, and the others */
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

/* host_ours - HOST is control/me or has an address of ours */
static int host_ours(struct mxc *m, const char *host)
{
	struct dns_addr *a = NULL;
	size_t n = 0;
	int ours;

	if (m->me.len && !strcasecmp(host, m->me.s))
		return 1;
	if (dns_addrs(m->dns, host, &a, &n) < 0)
		return 0;
	ours = is_ours(m, a, n);
	free(a);
	return ours;
}

/* problem - a domain's verdict, spelled out for the first MX_SAY only:
 * a thousand domains pointing elsewhere would drown the report */
#define problem(m, level, ...) do {					\
	if ((m)->v < (level))						\
		(m)->v = (level);					\
	if ((m)->said < MX_SAY) {					\
		(m)->said++;						\
		(void)say((m)->p, (level), __VA_ARGS__);		\
	} else {							\
		(m)->unsaid++;						\
	}								\
} while (0)

/* no_mx - a domain without MX: its A/AAAA records, or nothing */
static void no_mx(struct mxc *m, const char *dom)
{
	struct dns_addr *a = NULL;
	size_t n = 0;
	int r = dns_addrs(m->dns, dom, &a, &n);

	if (r == -ENOENT || r == -ENODATA || (r == 0 && n == 0))
		problem(m, FAIL, "%s has no MX and no address record, so no "
			"mail reaches it; publish an MX record naming %s", dom,
			m->me.len ? m->me.s : "this host");
	else if (r < 0)
		problem(m, WARN, "%s: no MX, and its address cannot be looked "
			"up: %s; check control/resolvers", dom, msg_err(r));
	else if (!is_ours(m, a, n))
		problem(m, WARN, "%s has no MX and its address is not this "
			"host's; publish an MX record naming %s", dom,
			m->me.len ? m->me.s : "this host");
	free(a);
}

/* one_domain - DOM's MX records lead here */
static void one_domain(struct mxc *m, const char *dom)
{
	struct dns_mx *mx = NULL;
	struct str hosts = STR_INIT;
	size_t n = 0, i;
	int r = dns_mx(m->dns, dom, &mx, &n), ours = 0;

	if (r == -ENOENT || r == -ENODATA)
		no_mx(m, dom);
	else if (r < 0)
		problem(m, WARN, "cannot look up the MX of %s: %s; check "
			"control/resolvers", dom, r == -EAGAIN ? "no answer "
			"from the DNS servers" : msg_err(r));
	else if (n == 1 && mx[0].host[0] == 0)
		problem(m, WARN, "%s has a null MX (RFC 7505): it takes no "
			"mail; publish an MX record naming %s", dom,
			m->me.len ? m->me.s : "this host");
	for (i = 0; r == 0 && !ours && i < n; i++)
		ours = mx[i].host[0] && host_ours(m, mx[i].host);
	for (i = 0; r == 0 && !ours && i < n && mx[0].host[0]; i++)
		(void)str_catf(&hosts, "%s%s", i ? ", " : "", mx[i].host);
	if (hosts.len)
		problem(m, WARN, "the MX of %s is %s, not this host; make it "
			"%s, or make sure that host relays to this one", dom,
			hosts.s, m->me.len ? m->me.s : "this host");
	str_free(&hosts);
	dns_mx_free(mx, n);
}

/* walk - every domain (a sample past MX_MAX) until the time is up */
static void walk(struct mxc *m)
{
	static const char sql[] =
		"SELECT name, (SELECT count(*) FROM domains) FROM domains "
		"ORDER BY CASE WHEN (SELECT count(*) FROM domains) > ?1 "
		"THEN random() ELSE 0 END, name LIMIT ?1";
	int64_t end = now_ms() + MX_TOTAL_MS;
	sqlite3_stmt *st = NULL;
	size_t done = 0, left = 0;
	long total = 0;
	int rc;

	rc = sqlite3_prepare_v2(m->d->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 1, MX_MAX);
	while (next_row(st, &rc)) {
		total = sqlite3_column_int64(st, 1);
		if (now_ms() >= end) {
			left++;
			continue;
		}
		one_domain(m, (const char *)sqlite3_column_text(st, 0));
		done++;
	}
	if (rc != SQLITE_DONE)
		problem(m, FAIL, "cannot read the domains: %s",
			db_errmsg(m->d->db));
	sqlite3_finalize(st);
	if (m->unsaid)
		(void)say(m->p, m->v, "%zu more domains like these", m->unsaid);
	if (left)
		m->v = say(m->p, m->v > WARN ? m->v : WARN, "%zu domains not "
			   "checked: the %d s for DNS were up; run doctor again "
			   "or check control/resolvers", left,
			   MX_TOTAL_MS / 1000);
	if (total > MX_MAX)
		m->v = say(m->p, m->v > WARN ? m->v : WARN, "a random %zu of "
			   "%ld domains checked; run doctor again for others",
			   done + left, total);
}

/* check_mx - every hosted domain's MX leads to this host */
int check_mx(struct doctor *d, struct report *p)
{
	struct mxc m = {.d = d, .p = p, .me = STR_INIT, .v = OK};
	int r;

	if (!d->db)
		return say(p, WARN, "not checked: the database did not open");
	r = ctl_get(d->root, "me", "", &m.me);
	if (r == 0)
		r = load_ours(&m);
	if (r == 0)
		r = dns_open(&m.dns, d->root, MX_TRY_MS);
	if (r == -EINVAL)
		m.v = say(p, WARN, "not checked: control/resolvers does not "
			  "parse; see the control check");
	else if (r < 0)
		m.v = say(p, WARN, "not checked: %s; check control/me, "
			  "control/listen.smtp and control/resolvers",
			  msg_err(r));
	else
		walk(&m);
	dns_close(m.dns);
	free(m.ours);
	str_free(&m.me);
	return m.v;
}
