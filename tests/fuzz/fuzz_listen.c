/*
 * fuzz_listen - libFuzzer target for the address lines of the control
 * files and the environment: listen_parse (control/listen.*, read by the
 * servers, `facteur run` and doctor), dns_resolvers_csv
 * (control/resolvers), and peer_parse, peer_group and peer_loopback
 * ($TCPREMOTEIP, the names of open-smtp/ grants, the limits' groups).
 *
 * Each line of the input is one such text. Checked: an accepted listen
 * line is an IPv4 or IPv6 socket address with a port 1-65535, and its
 * address written back (ADDR:PORT, [V6]:PORT) parses to the same bytes;
 * listen_port_ok takes its port when it is a mail port or from 1024 up;
 * a peer text that parses is spelled once (its spelling parses to
 * itself) and names the group and loopback answer of the text it came
 * from, while text that does not parse has no group; resolvers give one
 * entry a line, each a socket address listen_parse takes, and a refused
 * file names a line that is refused alone after lines that pass alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "listen.h"
#include "peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_listen - one listen line and its round trip */
static void check_listen(const char *line)
{
	struct sockaddr_storage ss, ss2;
	socklen_t len = 0, len2 = 0;
	char t[INET6_ADDRSTRLEN], back[INET6_ADDRSTRLEN + 16];
	unsigned port;

	if (listen_parse(line, &ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;

		port = ntohs(s4->sin_port);
		if (len != sizeof *s4 || !inet_ntop(AF_INET, &s4->sin_addr, t,
						    sizeof t))
			abort();
		snprintf(back, sizeof back, "%s:%u", t, port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
			(const struct sockaddr_in6 *)&ss;

		port = ntohs(s6->sin6_port);
		if (len != sizeof *s6 || !inet_ntop(AF_INET6, &s6->sin6_addr,
						    t, sizeof t))
			abort();
		snprintf(back, sizeof back, "[%s]:%u", t, port);
	} else {
		abort();
	}
	if (port < 1 || port > 65535 || listen_parse(back, &ss2, &len2) ||
	    len2 != len || memcmp(&ss, &ss2, len))
		abort();
	/* the ports root binds: the mail ports, and from 1024 up */
	if (listen_port_ok(&ss) != (port >= 1024 || port == 25 ||
				    port == 465 || port == 587 ||
				    port == 110 || port == 995))
		abort();
}

/* check_peer - one text as a client address */
static void check_peer(const char *text)
{
	char out[PEER_TEXT_MAX], again[PEER_TEXT_MAX];
	struct peer_group g, g2;

	peer_group(text, &g);
	if (peer_parse(text, out, sizeof out) < 0) {
		if (out[0] || g.fam != 0)
			abort();
		return;
	}
	if (peer_parse(out, again, sizeof again) < 0 || strcmp(out, again))
		abort();
	peer_group(out, &g2);
	if ((g.fam != 4 && g.fam != 6) || memcmp(&g, &g2, sizeof g) ||
	    peer_loopback(text) != peer_loopback(out))
		abort();
}

/* check_resolvers - the lines as control/resolvers */
static void check_resolvers(const struct str *lines, size_t count)
{
	struct str csv = STR_INIT, one = STR_INIT;
	struct sockaddr_storage ss;
	socklen_t len;
	size_t bad = 0, i, n = 0;
	const char *p = lines->s, *e;
	int r = dns_resolvers_csv(lines->s, count, &csv, &bad);

	if (r == -EINVAL) {
		if (bad < 1 || bad > count)
			abort();
		for (i = 1; i <= bad; i++, p += strlen(p) + 1)
			if ((dns_resolvers_csv(p, 1, &one, NULL) == 0) !=
			    (i < bad))
				abort();
	} else if (r == 0) {
		/* entries: "A:P" or "[A6]:P", none holding a comma */
		for (p = csv.s; count && p; p = e ? e + 1 : NULL, n++) {
			e = strchr(p, ',');
			if (str_copyb(&one, p, e ? (size_t)(e - p) : strlen(p))
			    || listen_parse(one.s, &ss, &len) < 0)
				abort();
		}
		if (n != count)
			abort();
	} else {
		abort();
	}
	str_free(&csv);
	str_free(&one);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str in = STR_INIT, lines = STR_INIT;
	size_t a = 0, i, count = 0;

	if (str_copyb(&in, data, size) < 0)
		abort();
	for (i = 0; i <= in.len; i++) {
		if (i < in.len && in.s[i] != '\n')
			continue;
		in.s[i] = 0;
		check_listen(in.s + a);
		check_peer(in.s + a);
		if (in.s[a] && str_cats(&lines, in.s + a) == 0 &&
		    str_catc(&lines, 0) == 0)
			count++;
		a = i + 1;
	}
	check_resolvers(&lines, count);
	str_free(&in);
	str_free(&lines);
	return 0;
}
