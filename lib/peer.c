/*
 * peer - client addresses as text, loopback, and the group a client is
 * counted in (see peer.h).
 */
#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* peer_text - a peer address as text, IPv4-mapped written as IPv4 */
int peer_text(const struct sockaddr *sa, socklen_t len, char *out,
	      size_t outlen)
{
	const struct sockaddr_in6 *s6 = (const void *)sa;
	const struct sockaddr_in *s4 = (const void *)sa;
	socklen_t n = (socklen_t)outlen;
	const char *r;

	if (sa->sa_family == AF_INET && len >= sizeof *s4)
		r = inet_ntop(AF_INET, &s4->sin_addr, out, n);
	else if (sa->sa_family != AF_INET6 || len < sizeof *s6)
		r = (errno = EAFNOSUPPORT, NULL);
	else if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		r = inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, n);
	else
		r = inet_ntop(AF_INET6, &s6->sin6_addr, out, n);
	if (!r && outlen)
		out[0] = 0;
	return r ? 0 : -errno;
}

/* peer_parse - an address as text, written in its one spelling */
int peer_parse(const char *text, char *out, size_t outlen)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;

	memset(&s6, 0, sizeof s6);
	memset(&s4, 0, sizeof s4);
	s4.sin_family = AF_INET;
	s6.sin6_family = AF_INET6;
	if (inet_pton(AF_INET, text, &s4.sin_addr) == 1)
		return peer_text((struct sockaddr *)&s4, sizeof s4, out,
				 outlen);
	if (inet_pton(AF_INET6, text, &s6.sin6_addr) == 1)
		return peer_text((struct sockaddr *)&s6, sizeof s6, out,
				 outlen);
	if (outlen)
		out[0] = 0;
	return -EINVAL;
}

/* peer_inetd - the socket's peer, else $TCPREMOTEIP, else none */
int peer_inetd(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	const char *env = getenv("TCPREMOTEIP");

	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    peer_text((struct sockaddr *)&ss, len, out, outlen) == 0)
		return 0;
	if (env && peer_parse(env, out, outlen) == 0)
		return 0;
	if (outlen)
		out[0] = 0;
	return -ENOENT;
}

/* peer_group - IPv4 by address, IPv6 by /64, anything else as one */
void peer_group(const char *ip, struct peer_group *g)
{
	struct in6_addr a;
	int i, v4;

	/* all of it, padding too: callers hash the bytes */
	memset(g, 0, sizeof *g);
	memset(&a, 0, sizeof a);
	v4 = inet_pton(AF_INET, ip, &a.s6_addr[12]) == 1;
	if (!v4 && inet_pton(AF_INET6, ip, &a) != 1)
		return;
	v4 |= IN6_IS_ADDR_V4MAPPED(&a);
	g->fam = v4 ? 4 : 6;
	for (i = v4 ? 12 : 0; i < (v4 ? 16 : 8); i++)
		g->bits = g->bits << 8 | a.s6_addr[i];
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
