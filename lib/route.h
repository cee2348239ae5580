/*
 * route - control/smtproutes: which host (or the MX records) mail for a
 * domain goes to. mta-remote routes by it and facteur doctor's queue check
 * diagnoses the same host, so the rule is here once (docs/remote.md).
 *
 * route_hostport() parses a HOST[:PORT] (brackets for IPv6 and literals);
 * route_lookup() matches DOMAIN against the file's COUNT NUL-separated
 * lines: 0 with *rt filled (rt->found 0: no line matched), or a negative
 * error with *bad_line_r set to the line it stopped at (-EINVAL: that line
 * is malformed, and the whole file is refused); route_free() releases rt.
 */
#ifndef FACTEUR_ROUTE_H
#define FACTEUR_ROUTE_H

#include <stddef.h>

#include "str.h"

/* a host[:port] of smtproutes: literal is set when host is an IP address
 * (it was in brackets or parses as one); port 0 means control/remoteport */
struct hostport {
	struct str host;
	unsigned long port;
	int literal;
};

/* the outcome of matching a domain against smtproutes */
struct route {
	int found;		/* a line matched */
	int use_mx;		/* it had an empty host: look the MX up */
	struct hostport hp;
	size_t line;		/* 1-based number of the matching line */
};

int route_hostport(const char *s, size_t len, struct hostport *hp);
int route_lookup(const char *lines, size_t count, const char *domain,
		 struct route *rt, size_t *bad_line_r);
void route_free(struct route *rt);

#endif
