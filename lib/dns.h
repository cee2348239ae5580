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
 * dns_resolvers_csv() turns the lines of control/resolvers into the
 * server list c-ares takes; it is separate so it can be tested.
 */
#ifndef FACTEUR_DNS_H
#define FACTEUR_DNS_H

#include <stddef.h>
#include <netinet/in.h>

#include "str.h"

struct dns;

/* dns_open - a resolver using ROOT/control/resolvers (else /etc/resolv.conf); timeout_ms per query try */
int dns_open(struct dns **d, const char *root, int timeout_ms);
void dns_close(struct dns *d);
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

/* dns_txt - n TXT questions in parallel: txt[i] the first record of
   names[i], its strings joined; res[i] 0 or an error code as above */
int dns_txt(struct dns *d, const char *const *names, size_t n,
	    struct str *txt, int *res);

int dns_resolvers_csv(const char *lines, size_t count, struct str *csv,
		      size_t *bad_line_r);
int dns_name_ok(const char *name);

#endif
