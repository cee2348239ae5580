/*
 * check - what a client may put in the envelope.
 *
 * Addresses are parsed strictly: <local@domain> with an atom-like local
 * part (no quoted strings, no source routes, no '%' or '!' in a
 * recipient), so that the classic relay tricks ("user%other@here",
 * "other!user@here", "\"user@other\"@here", "@here:user@other") are
 * refused as syntax instead of being understood differently by a later
 * hop. A recipient is accepted when its domain is hosted here and the
 * user (or an alias, an extension's base, or a non-bounce catch-all)
 * exists, or when the client may relay. Hosted domains and users are
 * looked up only through lib/acct.h. An SRS0 address of control/me (the
 * sender of a forward, lib/srs.h) is accepted from anyone when its hash
 * and age check out, and replaced at once by the original sender, so
 * that the queue holds the real address and mta-send delivers the bounce
 * there as any other mail.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "acct.h"
#include "cdbx.h"
#include "ctl.h"
#include "grant.h"
#include "name.h"
#include "rcpt.h"
#include "smtpd.h"
#include "srs.h"
#include "utf8.h"

/* bad_local_byte - bytes that never belong in a local part we accept */
static int bad_local_byte(unsigned char ch)
{
	return ch <= ' ' || ch == 0x7f || strchr("<>()[]\\,;:\"@", ch);
}

/* host_ok - a host name, its U-labels (SMTPUTF8) as A-labels, folded */
static int host_ok(const char *d, size_t n, struct str *out)
{
	struct str a = STR_INIT;
	int r = name_domain_ascii(d, n, &a);

	if (r == 0)
		r = name_ldh(a.s, a.len, 0) ? -EINVAL :
		    name_fold(out, a.s, a.len);
	str_free(&a);
	return r;
}

/* domain_ok - a host name, or an address literal [1.2.3.4] [IPv6:...] */
static int domain_ok(const char *d, size_t n, struct str *out)
{
	char buf[64];
	unsigned char bin[16];

	if (n >= 2 && d[0] == '[' && d[n - 1] == ']') {
		if (n - 2 >= sizeof buf)
			return -EINVAL;
		memcpy(buf, d + 1, n - 2);
		buf[n - 2] = 0;
		if (inet_pton(AF_INET, buf, bin) != 1 &&
		    (strncasecmp(buf, "IPv6:", 5) ||
		     inet_pton(AF_INET6, buf + 5, bin) != 1))
			return -EINVAL;
		return str_catb(out, d, n);
	}
	if (n && d[n - 1] == '.')	/* a trailing root dot is allowed */
		n--;
	return host_ok(d, n, out);
}

/*
 * addr_parse - the <address> after "FROM:" or "TO:"; *rest_r points at
 * what follows the '>' (the ESMTP parameters). The domain is folded to
 * lower case; the local part is kept as sent. "<>" only if allow_null.
 */
int addr_parse(const char *in, struct str *addr, const char **rest_r,
	       int allow_null)
{
	const char *p = in, *end, *at = NULL, *q;
	size_t local;

	str_trunc(addr, 0);
	while (*p == ' ')
		p++;
	if (*p != '<')
		return -EINVAL;
	p++;
	end = strchr(p, '>');
	if (!end)
		return -EINVAL;
	*rest_r = end + 1;
	if (end == p)
		return allow_null ? 0 : -EINVAL;
	for (q = p; q < end; q++)
		if (*q == '@') {
			if (at)
				return -EINVAL;	/* two '@': a route or a trick */
			at = q;
		}
	local = at ? (size_t)(at - p) : (size_t)(end - p);
	if (local == 0 || local > 64)
		return -EINVAL;
	for (q = p; q < p + local; q++)
		if (bad_local_byte((unsigned char)*q))
			return -EINVAL;
	if (!utf8_valid(p, local))	/* 8-bit: RFC 6531's UTF-8 only */
		return -EINVAL;
	if (p[0] == '.' || p[local - 1] == '.' || memmem(p, local, "..", 2))
		return -EINVAL;
	if (str_catb(addr, p, local) < 0)
		return -ENOMEM;
	if (!at)
		return 0;
	if (str_catc(addr, '@') < 0)
		return -ENOMEM;
	return domain_ok(at + 1, (size_t)(end - at - 1), addr);
}

/* check_badlist - 1 when ADDR or its @domain is listed in control/FILE */
int check_badlist(const char *root, const char *file, const char *addr)
{
	struct str lines = STR_INIT;
	const char *at = strrchr(addr, '@');
	size_t i, n;
	int r, hit = 0;

	r = ctl_get_lines(root, file, &lines, &n);
	if (r < 0)
		return r;
	for (i = 0; i < lines.len; i += strlen(lines.s + i) + 1) {
		const char *l = lines.s + i;

		if (!strcasecmp(l, addr) || (l[0] == '@' && at &&
					     !strcasecmp(l, at))) {
			hit = 1;
			break;
		}
	}
	str_free(&lines);
	return hit;
}

/* check_pbs - 1 when open-smtp/IP is younger than control/popbeforesmtp */
int check_pbs(const char *root, const char *ip)
{
	struct str p = STR_INIT;
	struct stat st;
	unsigned long max;
	int r;

	if (strchr(ip, '/') || ip[0] == '.')
		return 0;
	/* the one exception to "no number: the default": a relay grant,
	 * like a table that cannot be read, never comes of a fault */
	if ((r = ctl_num(root, CTL_POPBEFORESMTP, &max)) < 0)
		return r;
	if (str_catf(&p, "%s/open-smtp/%s", root, ip) < 0)
		return -ENOMEM;
	r = lstat(p.s, &st) == 0 && S_ISREG(st.st_mode) &&
	    grant_live(st.st_mtime, max, time(NULL));
	str_free(&p);
	return r;
}

/*
 * rcpt_verdict - NULL when ADDR (parsed by addr_parse) is accepted, else
 * the reply. Hosted domains are checked first even for relay clients, so
 * an unknown local user is refused here and never bounced later.
 */
static const char *rcpt_verdict(struct session *s, const char *addr)
{
	const char *at = strrchr(addr, '@');
	struct str local = STR_INIT;
	struct acct_domain d = {STR_INIT, STR_INIT, 1};
	const char *why, *reply = NULL;
	int r, hosted = 0;

	if (!at)
		return "553 5.1.3 a recipient needs a domain";
	if ((r = check_badlist(s->root, "badrcptto", addr)) != 0)
		return r < 0 ? "451 4.3.0 cannot read control/badrcptto" :
		       "553 5.7.1 sorry, your envelope recipient is in my "
		       "badrcptto list";
	if (strchr(addr, '%') || strchr(addr, '!'))
		return "553 5.7.1 sorry, that domain isn't allowed to be "
		       "relayed thru this MTA";
	if (at[1] != '[') {
		r = acct_domain(s->root, at + 1, &d);
		if (r == 0)
			hosted = 1;
		else if (r != -ENOENT && r != -ENODATA) {
			acct_domain_free(&d);
			return "451 4.3.0 temporary failure reading the "
			       "account tables";
		}
	}
	if (!hosted) {
		acct_domain_free(&d);
		return s->relay || s->pbs || s->auth_user.len ? NULL :
		       "553 5.7.1 sorry, that domain isn't allowed to be "
		       "relayed thru this MTA";
	}
	/* vdeliver's rule, once (lib/rcpt): extensions, flags, catch-all */
	r = name_local(addr, (size_t)(at - addr), &local, &why);
	if (r == -EINVAL)
		reply = "550 5.1.1 no such user here";
	else if (r < 0)
		reply = "451 4.3.0 out of memory";
	else if ((r = rcpt_accepts(s->root, d.real.s, local.s)) < 0)
		reply = "451 4.3.0 temporary failure reading the account "
			"tables";
	else if (r == RCPT_NO_USER)
		reply = "550 5.1.1 no such user here";
	else if (r == RCPT_DISABLED)
		reply = "550 5.2.1 this mailbox does not accept mail";
	acct_domain_free(&d);
	str_free(&local);
	return reply;
}

/* check_rcpt - the verdict on ADDR at RCPT. The session process keeps
 * the tables open from one RCPT to the next (lib/cdbx.h): each RCPT
 * stats them once, so a table vadmin regenerated is read at the next */
const char *check_rcpt(struct session *s, const char *addr)
{
	const char *reply;

	cdbx_batch_begin();
	reply = rcpt_verdict(s, addr);
	cdbx_batch_end();
	return reply;
}

/*
 * check_srs - an SRS0 recipient of control/me: *srs_r 0 when ADDR is none
 * (check_rcpt judges it); else NULL with ADDR replaced by the original
 * sender, or the reply. Forged and expired ones get the same 550 as an
 * unknown user, with the reason.
 */
const char *check_srs(struct session *s, struct str *addr, int *srs_r)
{
	struct str keys = STR_INIT, orig = STR_INIT;
	const char *reply = NULL;
	size_t n;
	int r;

	*srs_r = srs_is(s->me.s, addr->s);
	if (!*srs_r)
		return NULL;
	r = srs_secrets(s->root, &keys, &n);
	if (r == 0)
		r = srs_reverse(&keys, s->me.s, addr->s, time(NULL), &orig);
	if (r == -EINVAL || r == -ENOENT)
		reply = "550 5.1.1 forged SRS address: this host did not make it";
	else if (r == -ETIMEDOUT)
		reply = "550 5.1.1 expired SRS address: the message it answers "
			"left here too long ago";
	else if (r < 0)
		reply = "451 4.3.0 cannot read control/srssecret";
	else if (queue_addr_entry(orig.s, orig.len) < 0)
		reply = "553 5.1.3 an address may not begin with '-'";
	else if ((r = check_badlist(s->root, "badrcptto", orig.s)) != 0)
		reply = r < 0 ? "451 4.3.0 cannot read control/badrcptto" :
			"553 5.7.1 sorry, your envelope recipient is in my "
			"badrcptto list";
	else if (str_copyb(addr, orig.s, orig.len) < 0)
		reply = "451 4.3.0 out of memory";
	str_wipe(&keys);
	str_free(&orig);
	return reply;
}
