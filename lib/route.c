/*
 * route - control/smtproutes (docs/remote.md).
 *
 * A line is KEY:HOST[:PORT]. KEY is a domain (exact match), .domain (any
 * sub-domain of it, never the domain itself) or empty (every domain).
 * HOST empty means "use the MX records"; HOST is a name, an IPv4 address,
 * or an address in brackets ([192.0.2.1], [::1], [IPv6:::1]), since a bare
 * IPv6 address cannot be told from its port. The first exact line wins,
 * then the longest matching .suffix, then the first catch-all.
 *
 * Every line is checked even when an earlier one matched: a malformed file
 * is refused whole (the caller defers the mail) rather than letting a
 * typo send mail somewhere it was not meant to go.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "num.h"
#include "route.h"

/* route_hostport - HOST[:PORT] (see above); len bytes of s */
int route_hostport(const char *s, size_t len, struct hostport *hp)
{
	const char *end = s + len, *colon, *port = NULL;
	unsigned char buf[sizeof(struct in6_addr)];
	uint64_t v;

	str_trunc(&hp->host, 0);
	hp->port = 0;
	hp->literal = 0;
	if (len && s[0] == '[') {
		const char *rb = memchr(s, ']', len);
		const char *a = s + 1;

		if (!rb)
			return -EINVAL;
		if (rb + 1 < end) {
			if (rb[1] != ':')
				return -EINVAL;
			port = rb + 2;
		}
		if ((size_t)(rb - a) > 5 && strncasecmp(a, "IPv6:", 5) == 0)
			a += 5;
		if (str_copyb(&hp->host, a, (size_t)(rb - a)))
			return -ENOMEM;
		if (inet_pton(AF_INET, hp->host.s, buf) != 1 &&
		    inet_pton(AF_INET6, hp->host.s, buf) != 1)
			return -EINVAL;
		hp->literal = 1;
	} else {
		colon = memchr(s, ':', len);
		if (str_copyb(&hp->host, s, colon ? (size_t)(colon - s) : len))
			return -ENOMEM;
		if (colon)
			port = colon + 1;
		if (memchr(hp->host.s, 0, hp->host.len))
			return -EINVAL;
		if (inet_pton(AF_INET, hp->host.s, buf) == 1)
			hp->literal = 1;
		else if (hp->host.len && !dns_name_ok(hp->host.s))
			return -EINVAL;
	}
	if (port) {
		if (num_parseb(port, (size_t)(end - port), 65535, &v) || v == 0)
			return -EINVAL;
		hp->port = (unsigned long)v;
	}
	return 0;
}

/* key_matches - 2: exact, 1: as a .suffix, 0: no; *weight the key length */
static int key_matches(const char *key, size_t klen, const char *domain)
{
	size_t dlen = strlen(domain);

	if (klen && key[0] == '.')
		return dlen > klen &&
		       strncasecmp(domain + dlen - klen, key, klen) == 0;
	return klen == dlen && strncasecmp(domain, key, klen) == 0 ? 2 : 0;
}

/* route_lookup - the route for domain among count NUL-separated lines
 * (see route.h) */
int route_lookup(const char *lines, size_t count, const char *domain,
		 struct route *rt, size_t *bad_line_r)
{
	struct hostport hp = {STR_INIT, 0, 0};
	size_t i, best_suffix = 0, exact = 0, suffix = 0, all = 0;
	const char *p = lines, *chosen = NULL;
	int r = 0;

	rt->found = 0;
	rt->use_mx = 0;
	rt->line = 0;
	for (i = 1; i <= count; i++, p += strlen(p) + 1) {
		const char *colon = strchr(p, ':');
		size_t klen;
		int m;

		if (!colon) {
			r = -EINVAL;
			break;
		}
		klen = (size_t)(colon - p);
		r = route_hostport(colon + 1, strlen(colon + 1), &hp);
		if (r < 0)
			break;
		if (klen) {
			struct str k = STR_INIT;
			size_t dot = p[0] == '.';

			r = str_copyb(&k, p + dot, klen - dot);
			if (r == 0 && !dns_name_ok(k.s))
				r = -EINVAL;
			str_free(&k);
			if (r < 0)
				break;
		}
		if (klen == 0) {
			if (!all)
				all = i;
			continue;
		}
		m = key_matches(p, klen, domain);
		if (m == 2 && !exact)
			exact = i;
		else if (m == 1 && klen > best_suffix) {
			best_suffix = klen;
			suffix = i;
		}
	}
	str_free(&hp.host);
	if (r < 0) {
		if (bad_line_r)
			*bad_line_r = i;
		return r;
	}
	i = exact ? exact : suffix ? suffix : all;
	if (!i)
		return 0;
	for (p = lines; --i; p += strlen(p) + 1)
		;
	chosen = strchr(p, ':') + 1;
	rt->line = exact ? exact : suffix ? suffix : all;
	r = route_hostport(chosen, strlen(chosen), &rt->hp);
	if (r < 0)
		return r;
	rt->found = 1;
	rt->use_mx = rt->hp.host.len == 0;
	return 0;
}

/* route_free - what route_lookup kept */
void route_free(struct route *rt)
{
	str_free(&rt->hp.host);
}
