/*
 * rbl - DNS blocklists at connect, with rblsmtpd's RBLSMTPD rules.
 *
 * rbl_start() runs once a session, after the relay rules are read, and
 * decides from the client's rule what rblsmtpd would have:
 *
 *   RBLSMTPD=""        no check at all (a trusted client);
 *   RBLSMTPD="TEXT"    blocked without a lookup: "451 4.7.1 TEXT";
 *   RBLSMTPD="-TEXT"   the same, permanent: "553 5.7.1 TEXT";
 *   not set            every zone of control/rblservers is asked, in
 *                      parallel, for the client address (RFC 5782:
 *                      d.c.b.a.ZONE, or 32 reversed nibbles for IPv6);
 *                      an A record lists it: "554 5.7.1 IP is listed in
 *                      ZONE", naming the first zone of the file that
 *                      lists it.
 *
 * RELAYCLIENT does not exempt a client, only RBLSMTPD="" does. The
 * reply is kept in s->rbl and given at every MAIL and RCPT until the
 * client authenticates (session.c). A DNS timeout or error is never a
 * listing: the client goes on as if unlisted and the log line says
 * "rbl error ZONE". The resolver is lib/dns.h (control/resolvers, else
 * /etc/resolv.conf) with RBL_TRY_MS for the first try; c-ares tries each
 * query twice per server, the second time with twice the wait, so with
 * one server that does not answer the greeting comes about 3 x
 * RBL_TRY_MS = 4.5 s late (measured: 4.5 s; with 2000 ms it was 6 s).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dns.h"
#include "msg.h"
#include "name.h"
#include "smtpd.h"

#define RBL_TRY_MS 1500
#define RBL_ZONES_MAX 32	/* zones asked; more are ignored and logged */
#define RBL_ZONE_MAX 190	/* room for 64 nibble bytes in 253 */
#define RBL_TEXT_MAX 400	/* an RBLSMTPD text in a reply */

static const char hex[] = "0123456789abcdef";

/* zone_ok - a host name (lib/name's rule): it goes into a DNS question
 * and into a reply line */
static int zone_ok(const char *z)
{
	return strlen(z) <= RBL_ZONE_MAX && !name_ldh(z, strlen(z), 0);
}

/* rbl_name - the question for IP in ZONE; -EINVAL for a zone or address
 * that cannot make one. A trailing dot on the zone is dropped. */
int rbl_name(const char *ip, const char *zone, struct str *out)
{
	unsigned char a[16];
	struct str z = STR_INIT;
	struct peer_group g;
	int r, i;

	str_trunc(out, 0);
	if (str_copys(&z, zone) < 0)
		return -ENOMEM;
	if (z.len && z.s[z.len - 1] == '.')
		str_trunc(&z, z.len - 1);
	r = zone_ok(z.s) ? 0 : -EINVAL;
	peer_group(ip, &g);	/* ::ffff:a.b.c.d is an IPv4 client */
	if (r == 0 && g.fam == 4) {
		r = str_catf(out, "%u.%u.%u.%u.%s", (unsigned)(g.bits & 255),
			     (unsigned)(g.bits >> 8 & 255),
			     (unsigned)(g.bits >> 16 & 255),
			     (unsigned)(g.bits >> 24), z.s);
	} else if (r == 0 && inet_pton(AF_INET6, ip, a) == 1) {
		for (i = 15; r == 0 && i >= 0; i--)
			r = str_catf(out, "%c.%c.", hex[a[i] & 15],
				     hex[a[i] >> 4]);
		if (r == 0)
			r = str_cats(out, z.s);
	} else if (r == 0) {
		r = -EINVAL;
	}
	str_free(&z);
	return r;
}

/* note - one more item for the session's log line */
static void note(struct session *s, const char *what, const char *zone)
{
	(void)str_catf(&s->rbl_log, "%s%s %s", s->rbl_log.len ? ", " : "",
		       what, zone);
}

/* by_rule - RBLSMTPD="TEXT": blocked as rblsmtpd did, printable text
 * only, bounded */
static void by_rule(struct session *s, const char *text)
{
	int perm = text[0] == '-';
	size_t i;

	text += perm;
	(void)str_cats(&s->rbl, perm ? "553 5.7.1 " : "451 4.7.1 ");
	for (i = 0; text[i] && i < RBL_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)text[i];

		(void)str_catc(&s->rbl, c >= ' ' && c < 0x7f ? (char)c : '?');
	}
	if (!*text)
		(void)str_cats(&s->rbl, "blocked");
	(void)str_cats(&s->rbl_log, "blocked by RBLSMTPD");
}

/* ask - every zone of LINES (COUNT of them) for the session's client */
static void ask(struct session *s, const char *lines, size_t count)
{
	struct str *names = calloc(count, sizeof *names);
	const char **q = calloc(count, sizeof *q);
	const char **zone = calloc(count, sizeof *zone);
	int *listed = calloc(count, sizeof *listed);
	struct dns *d = NULL;
	size_t i, n = 0;
	const char *l;
	int r;

	if (!names || !q || !zone || !listed) {
		note(s, "error", "(out of memory)");
		goto out;
	}
	for (i = 0, l = lines; i < count; i++, l += strlen(l) + 1) {
		if (n == RBL_ZONES_MAX) {
			note(s, "ignored", l);
			continue;
		}
		names[n] = (struct str)STR_INIT;
		r = rbl_name(s->ip.s, l, &names[n]);
		if (r < 0) {
			str_free(&names[n]);
			note(s, r == -EINVAL ? "bad zone" : "error", l);
			continue;
		}
		q[n] = names[n].s;
		zone[n] = l;
		n++;
	}
	if (n == 0)
		goto out;
	r = dns_reuse(&d, s->root, RBL_TRY_MS);
	if (r == 0)
		r = dns_dnsbl(d, q, n, listed);
	if (r < 0) {
		note(s, "error", msg_err(r));
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (listed[i] == 1 && !s->rbl.len)
			(void)str_catf(&s->rbl, "554 5.7.1 %s is listed in %s",
				       s->ip.s, zone[i]);
		if (listed[i] != 0)
			note(s, listed[i] == 1 ? "listed in" : "error", zone[i]);
	}
out:
	for (i = 0; names && i < n; i++)
		str_free(&names[i]);
	free(names);
	free(q);
	free(zone);
	free(listed);
}

/* rbl_start - at connect: what the client's rule and the blocklists say;
 * ENV is the rule's RBLSMTPD, NULL when it sets none */
void rbl_start(struct session *s, const char *env)
{
	struct str lines = STR_INIT;
	size_t count = 0;
	int r;

	if (env) {
		if (*env)
			by_rule(s, env);
		return;
	}
	r = ctl_get_lines(s->root, "rblservers", &lines, &count);
	if (r < 0)
		note(s, "error", "(cannot read control/rblservers)");
	else if (count)
		ask(s, lines.s, count);
	str_free(&lines);
}
