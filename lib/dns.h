/*
 * dns - the few DNS questions mail needs, asked through c-ares.
 *
 * dns_open() makes a resolver that asks the servers of ROOT/control/resolvers
 * (one IP[:port] a line, IPv6 as [::1]:53), or those of /etc/resolv.conf
 * when that file is missing or empty; timeout_ms bounds one try of one
 * query, and a query is tried twice per server. No search list is applied:
 * every name is asked as given, fully qualified.
 *
 * Every lookup waits for its answers itself (poll() on c-ares' sockets),
 * so callers see plain blocking functions; queries of one call run in
 * parallel. Results: 0, -ENOENT for NXDOMAIN, -ENODATA for a name that
 * exists without records of the type, -EAGAIN for a temporary failure
 * (SERVFAIL, REFUSED, timeout, no server reachable), -EINVAL for a name
 * that is not a host name, -ENOMEM.
 *
 * dns_mx() returns the MX records sorted by preference, records of equal
 * preference in random order. A null MX (RFC 7505: exchange ".") comes
 * back as one record with an empty host. dns_addrs() returns the AAAA and
 * A records of a name (IPv6 first). dns_dnsbl() asks many A questions at
 * once for DNSBL checks.
 *
 * dns_txt() returns the TXT records of a name, the strings of each record
 * joined (RFC 7208 3.3), binary-safe in struct str; dns_addrs_af() the A
 * or the AAAA records alone; dns_ptr() the PTR names of an address
 * (dns_ptr_name() spells its in-addr.arpa or ip6.arpa name). The answer
 * is one DNS message (UDP, TCP when truncated), at most 64 KiB.
 *
 * dns_resolvers_csv() turns the lines of control/resolvers into the
 * server list c-ares takes; it is separate so it can be tested.
 */
#ifndef FACTEUR_DNS_H
#define FACTEUR_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "str.h"

struct dns;

/* dns_open - a resolver using ROOT/control/resolvers (else /etc/resolv.conf); timeout_ms per query try */
int dns_open(struct dns **d, const char *root, int timeout_ms);
void dns_close(struct dns *d);
/* dns_reuse - the process's resolver: made by dns_open() at the first
 * call and kept, so that a process that checks many messages pays
 * c-ares' set-up (config reads, random seed, sockets) once, not twice a
 * message; made again when ROOT, timeout_ms, control/resolvers or
 * /etc/resolv.conf (inode, size, mtime) changed, and after 64 queries
 * (its sockets stay open between queries: new source ports now and then).
 * It keeps successful answers for their TTL (lib/dnscache). Its deadline
 * and name rule are reset to dns_open()'s. It belongs to lib/dns: never
 * dns_close() it, and do not keep it across a fork in two processes. */
int dns_reuse(struct dns **d, const char *root, int timeout_ms);
/* dns_deadline - queries unanswered at now_ms() == ms fail with
   -ETIMEDOUT; 0: none */
void dns_deadline(struct dns *d, int64_t ms);
/* dns_names_visible - 1: any name of visible ASCII may be asked (SPF
   domain-specs); 0: host names only */
void dns_names_visible(struct dns *d, int on);
/* dns_dnsbl - look up n names (e.g. "4.3.2.1.zen.example") as A records in parallel;
   listed[i] = 1 when the name has an A record, 0 when NXDOMAIN/NODATA, -1 on a temporary error. Returns 0 or -errno. */
int dns_dnsbl(struct dns *d, const char *const *names, size_t n, int *listed);

struct dns_mx {
	unsigned pref;
	char *host;		/* "" for a null MX */
};

struct dns_addr {
	int family;		/* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} a;
};

int dns_mx(struct dns *d, const char *domain, struct dns_mx **mx_r,
	   size_t *n_r);
void dns_mx_free(struct dns_mx *mx, size_t n);
int dns_addrs(struct dns *d, const char *name, struct dns_addr **a_r,
	      size_t *n_r);

/* dns_batch - many questions in flight at once under one deadline.
 *
 * The caller fills each q[i].type and q[i].name (kept until dns_batch
 * returns); dns_batch asks them, at most DNS_BATCH_WINDOW queries in
 * flight (a thousand answers arriving at once would overflow a UDP
 * socket's receive buffer, and servers rate-limit), and returns when
 * every one is answered or when now_ms() reaches deadline_ms (lib/clock),
 * whichever comes first. Each q[i].r is then 0 or an error of the list
 * above, or -ETIMEDOUT: no answer came, by the deadline (the question
 * may not even have been sent) or within the tries (-EAGAIN stays for
 * answers that say failure: SERVFAIL, REFUSED, an unreachable port).
 * DNS_Q_MX fills mx/nmx as dns_mx() does, DNS_Q_ADDRS addrs/naddrs as
 * dns_addrs() does (AAAA and A asked together), DNS_Q_TXT txt with the
 * first TXT record, its strings joined (DKIM keys). Free them with
 * dns_batch_free(). Returns 0, or a negative errno code when the batch
 * itself failed (-ENOMEM, a poll error), every q[i] then holding what
 * it had by then. */
#define DNS_BATCH_WINDOW 100

enum { DNS_Q_MX, DNS_Q_ADDRS, DNS_Q_TXT };

struct dns_q {
	int type;		/* DNS_Q_MX, DNS_Q_ADDRS or DNS_Q_TXT */
	const char *name;
	int r;
	struct dns_mx *mx;
	size_t nmx;
	struct dns_addr *addrs;
	size_t naddrs;
	struct str txt;
};

int dns_batch(struct dns *d, struct dns_q *q, size_t n, int64_t deadline_ms);
void dns_batch_free(struct dns_q *q, size_t n);

int dns_txt(struct dns *d, const char *name, struct str **txt_r,
	    size_t *n_r);
void dns_txt_free(struct str *txt, size_t n);
int dns_addrs_af(struct dns *d, const char *name, int family,
		 struct dns_addr **a_r, size_t *n_r);
int dns_ptr(struct dns *d, const struct dns_addr *a, char ***names_r,
	    size_t *n_r);
int dns_ptr_name(const struct dns_addr *a, struct str *out);
void dns_names_free(char **names, size_t n);

/* dns_parse - one answer message of TYPE (ns_t_a, ns_t_aaaa, ns_t_mx,
 * ns_t_txt or ns_t_ptr) read as a query's answer is: the records, MX
 * sorted, TXT strings joined, as the lookups return them. It asks
 * nothing: the tests and tests/fuzz/fuzz_dns.c feed it messages. 0 with
 * *a filled (free it with dns_answer_free), or the lookups' errors. */
struct dns_answer {
	struct dns_addr *addrs;
	size_t naddrs;
	struct dns_mx *mx;
	size_t nmx;
	struct str *txt;
	size_t ntxt;
	char **names;
	size_t nnames;
};

int dns_parse(int type, const unsigned char *abuf, size_t alen,
	      struct dns_answer *a);
void dns_answer_free(struct dns_answer *a);

int dns_resolvers_csv(const char *lines, size_t count, struct str *csv,
		      size_t *bad_line_r);
int dns_name_ok(const char *name);

#endif
