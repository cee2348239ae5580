/*
 * peer - the client at the other end of a connection, as the servers
 * name, trust and count it.
 *
 * peer_text() writes a peer address as text; an IPv4-mapped IPv6 address
 * (::ffff:192.0.2.7, what a dual-stack socket reports for an IPv4 client)
 * becomes 192.0.2.7, so that one client has one name in logs, grants
 * (open-smtp/IP), relay rules and limits. It returns 0, -ENOSPC when OUT
 * is too small (PEER_TEXT_MAX always fits) or -EAFNOSUPPORT for anything
 * but IPv4 and IPv6; on failure OUT is "".
 *
 * peer_parse() reads an address given as text (tcpserver's or Dovecot's
 * $TCPREMOTEIP) and writes it as peer_text() would, so that a client has
 * one name however it came; -EINVAL and "" for anything but an IPv4 or
 * IPv6 address (only an address: the text may name a file in open-smtp/).
 *
 * peer_inetd() is the client of a server started by inetd, systemd or
 * tcpserver on FD: the socket's peer, else $TCPREMOTEIP if it is an
 * address (peer_parse), else -ENOENT and "" (a pipe: a local process).
 *
 * peer_loopback() is 1 for 127.0.0.0/8 and ::1 (and an IPv4-mapped
 * 127/8), 0 for any other text, an address or not.
 *
 * peer_group() gives the unit every per-client limit counts in: an IPv4
 * address by itself, an IPv6 address by its /64 (one host is usually
 * given a whole /64 and could otherwise take a fresh address for every
 * try or every connection), an IPv4-mapped address as its IPv4 address.
 * Text that is no address ("", "local") gives one group of its own
 * (family 0), so that all such clients count together.
 */
#ifndef FACTEUR_PEER_H
#define FACTEUR_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PEER_TEXT_MAX 46	/* INET6_ADDRSTRLEN */

struct peer_group {
	unsigned fam;		/* 4, 6, or 0: not an address */
	uint64_t bits;		/* the IPv4 address, or the IPv6 /64 */
};

int peer_text(const struct sockaddr *sa, socklen_t len, char *out,
	      size_t outlen);
int peer_parse(const char *text, char *out, size_t outlen);
int peer_inetd(int fd, char *out, size_t outlen);
int peer_loopback(const char *ip);
void peer_group(const char *ip, struct peer_group *g);

#endif
