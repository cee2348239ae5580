/*
 * self - is an address this host, whatever its spelling? The loop check
 * of mta-remote (docs/remote.md, "Loop check").
 *
 * A mail loop needs an MTA of this host at the other end of the
 * connection, so "this host" is an address that reaches this machine AND
 * a port where an MTA of this machine may answer:
 *
 *   address: 127.0.0.0/8 and 0.0.0.0/8 (a connect to 0.x reaches this
 *   host), ::1, ::, and every address of an interface (getifaddrs); an
 *   IPv6 address carrying an IPv4 one is judged as that IPv4 address:
 *   IPv4-mapped ::ffff:a.b.c.d (a dual-stack connect goes to a.b.c.d),
 *   IPv4-compatible ::a.b.c.d (which makes :: and ::1 fall into 0/8),
 *   SIIT ::ffff:0:a.b.c.d and NAT64's 64:ff9b::a.b.c.d (RFC 6052; the
 *   gateway sends it on to a.b.c.d).
 *
 *   port: 25, 465 and 587 always (whatever answers there on this machine
 *   is its mail service: our mta-smtpd, one run by inetd without
 *   control/listen.*, or another MTA that trusts local clients), and
 *   every port of control/listen.smtp, listen.submission and listen.smtps,
 *   whatever address the line names (counting too much is the safe way).
 *   A listen file that cannot be read makes every port ours.
 *
 * Why the port matters: remoteport is 25 on every real installation, so
 * there any local address is refused; only a lab or test set-up that
 * sends all remote mail to another port (its fake MX hosts on 127.0.0.2
 * and up) may reach local addresses, and only while its own mta-smtpd
 * does not listen on that port. An mta-smtpd run by an inetd on some other
 * port is not known here; the hop limit (lib/hdrscan.h) still ends such a
 * loop after 100 hops.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "listen.h"
#include "remote.h"

static const unsigned char pfx_mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const unsigned char pfx_compat[12] = {0};
static const unsigned char pfx_siit[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
static const unsigned char pfx_nat64[12] = {
	0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

/* the mail ports of any host, ours whatever control/listen.* says */
static const unsigned long well_known[] = {25, 465, 587};

/* self_canon - IN with an IPv4 address inside an IPv6 one made IPv4 */
void self_canon(const struct dns_addr *in, struct dns_addr *out)
{
	struct dns_addr a = *in;	/* IN may be OUT */
	const unsigned char *b = a.a.v6.s6_addr;

	*out = a;
	if (a.family != AF_INET6)
		return;
	if (memcmp(b, pfx_mapped, 12) && memcmp(b, pfx_compat, 12) &&
	    memcmp(b, pfx_siit, 12) && memcmp(b, pfx_nat64, 12))
		return;
	memset(out, 0, sizeof *out);
	out->family = AF_INET;
	memcpy(&out->a.v4, b + 12, 4);
}

/* add_port - one more port of ours */
static int add_port(struct self *sf, unsigned long port)
{
	unsigned long *p = realloc(sf->ports, (sf->nports + 1) * sizeof *p);

	if (!p)
		return -ENOMEM;
	sf->ports = p;
	sf->ports[sf->nports++] = port;
	return 0;
}

/* self_ports - the well-known mail ports and those of control/listen.* */
int self_ports(struct self *sf, const char *root)
{
	static const char *const kinds[] = {
		"listen.smtp", "listen.submission", "listen.smtps"};
	struct str lines = STR_INIT;
	size_t i, k, n, off;
	int r = 0;

	for (i = 0; r == 0 && i < sizeof well_known / sizeof *well_known; i++)
		r = add_port(sf, well_known[i]);
	for (k = 0; r == 0 && k < sizeof kinds / sizeof *kinds; k++) {
		if (ctl_get_lines(root, kinds[k], &lines, &n) < 0) {
			sf->any_port = 1;	/* unknown: assume the worst */
			continue;
		}
		for (i = off = 0; r == 0 && i < n; i++) {
			struct sockaddr_storage ss;
			socklen_t len;
			const char *line = lines.s + off;

			off += strlen(line) + 1;
			if (listen_parse(line, &ss, &len) < 0)
				continue;	/* mta-smtpd would not start */
			r = add_port(sf, ntohs(ss.ss_family == AF_INET6 ?
				((struct sockaddr_in6 *)&ss)->sin6_port :
				((struct sockaddr_in *)&ss)->sin_port));
		}
	}
	str_free(&lines);
	return r;
}

/* self_ifaces - the addresses of this machine's interfaces, canonical */
int self_ifaces(struct self *sf)
{
	struct ifaddrs *ifa, *p;
	size_t n = 0;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (p = ifa; p; p = p->ifa_next)
		n++;
	sf->own = calloc(n ? n : 1, sizeof *sf->own);
	if (!sf->own) {
		freeifaddrs(ifa);
		return -ENOMEM;
	}
	for (p = ifa; p; p = p->ifa_next) {
		struct dns_addr a;

		if (!p->ifa_addr)
			continue;
		memset(&a, 0, sizeof a);
		a.family = p->ifa_addr->sa_family;
		if (a.family == AF_INET)
			a.a.v4 = ((struct sockaddr_in *)p->ifa_addr)->sin_addr;
		else if (a.family == AF_INET6)
			a.a.v6 = ((struct sockaddr_in6 *)p->ifa_addr)->sin6_addr;
		else
			continue;
		self_canon(&a, &sf->own[sf->nown++]);
	}
	freeifaddrs(ifa);
	return 0;
}

/* self_load - what self_addr() needs: ports and interface addresses */
int self_load(struct self *sf, const char *root)
{
	int r;

	memset(sf, 0, sizeof *sf);
	r = self_ports(sf, root);
	return r < 0 ? r : self_ifaces(sf);
}

/* local - an address (canonical) that reaches this machine */
static int local(const struct self *sf, const struct dns_addr *c)
{
	size_t i;

	if (c->family == AF_INET) {
		unsigned top = ntohl(c->a.v4.s_addr) >> 24;

		if (top == 127 || top == 0)
			return 1;
	} else if (IN6_IS_ADDR_LOOPBACK(&c->a.v6) ||
		   IN6_IS_ADDR_UNSPECIFIED(&c->a.v6)) {
		return 1;	/* made IPv4 by self_canon; said for clarity */
	}
	for (i = 0; i < sf->nown; i++)
		if (sf->own[i].family == c->family &&
		    memcmp(&sf->own[i].a, &c->a,
			   c->family == AF_INET ? 4 : 16) == 0)
			return 1;
	return 0;
}

/* self_addr - would a connection to A, PORT reach an MTA of this host */
int self_addr(const struct self *sf, const struct dns_addr *a,
	      unsigned long port)
{
	struct dns_addr c;
	size_t i;
	int ours = sf->any_port;

	for (i = 0; !ours && i < sf->nports; i++)
		ours = sf->ports[i] == port;
	if (!ours)
		return 0;
	self_canon(a, &c);
	return local(sf, &c);
}

void self_free(struct self *sf)
{
	free(sf->own);
	free(sf->ports);
	memset(sf, 0, sizeof *sf);
}
