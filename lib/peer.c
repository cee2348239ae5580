/*
 * peer - client addresses as text, loopback, and the group a client is
 * counted in (see peer.h).
 */
#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

/* peer_text - a peer address as text, IPv4-mapped written as IPv4 */
int peer_text(const struct sockaddr *sa, socklen_t len, char *out,
	      size_t outlen)
{
	const void *a;
	int af;

	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		af = AF_INET;
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6 &&
		   len >= sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a6 =
			&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		af = IN6_IS_ADDR_V4MAPPED(a6) ? AF_INET : AF_INET6;
		a = af == AF_INET ? (const void *)&a6->s6_addr[12] : a6;
	} else {
		return -EAFNOSUPPORT;
	}
	return inet_ntop(af, a, out, (socklen_t)outlen) ? 0 : -ENOSPC;
}

/* v4_bits - the 32 bits of an IPv4 address, host order */
static uint64_t v4_bits(const unsigned char *b)
{
	return (uint64_t)b[0] << 24 | (uint64_t)b[1] << 16 |
	       (uint64_t)b[2] << 8 | b[3];
}

/* peer_group - IPv4 by address, IPv6 by /64, anything else as one */
void peer_group(const char *ip, struct peer_group *g)
{
	struct in6_addr a6;
	unsigned char a4[4];
	int i;

	g->fam = 0;
	g->bits = 0;
	if (inet_pton(AF_INET, ip, a4) == 1) {
		g->fam = 4;
		g->bits = v4_bits(a4);
	} else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			g->fam = 4;
			g->bits = v4_bits(&a6.s6_addr[12]);
			return;
		}
		g->fam = 6;
		for (i = 0; i < 8; i++)
			g->bits = g->bits << 8 | a6.s6_addr[i];
	}
}

/* peer_loopback - 127.0.0.0/8 or ::1, from the text */
int peer_loopback(const char *ip)
{
	struct in6_addr a6;
	struct peer_group g;

	peer_group(ip, &g);
	if (g.fam == 4)
		return (g.bits >> 24) == 127;
	return inet_pton(AF_INET6, ip, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}
